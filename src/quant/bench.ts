/**
 * The int8 benchmark: rows that differ in model (float, int8 variants) as well as in cache policy, measured side by
 * side in one process. Timing is round-robin — every repeat runs every row once, in the same order — and each row's
 * speedup is the median over repeats of (float uncached time ÷ row time) within that repeat, so drift cancels.
 * Quality is reported against the float uncached images first and, second, against the row model's own uncached
 * images (shared/specs/tfmq.md, Pitfall 7).
 */
import { images, median, round } from "../bench/harness.ts";
import { benchPlot } from "../bench/report.ts";
import { parseCacheSpec } from "../cache/registry.ts";
import { accuracy, Classifier } from "../metrics/classifier.ts";
import { psnr, ssim } from "../metrics/fidelity.ts";
import { featureStats, frechetDistance } from "../metrics/frechet.ts";
import { classCondition, requireImage } from "../model/manifest.ts";
import type { GenerationResult, Pipeline } from "../pipeline.ts";

export interface QuantBenchRow {
  /** Model label (e.g. "float", "int8-dynamic") and its pipeline. */
  model: string;
  pipeline: Pipeline;
  cache: string;
}

export interface QuantBenchSettings {
  samples: number;
  steps: number;
  cfg: number;
  repeats: number;
  timingSamples: number;
  batch: number;
}

export interface QuantBenchResult {
  rows: {
    model: string;
    cache: string;
    wallMs: number;
    /** Median of per-repeat float-uncached ÷ row wall time. */
    speedup: number;
    psnrVsFloat: number;
    ssimVsFloat: number;
    /** Median over samples of the per-sample PSNR against float uncached. */
    medianPsnrVsFloat: number;
    psnrVsOwnUncached: number;
    accuracy: number;
    fd: number;
    idealSpeedup: number;
  }[];
  settings: QuantBenchSettings & { date: string; floatUncachedWallMs: number };
}

export async function runQuantBench(
  rows: QuantBenchRow[],
  settings: QuantBenchSettings,
  onProgress?: (label: string) => void,
): Promise<QuantBenchResult> {
  const reference = rows.find((r) => r.model === "float" && r.cache === "none");
  if (!reference) throw new Error("the rows must include float / none, the reference");
  const m = reference.pipeline.manifest;
  const numClasses = classCondition(m)?.numClasses ?? 1;
  const seeds = Array.from({ length: settings.samples }, (_, i) => i);
  const quality = {
    seeds,
    classes: seeds.map((i) => i % numClasses),
    steps: settings.steps,
    cfg: settings.cfg,
    batch: settings.batch,
  };
  const timingSeeds = Array.from({ length: settings.timingSamples }, (_, i) => 10_000 + i);
  const timing = {
    seeds: timingSeeds,
    classes: timingSeeds.map((i) => i % numClasses),
    steps: settings.steps,
    cfg: settings.cfg,
    batch: settings.timingSamples,
  };
  const policies = rows.map((r) => parseCacheSpec(r.cache));
  for (const [i, row] of rows.entries()) {
    await row.pipeline.generate({ ...timing, seeds: [1], classes: [1], cache: policies[i] });
    onProgress?.(`warm-up ${row.model} ${row.cache}`);
  }
  const classifier = await Classifier.load();
  const testStats = await classifier.testStats();
  const uncached = new Map<Pipeline, GenerationResult>();
  const outputs: GenerationResult[] = [];
  for (const [i, row] of rows.entries()) {
    const result = await row.pipeline.generate({ ...quality, cache: policies[i] });
    if (row.cache === "none") uncached.set(row.pipeline, result);
    outputs.push(result);
    onProgress?.(`quality ${row.model} ${row.cache}`);
  }
  const times: number[][] = rows.map(() => []);
  const ideal: number[] = rows.map(() => 1);
  for (let r = 0; r < settings.repeats; r++) {
    for (const [i, row] of rows.entries()) {
      const result = await row.pipeline.generate({ ...timing, cache: policies[i] });
      times[i].push(result.wallMs);
      ideal[i] = result.reports[0].idealSpeedup;
      onProgress?.(`timing ${r + 1}/${settings.repeats} ${row.model} ${row.cache}`);
    }
  }
  const refIndex = rows.indexOf(reference);
  const floatImages = images(outputs[refIndex], requireImage(m, "bench:quant").range);
  const out: QuantBenchResult["rows"] = [];
  for (const [i, row] of rows.entries()) {
    const img = images(outputs[i], requireImage(m, "bench:quant").range);
    const own = uncached.get(row.pipeline);
    const cls = await classifier.classify(outputs[i].samples, settings.samples);
    out.push({
      model: row.model,
      cache: row.cache,
      wallMs: round(median(times[i]), 1),
      speedup: round(median(times[i].map((t, k) => times[refIndex][k] / t)), 3),
      psnrVsFloat: round(psnr(img, floatImages), 2),
      ssimVsFloat: round(ssim(img, floatImages), 4),
      medianPsnrVsFloat: round(median(perSamplePsnr(img, floatImages)), 2),
      psnrVsOwnUncached: own ? round(psnr(img, images(own, requireImage(m, "bench:quant").range)), 2) : Number.NaN,
      accuracy: round(accuracy(cls.predictions, quality.classes), 4),
      fd: round(frechetDistance(featureStats(cls.features, cls.featureDim), testStats), 2),
      idealSpeedup: round(ideal[i], 3),
    });
  }
  await classifier.release();
  return {
    rows: out,
    settings: {
      ...settings,
      date: new Date().toISOString().slice(0, 10),
      floatUncachedWallMs: round(median(times[refIndex]), 1),
    },
  };
}

export function quantBenchMarkdown(result: QuantBenchResult, command: string): string {
  const s = result.settings;
  const fmt = (v: number, d: number) => (v === Number.POSITIVE_INFINITY ? "∞" : Number.isNaN(v) ? "–" : v.toFixed(d));
  return [
    `Measured on ${s.date}, ${s.steps} Euler steps, CFG ${s.cfg}; quality over ${s.samples} samples (seeds 0–${s.samples - 1}, ` +
      `classes cycling); timing: median of ${s.repeats} round-robin repeats of ${s.timingSamples} samples, float uncached ` +
      `${fmt(s.floatUncachedWallMs / 1000, 2)} s. Command: \`${command}\``,
    "",
    "| model | cache | speedup vs float uncached | ideal (same model) | PSNR vs float (dB) | median per-sample PSNR | SSIM vs float | PSNR vs own uncached | accuracy | FD |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...result.rows.map(
      (r) =>
        `| ${r.model} | \`${r.cache}\` | ${fmt(r.speedup, 2)}× | ${fmt(r.idealSpeedup, 2)}× | ${fmt(r.psnrVsFloat, 2)} | ` +
        `${fmt(r.medianPsnrVsFloat, 2)} | ${fmt(r.ssimVsFloat, 4)} | ${fmt(r.psnrVsOwnUncached, 2)} | ${fmt(r.accuracy * 100, 1)} % | ${fmt(r.fd, 1)} |`,
    ),
    "",
  ].join("\n");
}

/** The shared speed-vs-PSNR chart, one point per row, PSNR against float uncached, coloured by model. */
export function quantBenchPlot(result: QuantBenchResult): Promise<Buffer> {
  const rows = result.rows.map((r) => ({
    policy: r.model,
    label: r.cache === "none" ? r.model : `${r.model} + ${r.cache}`,
    spec: r.cache,
    wallMs: r.wallMs,
    speedup: r.speedup,
    idealSpeedup: r.idealSpeedup,
    speedupRange: [r.speedup, r.speedup] as [number, number],
    speedupSpread: 0,
    psnr: r.psnrVsFloat,
    ssim: r.ssimVsFloat,
    nlpd: Number.NaN,
    fd: r.fd,
    kid: Number.NaN,
    accuracy: r.accuracy,
    tfupAccuracy: Number.NaN,
    cacheBytes: 0,
    featureDistance: 0,
    efficiency: r.speedup / r.idealSpeedup,
  }));
  const s = result.settings;
  return benchPlot({
    rows,
    settings: { ...s, model: "fashion-dit float vs int8", uncachedWallMs: s.floatUncachedWallMs, classifier: null },
    warnings: [],
  });
}

type Images = ReturnType<typeof images>;

function perSamplePsnr(a: Images, b: Images): number[] {
  const size = a.channels * a.height * a.width;
  return Array.from({ length: a.count }, (_, i) =>
    psnr(
      { ...a, data: a.data.subarray(i * size, (i + 1) * size), count: 1 },
      { ...b, data: b.data.subarray(i * size, (i + 1) * size), count: 1 },
    ),
  );
}
