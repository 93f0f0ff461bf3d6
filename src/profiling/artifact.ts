/**
 * Calibration artifacts: JSON with a common header (shared/specs/README.md, "Common artifact header") plus the
 * method's payload. Loading refuses an artifact made for another model, step count, sampler, CFG scale or mode, or
 * token count, naming both values and the command that recalibrates. Never a silent fallback.
 */
import type { RunContext } from "../cache/policy.ts";
import { ArtifactError } from "../errors.ts";
import { platform } from "../platform.ts";

export interface ArtifactHeader {
  format: string;
  model: { sha256: string; blocks: number; granularity: "stack" | "block" | "branch" };
  sampler: { kind: string; steps: number; shift: number; cfgScale: number; cfgMode: string };
  shape: { batch: number; tokens: number; hidden: number };
  calibration: { seeds: number[]; conditions: number[] };
  createdBy: string;
}

export function makeHeader(
  method: string,
  ctx: Omit<RunContext, "pass" | "units">,
  granularity: ArtifactHeader["model"]["granularity"],
  calibration: { seeds: number[]; conditions: number[]; batch: number },
  command: string,
): ArtifactHeader {
  return {
    format: `ditto.${method}.v1`,
    model: { sha256: ctx.model.sha256, blocks: ctx.model.blocks.length, granularity },
    sampler: { ...ctx.sampler, cfgScale: ctx.cfgScale, cfgMode: ctx.cfgMode },
    shape: { batch: calibration.batch, tokens: ctx.model.tokens, hidden: ctx.model.hidden },
    calibration: { seeds: calibration.seeds, conditions: calibration.conditions },
    createdBy: `ditto ${command}`,
  };
}

export function writeArtifact(path: string, artifact: ArtifactHeader & object): void {
  platform().writeTextSync(path, `${JSON.stringify(artifact, null, 1)}\n`);
}

/** Reads an artifact and checks its format; `method` names the policy (e.g. "ertacache"). */
export function readArtifact<T extends ArtifactHeader>(path: string, method: string): T {
  let text: string;
  try {
    text = platform().readTextSync(path);
  } catch {
    throw new ArtifactError(
      "ARTIFACT_INVALID",
      `${method} artifact not found: ${path}. Make one with \`ditto profile --method ${method} --out ${path}\`.`,
      { path },
    );
  }
  let artifact: T;
  try {
    artifact = JSON.parse(text) as T;
  } catch (err) {
    throw new ArtifactError("ARTIFACT_INVALID", `${path} is not valid JSON: ${(err as Error).message}`, { path });
  }
  if (artifact?.format !== `ditto.${method}.v1`) {
    throw new ArtifactError(
      "ARTIFACT_INVALID",
      `${path} is not a ${method} artifact (format ${JSON.stringify(artifact?.format)}, expected "ditto.${method}.v1")`,
      { path },
    );
  }
  return artifact;
}

/** Refuses an artifact whose header does not match this run. */
export function checkArtifact(header: ArtifactHeader, ctx: RunContext, method: string, path: string): void {
  const run = {
    "model sha256": ctx.model.sha256,
    steps: ctx.sampler.steps,
    sampler: ctx.sampler.kind,
    shift: ctx.sampler.shift,
    "CFG scale": ctx.cfgScale,
    "CFG mode": ctx.cfgMode,
    tokens: ctx.model.tokens,
  };
  const made = {
    "model sha256": header.model.sha256,
    steps: header.sampler.steps,
    sampler: header.sampler.kind,
    shift: header.sampler.shift,
    "CFG scale": header.sampler.cfgScale,
    "CFG mode": header.sampler.cfgMode,
    tokens: header.shape.tokens,
  };
  for (const key of Object.keys(run) as (keyof typeof run)[]) {
    if (run[key] !== made[key]) {
      const short = (v: unknown) => (typeof v === "string" && v.length > 16 ? `${v.slice(0, 12)}…` : String(v));
      throw new ArtifactError(
        "ARTIFACT_MISMATCH",
        `${path} was made for ${key} ${short(made[key])}, but this run has ${short(run[key])}. Recalibrate: ` +
          `\`ditto profile --method ${method} --steps ${ctx.sampler.steps} --cfg ${ctx.cfgScale} --out ${path}\``,
        { path, field: key, artifact: made[key], run: run[key] },
      );
    }
  }
}
