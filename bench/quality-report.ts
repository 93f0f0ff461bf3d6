/**
 * The shipped model's quality report (training/README.md): 1,000 samples (100 per class, 50 Euler steps, the
 * recommended CFG) scored by the evaluation classifier — accuracy and Fréchet distance to the test-set statistics
 * — next to the same FD for real images (the shipped 1,000 test images, and optionally 1,000 training images
 * written by training/sample_real.py).
 *
 * Usage: npx tsx bench/quality-report.ts [--real /tmp/train-1000.idx] [--per-class 100] [--steps 50]
 */
import { parseArgs } from "node:util";
import { accuracy, Classifier, readIdx } from "../src/metrics/classifier.ts";
import { featureStats, frechetDistance } from "../src/metrics/frechet.ts";
import { loadPipeline } from "../src/pipeline.ts";

const { values } = parseArgs({
  options: {
    real: { type: "string" },
    "per-class": { type: "string", default: "100" },
    steps: { type: "string", default: "50" },
  },
});
const perClass = Number(values["per-class"]);
const pipeline = await loadPipeline();
const classifier = await Classifier.load();
const stats = await classifier.testStats();
const steps = Number(values.steps);
const cfg = pipeline.manifest.recommended?.cfgScale ?? 3;
const classes = Array.from({ length: 10 * perClass }, (_, i) => Math.floor(i / perClass));
const seeds = classes.map((_, i) => i);
const started = performance.now();
const result = await pipeline.generate({
  classes,
  seeds,
  steps,
  cfg,
  batch: 50,
  onStep: (p) => {
    if (p.step === p.steps - 1) process.stderr.write(`\rbatch ${p.batch + 1}/${p.batches}`);
  },
});
process.stderr.write("\n");
const generated = await classifier.classify(result.samples, classes.length);
const fd = (features: Float32Array, dim: number) => frechetDistance(featureStats(features, dim), stats);
const report: Record<string, number | string> = {
  samples: classes.length,
  steps,
  cfg,
  generationSeconds: Math.round((performance.now() - started) / 1000),
  accuracy: accuracy(generated.predictions, classes),
  fdGenerated: fd(generated.features, generated.featureDim),
};
const subset = await classifier.testSubset();
const testOut = await classifier.classify(subset.images, subset.count);
report.fdRealTest1000 = fd(testOut.features, testOut.featureDim);
report.accuracyRealTest1000 = accuracy(testOut.predictions, subset.labels);
if (values.real) {
  const real = await readIdx(values.real);
  const images = Float32Array.from(real.data, (v) => v / 127.5 - 1);
  const out = await classifier.classify(images, real.dims[0]);
  report.fdRealTrain = fd(out.features, out.featureDim);
  report.realTrainCount = real.dims[0];
}
const perClassAccuracy = Array.from({ length: 10 }, (_, k) => {
  const idx = classes.flatMap((c, i) => (c === k ? [i] : []));
  return idx.filter((i) => generated.predictions[i] === k).length / idx.length;
});
report.perClassAccuracy = perClassAccuracy.map((a) => a.toFixed(2)).join(" ");
console.log(JSON.stringify(report, null, 1));
await pipeline.release();
