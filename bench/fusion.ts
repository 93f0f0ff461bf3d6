/**
 * `npm run bench:fusion`: what one kernel fusion of the cut graphs saves — the tanh GELU (onnx/fuse-gelu.ts) or
 * self-attention (onnx/fuse-attention.ts). Times one uncached forward (embed, one stack session, head) with every
 * fusion on and with the chosen one off, interleaved, medians, and prints the largest difference between the two
 * outputs. `npm run bench:gelu` is `--fusion gelu`.
 *
 *   npm run bench:fusion -- [--fusion attention|gelu] [--batch 32] [--repeats 15]
 */
import { parseArgs } from "node:util";
import { Tensor } from "onnxruntime-common";
import { median } from "../src/bench/harness.ts";
import { type DiT, loadDiT } from "../src/runtime/dit.ts";
import { feedsFor } from "../src/runtime/model-inputs.ts";
import type { TensorStore } from "../src/runtime/segment.ts";

const { values } = parseArgs({
  options: {
    fusion: { type: "string", default: "attention" },
    batch: { type: "string", default: "32" },
    repeats: { type: "string", default: "15" },
  },
});
const off = { gelu: { fuseGelu: false }, attention: { fuseAttention: false } }[values.fusion];
if (!off) {
  console.error(`unknown --fusion ${values.fusion}: use gelu or attention`);
  process.exit(2);
}
const batch = Number(values.batch);
const repeats = Number(values.repeats);
const fused = await loadDiT(undefined);
const plain = await loadDiT(undefined, off);
const x = new Float32Array(batch * 784).map((_, i) => Math.sin(i));
const feeds = feedsFor(fused.manifest, {
  sample: new Tensor("float32", x, [batch, 1, 28, 28]),
  time: new Float64Array(batch).fill(0.5),
  condition: new Int32Array(batch).map((_, i) => i % 10),
});
const segments = async (m: DiT) => [await m.embed(), await m.range(0, m.atomCount), await m.head()];
const runs = { fused: await segments(fused), unfused: await segments(plain) };
const forward = async (name: keyof typeof runs) => {
  const store: TensorStore = new Map(Object.entries(feeds));
  const t0 = performance.now();
  const cpu = process.cpuUsage();
  for (const s of runs[name]) await s.run(store);
  const used = process.cpuUsage(cpu);
  return {
    ms: performance.now() - t0,
    cpuMs: (used.user + used.system) / 1000,
    out: store.get(fused.manifest.output.name)?.data as Float32Array,
  };
};
const a = await forward("fused");
const b = await forward("unfused");
const diff = a.out.reduce((mx, v, i) => Math.max(mx, Math.abs(v - b.out[i])), 0);
const times = { fused: [] as number[], unfused: [] as number[] };
const cpu = { fused: [] as number[], unfused: [] as number[] };
for (let r = 0; r < repeats; r++) {
  for (const name of r % 2 === 0 ? (["fused", "unfused"] as const) : (["unfused", "fused"] as const)) {
    const m = await forward(name);
    times[name].push(m.ms);
    cpu[name].push(m.cpuMs);
  }
}
const ratio = (t: typeof times) => median(t.fused.map((f, i) => f / t.unfused[i])).toFixed(3);
console.log(
  `${values.fusion}, batch ${batch}: fused ${median(times.fused).toFixed(1)} ms (CPU ${median(cpu.fused).toFixed(0)} ms), unfused ` +
    `${median(times.unfused).toFixed(1)} ms (CPU ${median(cpu.unfused).toFixed(0)} ms) per forward; fused ÷ unfused = ` +
    `${ratio(times)} wall, ${ratio(cpu)} CPU (medians of ${repeats}); max |Δv| = ${diff.toExponential(2)}`,
);
