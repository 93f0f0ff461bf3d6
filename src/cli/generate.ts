/** `ditto generate`: sample images with a cache policy and write a PNG grid. */
import { parseArgs } from "node:util";
import { type RepeatSummary, SPREAD_WARNING, summarizeRepeats } from "../bench/harness.ts";
import { jsonWithInfinity } from "../bench/report.ts";
import type { RunReport } from "../cache/engine.ts";
import type { CachePolicy } from "../cache/policy.ts";
import { parseCacheSpec, policyFromConfig } from "../cache/registry.ts";
import { InputError } from "../errors.ts";
import { gridPng, toUnitRange } from "../image/png.ts";
import { psnr, ssim } from "../metrics/fidelity.ts";
import { nlpd } from "../metrics/nlpd.ts";
import { classCondition, requireImage } from "../model/manifest.ts";
import { writePng } from "../node/png-file.ts";
import { type GenerationResult, loadPipeline } from "../pipeline.ts";
import type { CfgMode } from "../sampling/denoise.ts";
import type { SamplerKind } from "../sampling/samplers.ts";
import { readCacheConfig } from "../schema/cache-config.ts";
import { parseIntList, parseNumber } from "./args.ts";
import {
  MODEL_HELP,
  MODEL_OPTIONS,
  modelLoadOptions,
  REVIEW_HELP,
  REVIEW_OPTIONS,
  refuseUnreviewed,
  reportStartup,
} from "./common.ts";
import { checkOutputFile } from "./output-path.ts";
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
  --repeats N        with --compare: interleaved cached/uncached runs (default 3); reports the median speedup and
                     its range, and warns when the repeats disagree by more than 15 %
${REVIEW_HELP}
${MODEL_HELP}
`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...MODEL_OPTIONS,
      ...REVIEW_OPTIONS,
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
      repeats: { type: "string" },
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
  // Every flag is checked before the model loads, so bad input never costs a generation.
  const seedList = values.seeds
    ? parseIntList("seeds", values.seeds)
    : [parseNumber("seed", values.seed ?? "0", true) as number];
  const scale = parseNumber("scale", values.scale, true, { min: 1, max: 64 }) ?? 4;
  const batch = parseNumber("batch", values.batch, true, { min: 1 });
  const stepsFlag = parseNumber("steps", values.steps, true, { min: 1, max: 10_000 });
  const cfg = parseNumber("cfg", values.cfg, false, { min: 0 });
  const shift = parseNumber("shift", values.shift, false, { min: Number.MIN_VALUE });
  const repeats = parseNumber("repeats", values.repeats, true, { min: 1, max: 100 }) ?? 3;
  if (values.repeats !== undefined && !values.compare)
    throw new InputError("OPTION_INVALID", "--repeats times the comparison: give it with --compare");
  const policy = cachePolicy(values.cache, values["cache-config"]);
  const out = checkOutputFile("out", values.out, "ditto-grid.png");
  // A policy model is refused from its manifest, before its sessions are built.
  const image = requireImage(await refuseUnreviewed(values), "ditto generate");
  const pipeline = await loadPipeline(values.model, modelLoadOptions(values));
  const m = pipeline.manifest;
  const numClasses = classCondition(m)?.numClasses;
  const classList = classCondition(m) ? parseIntList("classes", values.classes ?? "all", numClasses) : undefined;
  // Every class with every seed: row = class, column = seed.
  const classes = classList?.flatMap((k) => seedList.map(() => k));
  const seeds = classList ? classList.flatMap(() => seedList) : seedList;
  const steps = stepsFlag ?? m.recommended?.steps ?? 50;
  const batches = Math.ceil(seeds.length / (batch ?? 16));
  const request = {
    classes,
    seeds,
    steps,
    cfg,
    cfgMode: cfgMode as CfgMode | undefined,
    shift,
    sampler: sampler as SamplerKind | undefined,
    batch,
  };
  const runs = values.compare ? 2 * repeats : 1;
  const label = values.compare ? `generate --compare (${repeats} × cached + uncached)` : "generate";
  const progress = new Progress(label, runs * batches * steps, !values.quiet);
  let run = 0;
  const timed = async (cache?: CachePolicy) => {
    const offset = run++ * batches * steps;
    return pipeline.generate({
      ...request,
      cache,
      onStep: (p) => progress.update(offset + p.batch * p.steps + p.step + 1),
    });
  };
  let result: GenerationResult;
  let timing: CompareTiming | undefined;
  if (!values.compare) result = await timed(policy);
  else {
    // Warm both engines (sessions, first-run allocations) on one sample at the real step count — calibrated
    // policies refuse any other — so set-up stays out of the comparison.
    const one = { ...request, seeds: seeds.slice(0, 1), classes: classes?.slice(0, 1) };
    await pipeline.generate({ ...one, cache: policy });
    await pipeline.generate(one);
    // Interleaved repeats, the order alternating (C U, U C, …) so drift and warm-cache effects cancel; one pair on
    // a loaded machine can be off by 2× (issue 14); the median of paired ratios, with its range shown, is steadier.
    const cached: GenerationResult[] = [];
    const uncached: GenerationResult[] = [];
    for (let r = 0; r < repeats; r++) {
      if (r % 2 === 0) {
        cached.push(await timed(policy));
        uncached.push(await timed());
      } else {
        uncached.push(await timed());
        cached.push(await timed(policy));
      }
    }
    result = cached[0];
    timing = compareTiming(
      uncached[0],
      cached.map((x) => x.wallMs),
      uncached.map((x) => x.wallMs),
    );
  }
  const [n, c, h, w] = result.dims;
  writePng(
    out,
    gridPng(
      { data: toUnitRange(result.samples, image.range), count: n, channels: c, height: h, width: w },
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
    cfg: result.classes ? (cfg ?? m.recommended?.cfgScale ?? 1) : 1,
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
    ...(timing ? compare(result, timing.reference, image.range, timing) : {}),
  };
  reportStartup(pipeline.model, values.verbose, `wrote ${out}`);
  if (values.json) process.stdout.write(`${jsonWithInfinity(report)}\n`);
  else {
    process.stdout.write(
      `wrote ${out}: ${n} images, ${steps} steps, cache ${summary.spec}, ${(report.wallMs / 1000).toFixed(2)} s, ideal speedup ${summary.idealSpeedup.toFixed(2)}×\n`,
    );
    if (timing)
      process.stdout.write(
        `vs uncached (median of ${timing.repeats} interleaved repeats): speedup ${fmtRange(timing.speedup, "×")}, ` +
          `PSNR ${report.psnr} dB, SSIM ${report.ssim ?? "n/a"}, NLPD ${report.nlpd}\n`,
      );
  }
  if (timing?.warning) process.stderr.write(`${timing.warning}\n`);
  if (!report.finite)
    process.stderr.write("warning: the output holds NaN or Inf values; the image shows them as black\n");
  await pipeline.release();
}

interface CompareTiming {
  reference: GenerationResult;
  repeats: number;
  cached: RepeatSummary;
  uncached: RepeatSummary;
  /** Paired ratios uncached ÷ cached, one per repeat. */
  speedup: RepeatSummary;
  warning?: string;
}

/** Medians and ranges over the interleaved repeats; a warning when any of them spreads over 15 %. */
export function compareTiming(reference: GenerationResult, cached: number[], uncached: number[]): CompareTiming {
  const speedup = summarizeRepeats(cached.map((c, i) => uncached[i] / c));
  const stats = { cached: summarizeRepeats(cached), uncached: summarizeRepeats(uncached), speedup };
  const worst = Object.entries(stats).sort((a, b) => b[1].spread - a[1].spread)[0];
  const warning =
    worst[1].spread > SPREAD_WARNING
      ? `warning: the ${cached.length} interleaved repeats disagree by ${(worst[1].spread * 100).toFixed(0)} % ` +
        `(${worst[0] === "speedup" ? "speedup" : `${worst[0]} wall time`} ${fmtRange(worst[1], worst[0] === "speedup" ? "×" : " ms")}; ` +
        `over ${SPREAD_WARNING * 100} %): the machine was likely busy; use more --repeats or a quieter machine before quoting it`
      : undefined;
  return { reference, repeats: cached.length, ...stats, warning };
}

function fmtRange(r: RepeatSummary, unit: string): string {
  const digits = unit === "×" ? 2 : 0;
  return `${r.min.toFixed(digits)}–${r.max.toFixed(digits)}${unit}, median ${r.median.toFixed(digits)}${unit}`;
}

/**
 * Measured speedup (median of the paired ratios, with its range) and fidelity against the uncached run of the same
 * samples (--compare). `wallMs`/`uncachedWallMs` are the medians over the repeats.
 */
function compare(result: GenerationResult, reference: GenerationResult, range: [number, number], t: CompareTiming) {
  const [count, channels, height, width] = result.dims;
  const img = (r: GenerationResult) => ({ data: toUnitRange(r.samples, range), count, channels, height, width });
  const p = psnr(img(result), img(reference));
  const r1 = (v: number) => Math.round(v * 10) / 10;
  const r3 = (v: number) => Math.round(v * 1000) / 1000;
  return {
    wallMs: r1(t.cached.median),
    uncachedWallMs: r1(t.uncached.median),
    speedup: r3(t.speedup.median),
    psnr: Number.isFinite(p) ? Math.round(p * 100) / 100 : p,
    ssim: height >= 11 && width >= 11 ? Math.round(ssim(img(result), img(reference)) * 10000) / 10000 : null,
    nlpd: Math.round(nlpd(img(result), img(reference)) * 10000) / 10000,
    repeats: t.repeats,
    speedupRange: [r3(t.speedup.min), r3(t.speedup.max)],
    wallMsRange: [r1(t.cached.min), r1(t.cached.max)],
    uncachedWallMsRange: [r1(t.uncached.min), r1(t.uncached.max)],
    spread: r3(Math.max(t.speedup.spread, t.cached.spread, t.uncached.spread)),
  };
}

/** --cache SPEC or --cache-config FILE (not both). */
export function cachePolicy(spec?: string, configPath?: string): CachePolicy | undefined {
  if (spec && configPath) throw new InputError("OPTION_INVALID", "give --cache or --cache-config, not both");
  if (spec) return parseCacheSpec(spec);
  if (!configPath) return undefined;
  return policyFromConfig(readCacheConfig(configPath), configPath);
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
