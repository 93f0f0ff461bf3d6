/**
 * The fidelity-and-speed benchmark. For each cache policy: median wall time over repeats with the uncached run
 * interleaved (A B, B A, A B …, so drift and order cancel; each B repeated back to back to span about A's time,
 * runsToSpan), the measured speedup as the median of the paired ratios with their range, the ideal speedup from
 * skipped FLOPs, and peak cache memory.
 *
 * Quality comes in two kinds. Reference-based metrics need only the uncached images of the same seeds and classes,
 * so they work for any model (any channels × size): PSNR, SSIM and NLPD (a perceptual distance, no classifier).
 * Classifier-based metrics (accuracy, TFUP accuracy, FD, KID, classifier-feature distance) need the evaluation
 * classifier the model's manifest names (`evaluation.classifier`); without one they are NaN (JSON null, "n/a").
 */

import { evaluateTfup } from "../adapt/evaluate.ts";
import type { CachePolicy } from "../cache/policy.ts";
import { parseCacheSpec } from "../cache/registry.ts";
import { ModelError } from "../errors.ts";
import { toUnitRange } from "../image/png.ts";
import { accuracy, Classifier, meanFeatureDistance } from "../metrics/classifier.ts";
import { psnr, ssim } from "../metrics/fidelity.ts";
import { featureStats, frechetDistance } from "../metrics/frechet.ts";
import { kid, rmsScale } from "../metrics/kid.ts";
import { nlpd } from "../metrics/nlpd.ts";
import { classCondition, evaluationClassifierDir, type ResolvedManifest, requireImage } from "../model/manifest.ts";
import { type ClassifierFiles, loadClassifierFeatures } from "../node/tfup-classifier.ts";
import type { GenerationResult, Pipeline } from "../pipeline.ts";
import { platform } from "../platform.ts";
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
  /** Per-repeat measured speedups: [min, max] around the median `speedup`. */
  speedupRange: [number, number];
  /** (max − min) ÷ median of the per-repeat speedups; above 0.15 the timing is flagged. */
  speedupSpread: number;
  psnr: number;
  /** NaN (null in JSON) for images under 11×11 pixels, SSIM's window. */
  ssim: number;
  /** Normalized Laplacian pyramid distance to the uncached twin (src/metrics/nlpd.ts); needs no classifier. */
  nlpd: number;
  fd: number;
  /** Kernel inception distance over the classifier's features against its real test subset (src/metrics/kid.ts). */
  kid: number;
  accuracy: number;
  /** TFUP-adapted accuracy beside the plain one: cache built from this row's own samples, no labels (spec tfup.md). */
  tfupAccuracy: number;
  cacheBytes: number;
  /** Mean distance of the classifier's features to the uncached twin's (not LPIPS). */
  featureDistance: number;
  /** Realised ÷ ideal speedup. */
  efficiency: number;
}

export interface BenchResult {
  rows: BenchRow[];
  settings: BenchSettings & {
    model: string;
    date: string;
    uncachedWallMs: number;
    /** The evaluation classifier's name, or null: classifier columns are then not available for this model. */
    classifier: string | null;
    /** The sampler the model ran with (euler or ddim). */
    sampler?: string;
  };
  /** Timing warnings (spread between repeats above 15 %), also printed by the CLI. */
  warnings: string[];
}

/** Repeats that disagree by more than this (max − min over median) are flagged: the machine was busy. */
export const SPREAD_WARNING = 0.15;

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
  const m = pipeline.manifest;
  const evaluation = await loadEvaluation(m);
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
  const judge =
    evaluation &&
    (await classifierJudge(evaluation, reference, image.range, settings.samples, classCondition(m)?.numClasses));
  tick("uncached reference");

  const rows: BenchRow[] = [];
  const warnings: string[] = [];
  let uncachedWall: number[] = [];
  for (const [index, policy] of policies.entries()) {
    const result = policy.spec === "none" ? reference : await pipeline.generate({ ...quality, cache: policy });
    tick(`${policy.spec}: quality`);
    const pairs: { a: number; b: number }[] = [];
    let ideal = 1;
    let cacheBytes = 0;
    const uncachedRun = async () => {
      const run = await pipeline.generate({ ...timing, cache: "none" });
      tick(`${policy.spec}: timing`);
      return run;
    };
    const cachedRun = () => pipeline.generate({ ...timing, cache: policy });
    // The cached side spans about as long as the uncached run: a 0.5 s run beside a 5 s one would otherwise
    // sample the host's load at one moment while its partner averages over ten times as long.
    const runs = await runsToSpan(
      uncachedWall.length > 0 ? median(uncachedWall) : (await pipeline.generate({ ...timing, cache: "none" })).wallMs,
      cachedRun,
    );
    const cachedWindow = async () => {
      const window = await meanOfRuns(runs, cachedRun);
      tick(`${policy.spec}: timing`);
      return window;
    };
    for (let r = 0; r < settings.repeats; r++) {
      // The order flips every repeat: with the uncached run always first, `none` timed against itself read 0.89×.
      const b0 = r % 2 === 1 ? await cachedWindow() : undefined;
      const a = await uncachedRun();
      const b = b0 ?? (await cachedWindow());
      pairs.push({ a: a.wallMs, b: b.meanMs });
      ideal = b.last.reports[0].idealSpeedup;
      cacheBytes = Math.max(cacheBytes, ...b.last.reports.map((rep) => rep.cachePeakBytes));
    }
    uncachedWall = uncachedWall.concat(pairs.map((p) => p.a));
    const ratios = summarizeRepeats(pairs.map((p) => p.a / p.b));
    if (ratios.spread > SPREAD_WARNING) warnings.push(spreadWarning(specs[index].trim(), ratios, settings.repeats));
    const speedup = ratios.median;
    const img = images(result, image.range);
    const classified = judge ? await judge.score(result, classes) : undefined;
    rows.push({
      policy: policy.name,
      label: specs[index].trim(),
      spec: policy.spec,
      wallMs: round(median(pairs.map((p) => p.b)), 1),
      speedup: round(speedup, 3),
      speedupRange: [round(ratios.min, 3), round(ratios.max, 3)],
      speedupSpread: round(ratios.spread, 3),
      idealSpeedup: round(ideal, 3),
      psnr: round(psnr(img, referenceImages), 2),
      ssim: round(img.height >= 11 && img.width >= 11 ? ssim(img, referenceImages) : Number.NaN, 4),
      nlpd: round(nlpd(img, referenceImages), 4),
      fd: round(classified?.fd ?? Number.NaN, 3),
      kid: round(classified?.kid ?? Number.NaN, 4),
      accuracy: round(classified?.accuracy ?? Number.NaN, 4),
      tfupAccuracy: round(classified?.tfupAccuracy ?? Number.NaN, 4),
      cacheBytes,
      featureDistance: round(classified?.featureDistance ?? Number.NaN, 4),
      efficiency: round(speedup / ideal, 3),
    });
  }
  await evaluation?.classifier.release();
  await evaluation?.tfup?.featureModel.release();
  tick("done");
  return {
    rows,
    settings: {
      ...settings,
      model: m.name,
      date: new Date().toISOString().slice(0, 10),
      uncachedWallMs: round(median(uncachedWall), 1),
      classifier: evaluation ? evaluation.classifier.name : null,
      sampler: m.recommended?.sampler ?? (m.objective.kind === "epsilon" ? "ddim" : "euler"),
    },
    warnings,
  };
}

interface Evaluation {
  classifier: Classifier;
  /** TFUP needs the classifier's feature head (manifest `featureHead`); absent otherwise. */
  tfup?: ClassifierFiles;
}

/**
 * The model's evaluation classifier, checked against the model's image layout; undefined when the manifest names
 * none (classifier columns are then "n/a", never another dataset's classifier).
 */
async function loadEvaluation(m: ResolvedManifest): Promise<Evaluation | undefined> {
  const dir = evaluationClassifierDir(m);
  if (!dir) return undefined;
  const classifier = await Classifier.load(dir);
  try {
    checkLayout(m, dir, classifier.input.shape);
  } catch (err) {
    await classifier.release();
    throw err;
  }
  const tfup = classifier.manifest.featureHead ? await loadClassifierFeatures(dir) : undefined;
  return { classifier, tfup };
}

/**
 * Checks, before any model work, that the manifest's evaluation classifier (if any) has a readable manifest whose
 * image input matches the model's samples. Returns the classifier's folder, or undefined when none is named.
 */
export async function checkEvaluation(m: ResolvedManifest): Promise<string | undefined> {
  const dir = evaluationClassifierDir(m);
  if (!dir) return undefined;
  const text = await platform()
    .readText(platform().join(dir, "manifest.json"))
    .catch(() => undefined);
  if (text === undefined)
    throw new ModelError(
      "MODEL_NOT_FOUND",
      `the manifest's evaluation.classifier names ${dir}, which holds no manifest.json; fix the path or remove "evaluation"`,
      { classifier: dir },
    );
  let shape: unknown;
  try {
    shape = Object.values(JSON.parse(text).inputs ?? {})[0] as unknown;
  } catch (err) {
    throw new ModelError("MANIFEST_INVALID", `${dir}/manifest.json is not valid JSON: ${(err as Error).message}`);
  }
  const dims = (shape as { shape?: unknown[] } | undefined)?.shape ?? [];
  checkLayout(m, dir, dims.slice(1) as number[]);
  return dir;
}

function checkLayout(m: ResolvedManifest, dir: string, [c, h, w]: number[]): void {
  const { channels, height, width } = requireImage(m, "ditto bench");
  if (c === channels && h === height && w === width) return;
  throw new ModelError(
    "MANIFEST_INVALID",
    `the evaluation classifier ${dir} takes ${c}×${h}×${w} images but the model makes ${channels}×${height}×${width}: ` +
      'name a classifier for this model\'s images in "evaluation.classifier", or remove "evaluation" to bench with ' +
      "the reference-based metrics only",
    { classifier: dir },
  );
}

/** Classifier metrics of a run against the reference set (FD) and the uncached twins (feature distance). */
async function classifierJudge(
  e: Evaluation,
  reference: GenerationResult,
  range: [number, number],
  count: number,
  numClasses: number | undefined,
) {
  const toClassifier = (r: GenerationResult) => rescale(r.samples, range, e.classifier.input.range);
  const referenceOut = await e.classifier.classify(toClassifier(reference), count);
  const testStats = e.classifier.hasTestStats ? await e.classifier.testStats() : undefined;
  // KID's reference: the classifier's features of its real test subset (when it ships one).
  const real = e.classifier.hasTestSubset ? await e.classifier.testSubset() : undefined;
  const realFeatures = real && (await e.classifier.classify(real.images, real.count)).features;
  const kidScale = realFeatures && rmsScale(realFeatures);
  const classCount = e.classifier.numClasses;
  return {
    async score(result: GenerationResult, classes?: number[]) {
      const out = await e.classifier.classify(toClassifier(result), count);
      // Accuracy only where the model's class indices can be the classifier's: the same number of classes.
      const labelled = classes && classCount !== undefined && classCount === numClasses ? classes : undefined;
      const [n, channels, height, width] = result.dims;
      const adapted =
        e.tfup && labelled
          ? await evaluateTfup(
              e.tfup.featureModel,
              { data: toClassifier(result), count: n, channels, height, width },
              labelled,
            )
          : undefined;
      return {
        fd: testStats ? frechetDistance(featureStats(out.features, out.featureDim), testStats) : Number.NaN,
        // Unbiased at small sample counts, unlike FD (src/metrics/kid.ts).
        kid: realFeatures ? kid(out.features, realFeatures, out.featureDim, kidScale) : Number.NaN,
        accuracy: labelled ? accuracy(out.predictions, labelled) : Number.NaN,
        tfupAccuracy: adapted?.adaptedAccuracy ?? Number.NaN,
        featureDistance: meanFeatureDistance(out.features, referenceOut.features, out.featureDim),
      };
    },
  };
}

/** Values from one range to another (model samples → the classifier's input range). */
function rescale(data: Float32Array, from: [number, number], to: [number, number]): Float32Array {
  if (from[0] === to[0] && from[1] === to[1]) return data;
  const k = (to[1] - to[0]) / (from[1] - from[0]);
  return data.map((v) => to[0] + (v - from[0]) * k);
}

/** Most back-to-back runs in one timing window: bounds the bench's time for a policy that skips nearly everything. */
export const MAX_WINDOW_RUNS = 20;

/**
 * How many back-to-back runs of `generate` span `windowMs` (1 to `maxRuns`), from one untimed calibration run. The
 * count is fixed before the timed runs, so it never depends on the runs it averages: stopping once their total
 * passed the window kept a slow first run alone but averaged a fast one with the next, which biased the mean
 * slow (`none` timed against itself read 0.89–0.95×).
 */
export async function runsToSpan(
  windowMs: number,
  generate: () => Promise<GenerationResult>,
  maxRuns = MAX_WINDOW_RUNS,
): Promise<number> {
  const calibration = await generate();
  return Math.min(maxRuns, Math.max(1, Math.round(windowMs / calibration.wallMs)));
}

/**
 * The mean wall time of `runs` back-to-back runs of `generate`: a short case repeated to span about as long a
 * stretch of the host's load as its longer partner (runsToSpan), as a benchmark library repeats a short case.
 */
export async function meanOfRuns(
  runs: number,
  generate: () => Promise<GenerationResult>,
): Promise<{ meanMs: number; runs: number; last: GenerationResult }> {
  const n = Math.max(1, runs);
  let total = 0;
  let last: GenerationResult | undefined;
  for (let i = 0; i < n; i++) {
    last = await generate();
    total += last.wallMs;
  }
  return { meanMs: total / n, runs: n, last: last as GenerationResult };
}

export interface RepeatSummary {
  median: number;
  min: number;
  max: number;
  /** (max − min) ÷ median. */
  spread: number;
}

export function summarizeRepeats(values: number[]): RepeatSummary {
  const mid = median(values);
  const min = Math.min(...values);
  const max = Math.max(...values);
  return { median: mid, min, max, spread: mid > 0 ? (max - min) / mid : 0 };
}

export function spreadWarning(label: string, r: RepeatSummary, repeats: number): string {
  return (
    `warning: ${label}: the ${repeats} timing repeats disagree by ${(r.spread * 100).toFixed(0)} % ` +
    `(speedup ${r.min.toFixed(2)}–${r.max.toFixed(2)}×, median ${r.median.toFixed(2)}×; over ${SPREAD_WARNING * 100} %): ` +
    "the machine was likely busy; rerun with more --repeats on a quiet machine before quoting the speedup"
  );
}

/** A generation's samples as an image batch in [0, 1] (the metrics' range). */
export function images(result: GenerationResult, range: [number, number]) {
  const [count, channels, height, width] = result.dims;
  return { data: toUnitRange(result.samples, range), count, channels, height, width };
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function round(v: number, digits: number): number {
  if (!Number.isFinite(v)) return v;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
