/**
 * The fidelity-and-speed benchmark. For each cache policy: median wall time over repeats with the uncached run
 * interleaved (A B A B …, so drift cancels), the measured speedup as the median of the paired ratios, the ideal
 * speedup from skipped FLOPs, PSNR and SSIM against the uncached images of the same seeds and classes, the
 * Fréchet distance of the classifier's features to the test-set statistics, classifier accuracy, the mean feature
 * distance to the uncached samples, and peak cache memory.
 */
import type { CachePolicy } from "../cache/policy.ts";
import { parseCacheSpec } from "../cache/registry.ts";
import { toUnitRange } from "../image/png.ts";
import { accuracy, Classifier, meanFeatureDistance } from "../metrics/classifier.ts";
import { psnr, ssim } from "../metrics/fidelity.ts";
import { featureStats, frechetDistance } from "../metrics/frechet.ts";
import { classCondition, requireImage } from "../model/manifest.ts";
import type { GenerationResult, Pipeline } from "../pipeline.ts";
import type { CfgMode } from "../sampling/denoise.ts";

export interface BenchSettings {
  /** Samples for the quality metrics (seeds 0…, classes cycling). */
  samples: number;
  steps: number;
  cfg: number;
  cfgMode?: CfgMode;
  /** Timing repeats per policy (each paired with an uncached run). */
  repeats: number;
  /** Samples in each timed generation (one network batch). */
  timingSamples: number;
  batch: number;
}

export interface BenchRow {
  policy: string;
  /** The setting as it was asked for (e.g. "fora:interval=2"); `spec` is the same with every option spelled out. */
  label: string;
  spec: string;
  wallMs: number;
  speedup: number;
  idealSpeedup: number;
  psnr: number;
  ssim: number;
  fd: number;
  accuracy: number;
  cacheBytes: number;
  /** Mean distance of the classifier's features to the uncached twin's (not LPIPS). */
  featureDistance: number;
  /** Realised ÷ ideal speedup. */
  efficiency: number;
}

export interface BenchResult {
  rows: BenchRow[];
  settings: BenchSettings & { model: string; date: string; uncachedWallMs: number };
}

export const QUICK_SETTINGS: BenchSettings = { samples: 4, steps: 6, cfg: 3, repeats: 1, timingSamples: 2, batch: 16 };
export const DEFAULT_SETTINGS: BenchSettings = {
  samples: 100,
  steps: 50,
  cfg: 3,
  repeats: 3,
  timingSamples: 10,
  batch: 20,
};

export interface BenchProgress {
  done: number;
  total: number;
  label: string;
}

export async function runBench(
  pipeline: Pipeline,
  specs: string[],
  settings: BenchSettings,
  onProgress?: (p: BenchProgress) => void,
): Promise<BenchResult> {
  const policies: CachePolicy[] = specs.map((s) => parseCacheSpec(s));
  const classifier = await Classifier.load();
  const m = pipeline.manifest;
  const image = requireImage(m, "ditto bench");
  const numClasses = classCondition(m)?.numClasses ?? 1;
  const seeds = Array.from({ length: settings.samples }, (_, i) => i);
  const classes = classCondition(m) ? seeds.map((i) => i % numClasses) : undefined;
  const quality = {
    seeds,
    classes,
    steps: settings.steps,
    cfg: settings.cfg,
    cfgMode: settings.cfgMode,
    batch: settings.batch,
  };
  const timingSeeds = Array.from({ length: settings.timingSamples }, (_, i) => 10_000 + i);
  const timing = {
    seeds: timingSeeds,
    classes: classCondition(m) ? timingSeeds.map((i) => i % numClasses) : undefined,
    steps: settings.steps,
    cfg: settings.cfg,
    cfgMode: settings.cfgMode,
    batch: settings.timingSamples,
  };
  const total = 1 + policies.length * (1 + 2 * settings.repeats) + 1;
  let done = 0;
  const tick = (label: string) => onProgress?.({ done: ++done, total, label });

  // Warm every engine once so session creation and first-run allocation stay out of the timings.
  for (const policy of [parseCacheSpec("none"), ...policies])
    await pipeline.generate({
      ...timing,
      seeds: timing.seeds.slice(0, 1),
      classes: timing.classes?.slice(0, 1),
      cache: policy,
    });
  tick("warm-up");
  const reference = await pipeline.generate({ ...quality, cache: "none" });
  const referenceImages = images(reference, image.range);
  const referenceOut = await classifier.classify(reference.samples, settings.samples);
  const testStats = classifier.testStats();
  tick("uncached reference");

  const rows: BenchRow[] = [];
  let uncachedWall: number[] = [];
  for (const [index, policy] of policies.entries()) {
    const result = policy.spec === "none" ? reference : await pipeline.generate({ ...quality, cache: policy });
    tick(`${policy.spec}: quality`);
    const out = await classifier.classify(result.samples, settings.samples);
    const pairs: { a: number; b: number }[] = [];
    let ideal = 1;
    let cacheBytes = 0;
    for (let r = 0; r < settings.repeats; r++) {
      const a = await pipeline.generate({ ...timing, cache: "none" });
      tick(`${policy.spec}: timing`);
      const b = await pipeline.generate({ ...timing, cache: policy });
      tick(`${policy.spec}: timing`);
      pairs.push({ a: a.wallMs, b: b.wallMs });
      ideal = b.reports[0].idealSpeedup;
      cacheBytes = Math.max(cacheBytes, ...b.reports.map((rep) => rep.cachePeakBytes));
    }
    uncachedWall = uncachedWall.concat(pairs.map((p) => p.a));
    const speedup = median(pairs.map((p) => p.a / p.b));
    const img = images(result, image.range);
    rows.push({
      policy: policy.name,
      label: specs[index].trim(),
      spec: policy.spec,
      wallMs: round(median(pairs.map((p) => p.b)), 1),
      speedup: round(speedup, 3),
      idealSpeedup: round(ideal, 3),
      psnr: round(psnr(img, referenceImages), 2),
      ssim: round(ssim(img, referenceImages), 4),
      fd: round(frechetDistance(featureStats(out.features, out.featureDim), testStats), 3),
      accuracy: round(classes ? accuracy(out.predictions, classes) : Number.NaN, 4),
      cacheBytes,
      featureDistance: round(meanFeatureDistance(out.features, referenceOut.features, out.featureDim), 4),
      efficiency: round(speedup / ideal, 3),
    });
  }
  await classifier.release();
  tick("done");
  return {
    rows,
    settings: {
      ...settings,
      model: m.name,
      date: new Date().toISOString().slice(0, 10),
      uncachedWallMs: round(median(uncachedWall), 1),
    },
  };
}

function images(result: GenerationResult, range: [number, number]) {
  const [count, channels, height, width] = result.dims;
  return { data: toUnitRange(result.samples, range), count, channels, height, width };
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function round(v: number, digits: number): number {
  if (!Number.isFinite(v)) return v;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
