/**
 * `npm run bench:threads`: does the default thread count (every core) pay off when a step runs many small
 * sessions? Times one uncached forward split into per-atom sessions (embed, 24 branch sessions, head: the layout of
 * per-branch policies such as BAC or schedules) and as one stack session, at 1 thread and at the default, interleaved,
 * medians. Also prints the process's OS threads: every session owns an intra-op pool (onnxruntime-node creates no
 * global pool, so pools cannot be shared), but idle pools sleep, so the count is not what the CPU runs.
 *
 *   npm run bench:threads -- [--batch 32] [--repeats 15]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Tensor } from "onnxruntime-common";
import { median } from "../src/bench/harness.ts";
import { type DiT, loadDiT } from "../src/runtime/dit.ts";
import { feedsFor } from "../src/runtime/model-inputs.ts";
import { defaultIntraOpThreads } from "../src/runtime/node-backend.ts";
import type { Segment, TensorStore } from "../src/runtime/segment.ts";

const { values } = parseArgs({
  options: { batch: { type: "string", default: "32" }, repeats: { type: "string", default: "15" } },
});
const batch = Number(values.batch);
const repeats = Number(values.repeats);
const cores = defaultIntraOpThreads();

async function layouts(model: DiT): Promise<Record<string, Segment[]>> {
  const atoms = await Promise.all(Array.from({ length: model.atomCount }, (_, i) => model.range(i, i + 1)));
  const [embed, head, stack] = [await model.embed(), await model.head(), await model.range(0, model.atomCount)];
  return { "per-atom sessions": [embed, ...atoms, head], "one stack session": [embed, stack, head] };
}

const one = await loadDiT(undefined, { session: { intraOpThreads: 1 } });
const all = await loadDiT(undefined, { session: { intraOpThreads: cores } });
const runs = { 1: await layouts(one), [cores]: await layouts(all) } as Record<number, Record<string, Segment[]>>;
const x = new Float32Array(batch * 784).map((_, i) => Math.sin(i));
const feeds = feedsFor(one.manifest, {
  sample: new Tensor("float32", x, [batch, 1, 28, 28]),
  time: new Float64Array(batch).fill(0.5),
  condition: new Int32Array(batch).map((_, i) => i % 10),
});
const forward = async (segments: Segment[]) => {
  const store: TensorStore = new Map(Object.entries(feeds));
  const t0 = performance.now();
  const cpu = process.cpuUsage();
  for (const s of segments) await s.run(store);
  const used = process.cpuUsage(cpu);
  return { wall: performance.now() - t0, cpu: (used.user + used.system) / 1000 };
};
const threads = () => /Threads:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "?";
console.log(`batch ${batch}, ${repeats} interleaved repeats; OS threads in this process: ${threads()}`);
for (const layout of Object.keys(runs[1])) {
  for (const t of [1, cores]) await forward(runs[t][layout]); // warm-up
  const wall: Record<number, number[]> = { 1: [], [cores]: [] };
  const cpu: Record<number, number[]> = { 1: [], [cores]: [] };
  for (let r = 0; r < repeats; r++) {
    for (const t of r % 2 === 0 ? [1, cores] : [cores, 1]) {
      const m = await forward(runs[t][layout]);
      wall[t].push(m.wall);
      cpu[t].push(m.cpu);
    }
  }
  const ratio = median(wall[cores].map((w, i) => w / wall[1][i]));
  console.log(
    `${layout}: 1 thread ${median(wall[1]).toFixed(1)} ms (CPU ${median(cpu[1]).toFixed(0)} ms), ` +
      `${cores} threads ${median(wall[cores]).toFixed(1)} ms (CPU ${median(cpu[cores]).toFixed(0)} ms); ` +
      `${cores} ÷ 1 threads = ${ratio.toFixed(3)}`,
  );
}
