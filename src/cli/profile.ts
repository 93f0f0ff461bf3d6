/** `ditto profile --method M`: offline calibration, writing a JSON artifact a cache policy loads. */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { calibrationObservations } from "../control/calibration.ts";
import { InputError, listChoices } from "../errors.ts";
import { observationSpec } from "../model/manifest.ts";
import { loadPipeline, type Pipeline } from "../pipeline.ts";
import { type ArtifactHeader, readArtifact, writeArtifact } from "../profiling/artifact.ts";
import type { CalibrationOptions } from "../profiling/calibration.ts";
import type { SamplerKind } from "../sampling/samplers.ts";
import { parseNumber } from "./args.ts";
import {
  MODEL_HELP,
  MODEL_OPTIONS,
  modelLoadOptions,
  REVIEW_HELP,
  REVIEW_OPTIONS,
  refuseUnreviewed,
} from "./common.ts";
import { checkOutputFile } from "./output-path.ts";
import { Progress } from "./progress.ts";

interface ProfileMethod {
  summary: string;
  run(
    pipeline: Pipeline,
    options: CalibrationOptions,
    extra: Record<string, string | undefined>,
  ): Promise<ArtifactHeader>;
  /** A PNG of what was profiled. */
  plot?(artifact: ArtifactHeader): Promise<Buffer>;
  /** One line of what was found, for the terminal. */
  summarize(artifact: ArtifactHeader): string;
}

const METHODS: Record<string, () => Promise<ProfileMethod>> = {
  teacache: async () => (await import("../profiling/teacache-cli.ts")).teacacheMethod,
  ertacache: async () => (await import("../profiling/ertacache-cli.ts")).ertacacheMethod,
  profilingdit: async () => (await import("../profiling/profilingdit-cli.ts")).profilingditMethod,
  bac: async () => (await import("../profiling/bac-cli.ts")).bacMethod,
  harmonica: async () => (await import("../profiling/harmonica-cli.ts")).harmonicaMethod,
  l2c: async () => (await import("../profiling/harmonica-cli.ts")).l2cMethod,
  magcache: async () => (await import("../profiling/magcache.ts")).magcacheMethod as ProfileMethod,
};

/** A `--set` key of a method: its help, and the check its value must pass before any work. */
interface SetKey {
  help: string;
  kind: "number" | "int" | "string";
  min?: number;
  max?: number;
  choices?: readonly string[];
}

/** Each method's `--set` keys (listed in --help; any other key is refused). A method missing here takes any key. */
export const SET_KEYS: Record<string, Record<string, SetKey>> = {
  teacache: {},
  magcache: {},
  ertacache: {
    lambda: { kind: "number", min: 0, help: "reuse-error threshold λ (default 0.1)" },
    computed: { kind: "int", min: 1, help: "instead of λ: the number of steps to compute" },
    granularity: { kind: "string", choices: ["channel", "tensor"], help: "rectification per channel or per tensor" },
    phi: {
      kind: "string",
      choices: ["endpoint", "notes", "norm"],
      help: "how φ is estimated (default endpoint: the step length whose cached update lands nearest the true one)",
    },
    phiMax: { kind: "number", min: 0, max: 2, help: "upper clip of an endpoint φ (default 1, the paper's range)" },
  },
  profilingdit: {
    mask: { kind: "string", choices: ["intensity", "pca-otsu"], help: "foreground mask source (default intensity)" },
    cached: { kind: "int", min: 0, help: "number of blocks to cache (default round(0.6·L))" },
    s0: { kind: "int", min: 0, help: "warm-up steps before caching (default round(0.12·S))" },
  },
  bac: {
    M: { kind: "int", min: 1, help: "update steps per unit, step 0 included (default round(S/3))" },
    n: { kind: "int", min: 0, help: "units promoted by the Bubbling Union (default 3)" },
  },
  harmonica: routerKeys(),
  l2c: routerKeys(),
};

function routerKeys(): Record<string, SetKey> {
  return {
    beta: { kind: "number", min: 0, help: "compute penalty β (default: found by bisection for rho)" },
    rho: { kind: "number", min: 0, max: 1, help: "target computed fraction (default 0.6)" },
    rounds: { kind: "int", min: 1, help: "λ refresh rounds (default 2)" },
    chunk: { kind: "int", min: 1, help: "λ measured per chunk of this many steps (default ⌈S/10⌉)" },
    warm: { kind: "string", help: "a BAC artifact whose table gives the first λ" },
    weights: { kind: "string", choices: ["flops", "equal"], help: "unit cost weights (default flops)" },
    optimizer: {
      kind: "string",
      choices: ["ghc", "cem"],
      help: "harmonica: greedy G-HC against λ (default) or CEM on the measured final-sample error",
    },
    population: { kind: "int", min: 2, help: "optimizer=cem: candidates per generation (default 10)" },
    iterations: { kind: "int", min: 1, help: "optimizer=cem: generations (default 7)" },
    init: { kind: "string", help: "optimizer=cem: start from this router artifact's table (e.g. an l2c fit)" },
  };
}

function setHelp(): string {
  return Object.entries(SET_KEYS)
    .map(([method, keys]) => {
      const entries = Object.entries(keys);
      if (entries.length === 0) return `    ${method}: (no settings)`;
      return [`    ${method}:`, ...entries.map(([k, d]) => `      ${k.padEnd(12)}${d.help}`)].join("\n");
    })
    .join("\n");
}

/** Parses `--set KEY=VALUE` pairs and checks each against the method's keys. */
export function parseSettings(method: string, pairs: readonly string[]): Record<string, string> {
  const keys = SET_KEYS[method];
  const out: Record<string, string> = {};
  for (const kv of pairs) {
    const eq = kv.indexOf("=");
    const key = eq < 0 ? kv : kv.slice(0, eq);
    const value = eq < 0 ? undefined : kv.slice(eq + 1);
    if (!key || value === undefined) throw new InputError("OPTION_INVALID", `--set expects KEY=VALUE (got '${kv}')`);
    if (keys) {
      const def = keys[key];
      if (!def) {
        const known = Object.keys(keys);
        throw new InputError(
          "OPTION_INVALID",
          `--set ${key}: ${method} has no setting '${key}'; ${known.length ? `its settings are ${listChoices(known)}` : "it takes none"} (see ditto profile --help)`,
          { option: "set", key },
        );
      }
      checkSetting(method, key, def, value);
    }
    out[key] = value;
  }
  return out;
}

function checkSetting(method: string, key: string, def: SetKey, value: string): void {
  const bad = (why: string): never => {
    throw new InputError("OPTION_INVALID", `--set ${key}=${value} for ${method}: ${why}`, { option: "set", key });
  };
  if (def.kind === "string") {
    if (def.choices && !def.choices.includes(value)) bad(`expected ${listChoices(def.choices)}`);
    if (value === "") bad("expected a value");
    return;
  }
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) bad("expected a number");
  if (def.kind === "int" && !Number.isInteger(n)) bad("expected an integer");
  if (def.min !== undefined && n < def.min) bad(`must be ≥ ${def.min}`);
  if (def.max !== undefined && n > def.max) bad(`must be ≤ ${def.max}`);
}

const HELP = `Usage: ditto profile --method METHOD [options]

Runs calibration generations (uncached unless the method says otherwise) and writes the artifact a cache policy
loads, e.g. --cache teacache:calibration=FILE.json.

  --method NAME      ${Object.keys(METHODS).join(", ")}
  --steps N          sampling steps the artifact is for (default: the manifest's)
  --cfg W            guidance scale the artifact is for (default: the manifest's)
  --seeds N          number of calibration items (seed, class) (default: the method's; policies: 8 observations)
  --sampler KIND     sampler the artifact is for: euler, ddim or ddpm (default: the manifest's)
  --out FILE.json    the artifact (default ditto-<method>.json)
  --plot FILE.png    a picture of what was profiled
  --set KEY=VALUE    method-specific settings (repeatable), e.g. --set lambda=0.1; each method's keys:
${setHelp()}
${REVIEW_HELP}
${MODEL_HELP}
`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...MODEL_OPTIONS,
      ...REVIEW_OPTIONS,
      method: { type: "string" },
      steps: { type: "string" },
      cfg: { type: "string" },
      seeds: { type: "string" },
      sampler: { type: "string" },
      out: { type: "string" },
      plot: { type: "string" },
      set: { type: "string", multiple: true },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const name = values.method;
  const load = name ? METHODS[name] : undefined;
  if (!name || !load) {
    throw new InputError(
      "OPTION_INVALID",
      `--method must be ${listChoices(Object.keys(METHODS))} (got ${JSON.stringify(name ?? null)})`,
    );
  }
  // Everything is checked before the model loads: settings, numbers and both output paths.
  const extra = parseSettings(name, values.set ?? []);
  if (extra.warm !== undefined) readArtifact(extra.warm, "bac"); // the warm start must be a valid BAC artifact
  const calibration = {
    steps: parseNumber("steps", values.steps, true, { min: 1, max: 10_000 }),
    cfg: parseNumber("cfg", values.cfg, false, { min: 0 }),
    items: parseNumber("seeds", values.seeds, true, { min: 1 }),
  };
  const sampler = values.sampler as SamplerKind | undefined;
  if (sampler !== undefined && !["euler", "ddim", "ddpm"].includes(sampler)) {
    throw new InputError("OPTION_INVALID", `--sampler must be euler, ddim or ddpm (got '${sampler}')`);
  }
  const out = checkOutputFile("out", values.out ?? `ditto-${name}.json`, `ditto-${name}.json`);
  const plot = values.plot === undefined ? undefined : checkOutputFile("plot", values.plot, `${name}.png`);
  await refuseUnreviewed(values);
  const method = await load();
  const pipeline = await loadPipeline(values.model, modelLoadOptions(values));
  const started = performance.now();
  // A policy is calibrated on observations its own uncached rollout visits (control/calibration.ts).
  const observations = observationSpec(pipeline.manifest)
    ? await calibrationObservations(pipeline, {
        count: calibration.items ?? 8,
        sampler,
        steps: calibration.steps,
      })
    : undefined;
  let bar: Progress | undefined;
  let pass = 0;
  const artifact = await method.run(
    pipeline,
    {
      ...calibration,
      sampler,
      observations,
      onProgress: (done, total) => {
        if (done === 1 || !bar) {
          pass++;
          bar = new Progress(`profile ${name} run ${pass}`, total, !values.quiet);
        }
        bar.update(done);
      },
    },
    extra,
  );
  const seconds = (performance.now() - started) / 1000;
  const set = Object.keys(extra).length ? { set: extra } : {};
  writeArtifact(out, { ...artifact, ...set, profileSeconds: Math.round(seconds * 10) / 10 } as ArtifactHeader & {
    profileSeconds: number;
  });
  if (plot && method.plot) writeFileSync(plot, await method.plot(artifact));
  process.stdout.write(`wrote ${out} in ${seconds.toFixed(1)} s: ${method.summarize(artifact)}\n`);
  await pipeline.release();
}
