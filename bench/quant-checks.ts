/**
 * `npm run bench:quant-checks`: two measurements behind the README's int8 findings, on the folders bench:quant made.
 * 1. Whole-model forward time (one session, modulation included, batch 24), float vs each int8 variant, interleaved
 *    repeats, medians. 2. How far each variant's modulation tensors (every shift, scale and gate: the conditioning
 *    table at 3 steps × 11 conditions) are from the float model's, as relative MSE (tfmq.md's DS criterion).
 */
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { median } from "../src/bench/harness.ts";
import { ConditioningTable } from "../src/runtime/conditioning.ts";
import { type DiT, loadDiT } from "../src/runtime/dit.ts";
import { createSampler } from "../src/sampling/samplers.ts";

const root = join(import.meta.dirname, "..");
const variants = ["int8-dynamic", "int8-static", "int8-dynamic-int8mod"];
const models = [
  join(root, "models/fashion-dit"),
  ...variants.map((v) => join(root, "bench/models", `fashion-dit-${v}`)),
];
const dits = await Promise.all(models.map((m) => loadDiT(m)));

const B = 24;
const feeds = {
  x: new ort.Tensor(
    "float32",
    new Float32Array(B * 784).map((_, i) => Math.sin(i)),
    [B, 1, 28, 28],
  ),
  t: new ort.Tensor("float32", new Float32Array(B).fill(0.5), [B]),
  y: new ort.Tensor(
    "int64",
    BigInt64Array.from({ length: B }, (_, i) => BigInt(i % 10)),
    [B],
  ),
};
const sessions = await Promise.all(dits.map((d) => d.wholeModel()));
for (const s of sessions) await s.run(feeds);
const times: number[][] = sessions.map(() => []);
for (let r = 0; r < Number(process.env.REPEATS ?? 15); r++) {
  for (const [i, s] of sessions.entries()) {
    const start = performance.now();
    await s.run(feeds);
    times[i].push(performance.now() - start);
  }
}
const float = median(times[0]);
for (const [i, d] of dits.entries())
  console.log(
    `forward ${d.manifest.name}: ${median(times[i]).toFixed(1)} ms, ${(float / median(times[i])).toFixed(2)}×`,
  );

async function table(d: DiT, times: Float64Array, classes: number[]) {
  const seg = await d.conditioning();
  if (!seg) throw new Error("no conditioning part");
  return (await ConditioningTable.build(seg, d.manifest, times, classes, 1)) as ConditioningTable;
}
const grid = createSampler(dits[0].manifest, { steps: 50 }).times.subarray(0, 50);
const classes = Array.from({ length: 11 }, (_, i) => i);
const reference = await table(dits[0], grid, classes);
for (const d of dits.slice(1)) {
  const t = await table(d, grid, classes);
  const errors: number[] = [];
  for (const s of [0, 25, 49]) {
    const time = new Float64Array(11).fill(grid[s]);
    const a = reference.lookup(time, Int32Array.from(classes));
    const b = t.lookup(time, Int32Array.from(classes));
    for (const [name, x] of a ?? []) {
      const [p, q] = [x.data as Float32Array, b?.get(name)?.data as Float32Array];
      let err = 0;
      let power = 0;
      for (let i = 0; i < p.length; i++) {
        err += (p[i] - q[i]) ** 2;
        power += p[i] ** 2;
      }
      errors.push(err / Math.max(power, 1e-30));
    }
  }
  const mean = errors.reduce((x, y) => x + y, 0) / errors.length;
  console.log(
    `modulation ${d.manifest.name}: relative MSE mean ${mean.toExponential(2)}, max ${Math.max(...errors).toExponential(2)}`,
  );
}
for (const s of sessions) await s.release();
