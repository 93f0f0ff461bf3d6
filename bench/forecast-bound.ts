/**
 * `npm run bench:bound`: how close to its FLOP-ideal speedup a forecasting policy can get on this machine, from its
 * parts timed side by side (medians of interleaved repeats, 10 samples with CFG = batch 20, 50 steps):
 *   uncached  = conditioning + S·(patch + stack + head)
 *   Ditto     = conditioning + F·(patch + stack with stacked values + head) + (S − F)·(patch + forecast + head)
 *   bound     = conditioning + F·(patch + stack exposing its branch values + head) + (S − F)·(patch + head)
 * The bound lets forecasting cost nothing and keeps only what cannot go: full steps must hand every branch's
 * pre-gate value out of ONNX Runtime (TaylorSeer caches them), and every step runs the patch embed and the head.
 * Policy: TaylorSeer interval 5, order 2, warm-up 2 (F = 11 full steps of S = 50). Last line: JSON.
 */
import { Tensor } from "onnxruntime-common";
import { median } from "../src/bench/harness.ts";
import { Accumulator } from "../src/cache/accumulate.ts";
import { fullSteps } from "../src/cache/policies/taylorseer.ts";
import { classCondition } from "../src/model/manifest.ts";
import { STACK_OUTPUT } from "../src/onnx/rewrite.ts";
import { ConditioningTable } from "../src/runtime/conditioning.ts";
import { loadDiT } from "../src/runtime/dit.ts";
import type { Segment, TensorStore } from "../src/runtime/segment.ts";
import { syntheticFeeds } from "./synthetic-feeds.ts";

const repeats = Number(process.env.REPEATS ?? 30);
const steps = 50;
const full = fullSteps(steps, 5, 2).length;
const samples = 10;
const batch = 2 * samples;
const model = await loadDiT(process.argv[2]);
const { atoms } = model.structure;
const conditioning = await model.conditioning();
if (!conditioning) throw new Error("this model's embed has no timestep/condition-only part");
const [patch, head, plain, stacked] = await Promise.all([
  model.patch(),
  model.head(),
  model.range(0, atoms.length),
  model.stackedRange(0, atoms.length),
]);
const values = await model.range(
  0,
  atoms.length,
  atoms.map((a) => a.value),
);
const nullClass = classCondition(model.manifest)?.nullClass ?? 0;
const classes = Int32Array.from({ length: batch }, (_, i) => (i < samples ? i % 10 : nullClass));
const feeds = syntheticFeeds(model.manifest, classes);
const base: TensorStore = new Map(Object.entries(feeds));
await (await model.embed()).run(base);
await plain.run(base); // the head's input
const times = Float64Array.from({ length: steps }, (_, i) => 1 - i / steps);
const buildTable = () => ConditioningTable.build(conditioning, model.manifest, times, [...classes], 0);
const stackedStore = new Map(base);
await stacked.run(stackedStore);
const cache = stackedStore.get(STACK_OUTPUT) as Tensor;
const accumulator = Accumulator.for(model.backend, model.sessionOptions);
const h0 = base.get(atoms[0].streamIn) as Tensor;
const gates = atoms.map((a) => base.get(a.gate as string) as Tensor);
// Order 2 forecasts from the last three full steps' values: three cached tensors.
const older = [1, 2].map(() => new Tensor("float32", new Float32Array(cache.data as Float32Array), cache.dims));
const terms = [cache, ...older].map((tensor, j) => ({ tensor, coef: [2.5, -2, 0.5][j] }));
const forecast = () => accumulator.runStacked(h0, gates, { terms });
const run = (s: Segment) => () => s.run(new Map(base));
const parts: Record<string, () => Promise<unknown>> = {
  conditioning: buildTable,
  patch: run(patch),
  head: run(head),
  stack: run(plain),
  stackValues: run(values),
  stackStacked: run(stacked),
  forecast,
};
const timings: Record<string, number[]> = Object.fromEntries(Object.keys(parts).map((name) => [name, []]));
for (let r = -2; r < repeats; r++) {
  for (const [name, fn] of Object.entries(parts)) {
    const t0 = performance.now();
    await fn();
    if (r >= 0) timings[name].push(performance.now() - t0); // two rounds of warm-up
  }
}
const t = Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, median(v)]));
const flops = await model.flopsBreakdown();
const blockFlops = flops.atoms.reduce((a, b) => a + b, 0);
const ideal =
  (steps * (flops.embed + flops.head + blockFlops)) / (steps * (flops.embed + flops.head) + full * blockFlops);
const perStep = t.patch + t.head;
const uncached = t.conditioning + steps * (perStep + t.stack);
const ditto = t.conditioning + full * (perStep + t.stackStacked) + (steps - full) * (perStep + t.forecast);
const bound = t.conditioning + full * (perStep + t.stackValues) + (steps - full) * perStep;
for (const [name, ms] of Object.entries(t)) console.log(`${name.padEnd(14)} ${ms.toFixed(2)} ms`);
const line = (label: string, ms: number) =>
  console.log(
    `${label}: ${(uncached / ms).toFixed(2)}× = ${((uncached / ms / ideal) * 100).toFixed(0)} % of the ideal ${ideal.toFixed(2)}×`,
  );
console.log(`uncached ${uncached.toFixed(0)} ms; TaylorSeer N=5 O=2 W=2: ${full} full steps of ${steps}`);
line(`Ditto's parts (${ditto.toFixed(0)} ms)`, ditto);
line(`bound with free forecasts (${bound.toFixed(0)} ms)`, bound);
const round = (x: number) => Math.round(x * 1000) / 1000;
console.log(
  JSON.stringify({
    idealSpeedup: round(ideal),
    dittoSpeedup: round(uncached / ditto),
    boundSpeedup: round(uncached / bound),
    boundFractionOfIdeal: round(uncached / bound / ideal),
    partsMs: Object.fromEntries(Object.entries(t).map(([k, v]) => [k, round(v)])),
  }),
);
