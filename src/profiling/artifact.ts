/**
 * Calibration artifacts: JSON with a common header (shared/specs/README.md, "Common artifact header") plus the
 * method's payload. Loading refuses an artifact made for another model, step count, sampler, CFG scale or mode, or
 * token count, naming both values and the command that recalibrates. Never a silent fallback.
 */

import { z } from "zod";
import type { RunContext } from "../cache/policy.ts";
import { ArtifactError } from "../errors.ts";
import { platform } from "../platform.ts";
import { ARTIFACT_SCHEMAS, artifactHeaderSchema } from "../schema/artifact.ts";
import { parseWithSchema, readJsonFileSync } from "../schema/parse.ts";

export interface ArtifactHeader {
  format: string;
  model: { sha256: string; blocks: number; granularity: "stack" | "block" | "branch" };
  sampler: { kind: string; steps: number; shift: number; cfgScale: number; cfgMode: string };
  shape: { batch: number; tokens: number; hidden: number };
  calibration: { seeds: number[]; conditions: number[] };
  createdBy: string;
  /** The `--set` values of \`ditto profile\` that made it (repeated in the recalibration hint). */
  set?: Record<string, string>;
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

/**
 * Reads an artifact and checks it whole against its method's schema (src/schema/artifact.ts): format, header,
 * every field's type and range, and lengths that must match the step and block counts. `method` names the policy
 * (e.g. "ertacache").
 */
export function readArtifact<T extends ArtifactHeader>(path: string, method: string): T {
  const fix = `Make a new one with \`ditto profile --method ${profileMethod(method)} --out ${path}\`.`;
  const raw = readJsonFileSync(z.unknown(), path, { code: "ARTIFACT_INVALID", error: ArtifactError, fix });
  return parseArtifact<T>(raw, method, path);
}

/** Checks an artifact already in memory (e.g. fetched by a browser page); `source` names it in errors. */
export function parseArtifact<T extends ArtifactHeader>(raw: unknown, method: string, source: string): T {
  const fix = `Make a new one with \`ditto profile --method ${profileMethod(method)} --out ${source}\`.`;
  const format = (raw as { format?: unknown } | null)?.format;
  if (format !== `ditto.${method}.v1`) {
    throw new ArtifactError(
      "ARTIFACT_INVALID",
      `${source} is not a ${method} artifact (format ${JSON.stringify(format)}, expected "ditto.${method}.v1"). ${fix}`,
      { path: source },
    );
  }
  const schema = ARTIFACT_SCHEMAS[method] ?? artifactHeaderSchema;
  return parseWithSchema(schema, raw, { source, code: "ARTIFACT_INVALID", error: ArtifactError, fix }) as T;
}

/** The `ditto profile --method` that makes a `ditto.<method>.v1` artifact. */
function profileMethod(method: string): string {
  return method === "router" ? "harmonica (or l2c)" : method;
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
          `\`ditto profile --method ${/--method (\S+)/.exec(header.createdBy)?.[1] ?? method} --steps ${ctx.sampler.steps} --cfg ${ctx.cfgScale}${setFlags(header)} --out ${path}\``,
        { path, field: key, artifact: made[key], run: run[key] },
      );
    }
  }
}

/** ` --set k=v` for each setting the artifact was made with. */
function setFlags(header: ArtifactHeader): string {
  return Object.entries(header.set ?? {})
    .map(([k, v]) => ` --set ${k}=${v}`)
    .join("");
}
