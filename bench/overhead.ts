/**
 * `npm run bench:overhead`: what splitting the model into sessions costs. First the median ratio of the block-split
 * uncached forward time to one whole-model session, over interleaved repeated runs, at batch 1 and batch 16; then
 * the per-unit tax of policies that compute every unit (`fbcache:threshold=0`, `fora:interval=1`, an all-compute
 * table) against uncached on the shipped model and two small graphs (bench/unit-tax-measure.ts; env REPEATS_TAX,
 * default 15: at 5 the medians of single cells swung ±7 % between runs, STEPS, THREADS as bench:unit-tax's REPEATS, STEPS, THREADS).
 * Last line: {"ratioBatch1": …, "ratioBatch16": …, "policies": {"<model>": {"batch1": {"<policy>": ratio, …}, …}}}.
 */
import { relaunchWithMallocTuning } from "../bin/malloc-tuning.js";
import { median } from "../src/bench/harness.ts";
import { loadDiT } from "../src/runtime/dit.ts";
import type { TensorStore } from "../src/runtime/segment.ts";
import { syntheticFeeds } from "./synthetic-feeds.ts";
import { defaultTaxModels, measureUnitTax } from "./unit-tax-measure.ts";

// The same malloc tuning as the ditto command (bin/malloc-tuning.js).
relaunchWithMallocTuning();
const repeats = Number(process.env.REPEATS ?? 40);
const model = await loadDiT(process.argv[2]);
const whole = await model.wholeModel({ fused: true });
const blocks = await Promise.all(
  model.structure.blocks.map((b) => model.range(b.atoms[0], (b.atoms.at(-1) as number) + 1)),
);
const segments = [await model.embed(), ...blocks, await model.head()];
const result: Record<string, number> = {};
for (const batch of [1, 16]) {
  const feeds = syntheticFeeds(
    model.manifest,
    new Int32Array(batch).map((_, i) => i % 10),
  );
  const split = async () => {
    const store: TensorStore = new Map(Object.entries(feeds));
    for (const s of segments) await s.run(store);
  };
  const monolithic = () => whole.run(feeds);
  for (let i = 0; i < 3; i++) await Promise.all([]).then(split).then(monolithic);
  const ratios: number[] = [];
  const times: number[] = [];
  const timed = async (run: () => Promise<unknown>) => {
    const t0 = performance.now();
    await run();
    return performance.now() - t0;
  };
  for (let r = 0; r < repeats; r++) {
    // The order flips every repeat, so neither side always runs first after the other has warmed the caches.
    const [tw, ts] =
      r % 2 === 0
        ? [await timed(monolithic), await timed(split)]
        : await timed(split).then(async (s) => [await timed(monolithic), s]);
    ratios.push(ts / tw);
    times.push(tw);
  }
  result[`ratioBatch${batch}`] = Math.round(median(ratios) * 1000) / 1000;
  console.log(
    `batch ${batch}: whole-model ${median(times).toFixed(2)} ms per forward; block-split ÷ whole = ${median(ratios).toFixed(3)} (median of ${repeats})`,
  );
}
await whole.release();
await model.release();
console.log("\n# Policies that compute every unit, against uncached (uncached ÷ policy; 1 = no tax)");
const policies = await measureUnitTax(defaultTaxModels(), {
  repeats: Number(process.env.REPEATS_TAX ?? 15),
  steps: Number(process.env.STEPS ?? 10),
  threads: Number(process.env.THREADS ?? 1),
});
console.log(JSON.stringify({ ...result, policies }));
