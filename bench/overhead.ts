/**
 * `npm run bench:overhead`: what splitting the model into sessions costs. First the median ratios to one
 * whole-model session, over interleaved repeated runs at batch 1 and batch 16, of the uncached forward time of the
 * block-split chain (embed, one session per block, head) and of the switched step (conditioning + the one session
 * a per-branch table's steps run, every branch computed); then the per-unit tax of policies that compute every unit
 * (`fbcache:threshold=0`, `fora:interval=1`, an all-compute table) against uncached on the shipped model and two
 * small graphs (bench/unit-tax-measure.ts; env REPEATS_TAX, default 15: at 5 the medians of single cells swung ±7 %
 * between runs, STEPS, THREADS as bench:unit-tax's REPEATS, STEPS, THREADS). Last line: {"ratioBatch1": …,
 * "ratioBatch16": …, "switchedRatioBatch1": …, "switchedRatioBatch16": …, "policies": {"<model>": {"batch1":
 * {"<policy>": ratio, …}, …}}}.
 */

import { Tensor } from "onnxruntime-common";
import { relaunchWithMallocTuning } from "../bin/malloc-tuning.js";
import { median } from "../src/bench/harness.ts";
import { switchNames } from "../src/onnx/switch.ts";
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
// What the engine runs for a step of a per-branch table (BAC, HarmoniCa, L2C) since issue 14: the conditioning
// session (once per generation there, every forward here, so both sides do the same work) and the switched step
// session (onnx/switch.ts), timed with every branch computed.
const units = model.structure.atoms.map((_, i) => ({ start: i, end: i + 1, cache: "value" as const }));
const conditioning = await model.conditioning();
// A model whose branches cannot be switched (GraphError) keeps the unit-by-unit path: no switched ratio then.
const switchedStep = await model.switched(units, true).catch(() => undefined);
const on = new Tensor("bool", new Uint8Array([1]), [1]);
const off = new Tensor("bool", new Uint8Array([0]), [1]);
const nothing = new Tensor("float32", new Float32Array(0), [0]);
const result: Record<string, number | null> = {};
for (const batch of [1, 16]) {
  const feeds = syntheticFeeds(
    model.manifest,
    new Int32Array(batch).map((_, i) => i % 10),
  );
  const forwards: Record<string, () => Promise<unknown>> = {
    whole: () => whole.run(feeds),
    split: async () => {
      const store: TensorStore = new Map(Object.entries(feeds));
      for (const s of segments) await s.run(store);
    },
  };
  if (switchedStep)
    forwards.switched = async () => {
      const store: TensorStore = new Map(Object.entries(feeds));
      units.forEach((_, u) => {
        const names = switchNames(u);
        store.set(names.flag, on);
        store.set(names.keep, off);
        store.set(names.cached, nothing);
      });
      await conditioning?.run(store);
      await switchedStep.run(store);
    };
  const labels = Object.keys(forwards);
  for (let i = 0; i < 3; i++) for (const label of labels) await forwards[label]();
  const times: Record<string, number[]> = Object.fromEntries(labels.map((l) => [l, []]));
  for (let r = 0; r < repeats; r++) {
    // The order rotates every repeat, so no forward always runs first or after the same neighbour.
    for (let k = 0; k < labels.length; k++) {
      const label = labels[(k + r) % labels.length];
      const t0 = performance.now();
      await forwards[label]();
      times[label].push(performance.now() - t0);
    }
  }
  const ratio = (label: string) =>
    times[label] ? Math.round(median(times[label].map((t, i) => t / times.whole[i])) * 1000) / 1000 : null;
  result[`ratioBatch${batch}`] = ratio("split");
  result[`switchedRatioBatch${batch}`] = ratio("switched");
  console.log(
    `batch ${batch}: whole-model ${median(times.whole).toFixed(2)} ms per forward; block-split ÷ whole = ` +
      `${ratio("split")}, switched step ÷ whole = ${ratio("switched") ?? "n/a (the model cannot be switched)"} ` +
      `(medians of ${repeats})`,
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
