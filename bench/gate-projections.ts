/**
 * `npx tsx bench/gate-projections.ts [--batch 12] [--repeats 15]`: what a full step's gate projections cost
 * (onnx/rewrite.ts appendGateProjections). A FORA/TaylorSeer full step runs the stack session with K gated sums as an
 * extra output, K = the later reads of its values: FORA N hands out N − 1, TaylorSeer order m at interval N up to
 * (m + 1)(N − 1) (its forecasts combine the last m + 1 full steps). Times the plain stack session and the projected
 * one in both forms at K = 1, 3, 6 and 12, interleaved, median wall time, as a ratio to the plain session.
 */
import { parseArgs } from "node:util";
import { Tensor } from "onnxruntime-common";
import { relaunchWithMallocTuning } from "../bin/malloc-tuning.js";
import { median } from "../src/bench/harness.ts";
import { PROJECTION_GATES } from "../src/onnx/rewrite.ts";
import { loadDiT } from "../src/runtime/dit.ts";
import type { TensorStore } from "../src/runtime/segment.ts";
import { syntheticFeeds } from "./synthetic-feeds.ts";

relaunchWithMallocTuning();
const { values } = parseArgs({
  options: { batch: { type: "string", default: "12" }, repeats: { type: "string", default: "15" } },
});
const batch = Number(values.batch);
const model = await loadDiT();
const units = model.atomCount;
const width = (model.manifest.architecture as Record<string, number>).hidden;
const embedded: TensorStore = new Map(Object.entries(syntheticFeeds(model.manifest, new Int32Array(batch))));
await (await model.embed()).run(embedded);
const plain = await model.range(0, units);
const cases: [string, (store: TensorStore) => Promise<void>][] = [["plain", (s) => plain.run(s)]];
for (const form of ["direct", "stacked"] as const) {
  const projected = await model.projectedRange(0, units, form);
  for (const k of [1, 3, 6, 12]) {
    const gates = new Tensor("float32", new Float32Array(k * units * batch * width).fill(0.1), [
      k,
      units,
      batch,
      1,
      width,
    ]);
    cases.push([`${form}, K = ${k}`, (s) => projected.run(s.set(PROJECTION_GATES, gates))]);
  }
}
const times = new Map(cases.map(([label]) => [label, [] as number[]]));
for (let r = -1; r < Number(values.repeats); r++)
  for (const [label, run] of cases) {
    const t0 = performance.now();
    await run(new Map(embedded));
    if (r >= 0) times.get(label)?.push(performance.now() - t0);
  }
const base = median(times.get("plain") ?? []);
console.log(`stack session at network batch ${batch}, median of ${values.repeats} interleaved runs (wall):`);
console.log("| session | ms | ÷ plain |\n|---|---:|---:|");
for (const [label, t] of times)
  console.log(`| ${label} | ${median(t).toFixed(1)} | ${(median(t) / base).toFixed(3)} |`);
