/** `ditto generate`: sample images with a cache policy and write a PNG grid. */
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { jsonWithInfinity } from "../bench/report.ts";
import type { RunReport } from "../cache/engine.ts";
import type { CachePolicy } from "../cache/policy.ts";
import { parseCacheSpec, policyFromConfig } from "../cache/registry.ts";
import { InputError } from "../errors.ts";
import { gridPng, toUnitRange, writePng } from "../image/png.ts";
import { psnr, ssim } from "../metrics/fidelity.ts";
import { type GenerationResult, loadPipeline } from "../pipeline.ts";
import type { CfgMode } from "../sampling/denoise.ts";
import type { SamplerKind } from "../sampling/samplers.ts";
import { parseIntList, parseNumber } from "./args.ts";
import { MODEL_HELP, MODEL_OPTIONS, modelLoadOptions, reportStartup } from "./common.ts";
import { Progress } from "./progress.ts";

const HELP = `Usage: ditto generate [options]

Generates one image per (class, seed) pair — rows are classes, columns seeds — and writes a PNG grid.

  --classes LIST     classes, e.g. 0,3,7 or 0..9 or all (default: all)
  --seeds LIST       seeds, e.g. 0..3 (default: --seed)
  --seed N           base seed when --seeds is not given (default 0)
  --steps N          denoising steps (default: the manifest's recommendation)
  --cfg W            classifier-free guidance scale (default: the manifest's; 1 = none)
  --cfg-mode MODE    batched (cond+uncond in one pass, default) or separate (two passes, a cache state each)
  --shift S          flow time shift (default: the manifest's)
  --sampler NAME     euler (flow models) or ddim (epsilon models)
  --cache SPEC       cache policy, e.g. taylorseer:interval=4,order=1 (default none; see ditto policies)
  --cache-config F   the policy as JSON instead: {"policy": "taylorseer", "interval": 4, "order": 1}
  --batch N          samples per network batch (default 16)
  --out FILE.png     the grid (default ditto-grid.png)
  --scale N          pixel upscaling of the grid (default 4)
  --json             print a machine-readable summary on stdout
  --compare          also run uncached on the same samples: adds speedup, PSNR and SSIM to the summary
${MODEL_HELP}
`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...MODEL_OPTIONS,
      classes: { type: "string" },
      seeds: { type: "string" },
      seed: { type: "string" },
      steps: { type: "string" },
      cfg: { type: "string" },
      "cfg-mode": { type: "string" },
      shift: { type: "string" },
      sampler: { type: "string" },
      cache: { type: "string" },
      "cache-config": { type: "string" },
      batch: { type: "string" },
      out: { type: "string", default: "ditto-grid.png" },
      scale: { type: "string", default: "4" },
      json: { type: "boolean", default: false },
      compare: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const cfgMode = values["cfg-mode"];
  if (cfgMode !== undefined && cfgMode !== "batched" && cfgMode !== "separate") {
    throw new InputError("OPTION_INVALID", `--cfg-mode must be batched or separate (got '${cfgMode}')`);
  }
  const sampler = values.sampler;
  if (sampler !== undefined && sampler !== "euler" && sampler !== "ddim") {
    throw new InputError("OPTION_INVALID", `--sampler must be euler or ddim (got '${sampler}')`);
  }
  const pipeline = await loadPipeline(values.model, modelLoadOptions(values));
  const m = pipeline.manifest;
  const numClasses = m.inputs.condition?.numClasses;
  const classList = m.inputs.condition ? parseIntList("classes", values.classes ?? "all", numClasses) : undefined;
  const seedList = values.seeds
    ? parseIntList("seeds", values.seeds)
    : [parseNumber("seed", values.seed ?? "0", true) as number];
  // Every class with every seed: row = class, column = seed.
  const classes = classList?.flatMap((k) => seedList.map(() => k));
  const seeds = classList ? classList.flatMap(() => seedList) : seedList;
  const steps = parseNumber("steps", values.steps, true) ?? m.recommended?.steps ?? 50;
  const progress = new Progress(
    "generate",
    Math.ceil(seeds.length / (parseNumber("batch", values.batch, true) ?? 16)) * steps,
    !values.quiet,
  );
  const request = {
    classes,
    seeds,
    steps,
    cfg: parseNumber("cfg", values.cfg),
    cfgMode: cfgMode as CfgMode | undefined,
    shift: parseNumber("shift", values.shift),
    sampler: sampler as SamplerKind | undefined,
    batch: parseNumber("batch", values.batch, true),
  };
  const policy = cachePolicy(values.cache, values["cache-config"]);
  if (values.compare) {
    // Warm both engines (sessions, first-run allocations) on one sample at the real step count — calibrated
    // policies refuse any other — so set-up stays out of the comparison.
    const one = { ...request, seeds: seeds.slice(0, 1), classes: classes?.slice(0, 1) };
    await pipeline.generate({ ...one, cache: policy });
    await pipeline.generate(one);
  }
  const result = await pipeline.generate({
    ...request,
    cache: policy,
    onStep: (p) => progress.update(p.batch * p.steps + p.step + 1),
  });
  const reference = values.compare ? await pipeline.generate(request) : undefined;
  const [n, c, h, w] = result.dims;
  const out = resolve(values.out);
  mkdirSync(dirname(out), { recursive: true });
  const scale = parseNumber("scale", values.scale, true) ?? 4;
  writePng(
    out,
    gridPng(
      { data: toUnitRange(result.samples, m.image.range), count: n, channels: c, height: h, width: w },
      seedList.length,
      2,
      scale,
    ),
  );
  const summary = summarize(result.reports);
  const report = {
    model: m.name,
    policy: summary.policy,
    spec: summary.spec,
    steps,
    cfg: result.classes ? (parseNumber("cfg", values.cfg) ?? m.recommended?.cfgScale ?? 1) : 1,
    samples: n,
    classes: classes ?? null,
    seeds,
    wallMs: Math.round(result.wallMs * 10) / 10,
    idealSpeedup: Math.round(summary.idealSpeedup * 1000) / 1000,
    unitsComputed: summary.unitsComputed,
    unitsSkipped: summary.unitsSkipped,
    cachePeakBytes: summary.cachePeakBytes,
    nonFiniteFallbacks: summary.nonFiniteFallbacks,
    finite: result.samples.every(Number.isFinite),
    out,
    ...(reference ? compare(result, reference, m.image.range) : {}),
  };
  reportStartup(pipeline.model, values.verbose, `wrote ${out}`);
  if (values.json) process.stdout.write(`${jsonWithInfinity(report)}\n`);
  else {
    process.stdout.write(
      `wrote ${out}: ${n} images, ${steps} steps, cache ${summary.spec}, ${(result.wallMs / 1000).toFixed(2)} s, ideal speedup ${summary.idealSpeedup.toFixed(2)}×\n`,
    );
  }
  if (!report.finite)
    process.stderr.write("warning: the output holds NaN or Inf values; the image shows them as black\n");
  await pipeline.release();
}

/** Measured speedup and fidelity against the uncached run of the same samples (--compare). */
function compare(result: GenerationResult, reference: GenerationResult, range: [number, number]) {
  const [count, channels, height, width] = result.dims;
  const img = (r: GenerationResult) => ({ data: toUnitRange(r.samples, range), count, channels, height, width });
  const p = psnr(img(result), img(reference));
  return {
    uncachedWallMs: Math.round(reference.wallMs * 10) / 10,
    speedup: Math.round((reference.wallMs / result.wallMs) * 1000) / 1000,
    psnr: Number.isFinite(p) ? Math.round(p * 100) / 100 : p,
    ssim: Math.round(ssim(img(result), img(reference)) * 10000) / 10000,
  };
}

/** --cache SPEC or --cache-config FILE (not both). */
export function cachePolicy(spec?: string, configPath?: string): CachePolicy | undefined {
  if (spec && configPath) throw new InputError("OPTION_INVALID", "give --cache or --cache-config, not both");
  if (spec) return parseCacheSpec(spec);
  if (!configPath) return undefined;
  let text: string;
  try {
    text = readFileSync(configPath, "utf8");
  } catch {
    throw new InputError("OPTION_INVALID", `--cache-config file not found: ${configPath}`);
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (err) {
    throw new InputError("OPTION_INVALID", `--cache-config ${configPath} is not valid JSON: ${(err as Error).message}`);
  }
  return policyFromConfig(config, configPath);
}

/** Totals over the per-batch reports. */
export function summarize(reports: RunReport[]) {
  const first = reports[0];
  const computed = reports.reduce((a, r) => a + r.unitsComputed, 0);
  const skipped = reports.reduce((a, r) => a + r.unitsSkipped, 0);
  const done = reports.reduce((a, r) => a + r.flopsDone, 0);
  const full = reports.reduce((a, r) => a + r.flopsFull, 0);
  return {
    policy: first.policy,
    spec: first.spec,
    unitsComputed: computed,
    unitsSkipped: skipped,
    idealSpeedup: full / done,
    cachePeakBytes: Math.max(...reports.map((r) => r.cachePeakBytes)),
    nonFiniteFallbacks: reports.reduce((a, r) => a + r.nonFiniteFallbacks, 0),
  };
}
