/**
 * `npm run bench:peer`: the same generation in PyTorch eager and in Ditto, side by side. PyTorch runs
 * training/dit.py's model with the weights read from the ONNX file Ditto runs (bench/peer/torch_peer.py); both use
 * the same noise, time grid, guidance and thread count, uncached and with FORA N = 2 and 4 (full steps refresh every
 * block's two branch outputs before their gates; the steps between add them with the current gates). Parity of one
 * forward pass is checked to 1e-4 before timing. Repeats are interleaved (PyTorch and Ditto alternate, the order
 * flipping every repeat) and medians are reported, with the load average, since a shared machine skews both.
 * Each repeat also times the GEMM floor (bench/gemm-floor.ts: the uncached step's matrix products alone, chained in
 * one ONNX Runtime session, × steps) and reports it as a fraction of PyTorch's uncached run: no Ditto run can beat it.
 *
 *   npm run bench:peer -- [--samples 10,20] [--repeats 5] [--steps 50] [--cfg 3] [--threads N] [--python PATH]
 *
 * Needs PyTorch (Debian: apt-get install python3-torch); without it, says so and exits 1. A benchmark, not a test.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Tensor } from "onnxruntime-common";
import { relaunchWithMallocTuning } from "../bin/malloc-tuning.js";
import { median } from "../src/bench/harness.ts";
import { fora } from "../src/cache/policies/taylorseer.ts";
import type { CachePolicy } from "../src/cache/policy.ts";
import { classCondition } from "../src/model/manifest.ts";
import { graphOf, type TensorProto, toNumber } from "../src/onnx/proto.ts";
import { loadPipeline, type Pipeline } from "../src/pipeline.ts";
import { feedsFor } from "../src/runtime/model-inputs.ts";
import { batchNoise } from "../src/sampling/noise.ts";
import { createSampler } from "../src/sampling/samplers.ts";
import { type ChainShape, chainSession } from "./gemm-floor.ts";

// The same malloc tuning as the ditto command (bin/malloc-tuning.js); the PyTorch peer inherits it too.
relaunchWithMallocTuning();
const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    samples: { type: "string", default: "10,20" },
    repeats: { type: "string", default: "5" },
    steps: { type: "string", default: "50" },
    cfg: { type: "string", default: "3" },
    threads: { type: "string" },
    python: { type: "string" },
    json: { type: "string" },
  },
});
const python =
  values.python ?? process.env.DITTO_PYTHON ?? (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
const probe = spawnSync(python, ["-c", "import torch, numpy; print(torch.__version__)"], { encoding: "utf8" });
if (probe.status !== 0) {
  process.stderr.write(
    `bench:peer needs PyTorch and NumPy for ${python}, which cannot import them:\n${(probe.stderr || probe.error?.message || "").trim()}\n\n` +
      "Install them, e.g. on Debian/Ubuntu: sudo apt-get install python3-torch python3-numpy\n" +
      "or with pip: python3 -m pip install torch numpy\n" +
      "then run again, or point --python (or DITTO_PYTHON) at an interpreter that has them.\n",
  );
  process.exit(1);
}
const sizes = values.samples.split(",").map(Number);
const repeats = Number(values.repeats);
const steps = Number(values.steps);
const cfg = Number(values.cfg);
const threads = values.threads ? Number(values.threads) : availableParallelism();
const work = mkdtempSync(join(tmpdir(), "ditto-peer-"));
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

const pipeline = await loadPipeline(undefined, values.threads ? { session: { intraOpThreads: threads } } : {});
const m = pipeline.manifest;
const arch = m.architecture as Record<string, number> | undefined;
if (!arch) throw new Error("the model's manifest has no architecture block (bench:peer runs the shipped fashion-dit)");
writeWeights(pipeline, work);
const peer = startPeer();
const info = await peer.ask({ cmd: "load", weights: work, arch, threads });
const blas = (info.blas as string[]).join(", ");
if (/\/blas\/libblas/.test(blas)) {
  console.warn(
    `warning: PyTorch uses the reference BLAS (${blas}), ~20× slower than OpenBLAS; ` +
      "install libopenblas0-openmp (Debian) for a fair comparison",
  );
}
console.log(
  `PyTorch ${info.torch} (${info.threads} threads, BLAS ${blas || "built in"}, OMP_WAIT_POLICY=${process.env.OMP_WAIT_POLICY ?? "PASSIVE"}) vs Ditto (${values.threads ? `--threads ${threads}` : `default threads = ${threads}`}); ` +
    `${steps} steps, CFG ${cfg}, ${repeats} interleaved repeats; load average at start ${load()}`,
);

const parity = await forwardParity(pipeline);
console.log(`forward parity (batch 4, Ditto's cut + fused sessions vs PyTorch): max |Δv| = ${parity.toExponential(2)}`);
if (!(parity <= 1e-4)) {
  console.error("parity check failed: the PyTorch peer does not compute what Ditto computes (limit 1e-4)");
  await peer.close();
  process.exit(1);
}

const settings: { name: string; interval: number; policy: () => CachePolicy | undefined }[] = [
  { name: "uncached", interval: 0, policy: () => undefined },
  { name: "FORA N=2", interval: 2, policy: () => fora({ interval: 2 }) },
  { name: "FORA N=4", interval: 4, policy: () => fora({ interval: 4 }) },
];
const rows: Record<string, unknown>[] = [];
for (const n of sizes) {
  const seeds = Array.from({ length: n }, (_, i) => i);
  const classes = seeds.map((i) => i % 10);
  const noise = batchNoise(seeds, 784);
  const noisePath = join(work, `noise-${n}.bin`);
  writeFileSync(noisePath, noise);
  const times = Array.from(createSampler(m, { steps }).times);
  const policies = settings.map((s) => s.policy());
  const torchRun = (s: (typeof settings)[number], out?: string) =>
    peer.ask({
      cmd: "generate",
      samples: n,
      dims: [n, 1, 28, 28],
      noise: noisePath,
      classes,
      nullClass: classCondition(m)?.nullClass,
      times,
      cfg,
      interval: s.interval,
      out,
    });
  const dittoRun = (i: number) => pipeline.generate({ classes, seeds, steps, cfg, batch: n, cache: policies[i] });
  process.stderr.write(`${n} samples: warm-up…\n`);
  // Warm-up run of each setting on both sides; the final samples also show the two agree end to end.
  const sampleDiff: number[] = [];
  for (let i = 0; i < settings.length; i++) {
    const out = join(work, `torch-${n}-${i}.bin`);
    await torchRun(settings[i], out);
    const d = await dittoRun(i);
    const t = new Float32Array(readFileSync(out).buffer.slice(0));
    sampleDiff.push(t.reduce((mx, v, k) => Math.max(mx, Math.abs(v - d.samples[k])), 0));
  }
  const torchMs: number[][] = settings.map(() => []);
  const dittoMs: number[][] = settings.map(() => []);
  // The least an uncached run can take here: the step's matrix products alone, chained in one ONNX Runtime session
  // (bench/gemm-floor.ts), run `steps` times at the network batch (both halves of classifier-free guidance).
  const shape: ChainShape = { blocks: arch.blocks, hidden: arch.hidden, mlpRatio: arch.mlpRatio, tokens: arch.tokens };
  const floor = await chainSession(shape, n * (cfg > 1 ? 2 : 1) * arch.tokens, threads);
  const floorMs: number[] = [];
  for (let r = 0; r < repeats; r++) {
    process.stderr.write(`${n} samples: repeat ${r + 1} of ${repeats}…\n`);
    for (let i = 0; i < settings.length; i++) {
      const runTorch = async () => torchMs[i].push((await torchRun(settings[i])).ms as number);
      const runDitto = async () => dittoMs[i].push((await dittoRun(i)).wallMs);
      if (r % 2 === 0) await runTorch().then(runDitto);
      else await runDitto().then(runTorch);
    }
    const t0 = performance.now();
    for (let k = 0; k < steps; k++) await floor.run();
    floorMs.push(performance.now() - t0);
  }
  await floor.release();
  const loadNow = load();
  const floorOverTorch = median(floorMs.map((f, r) => f / torchMs[0][r]));
  settings.forEach((s, i) => {
    const ratio = median(dittoMs[i].map((d, r) => d / torchMs[i][r]));
    const dittoSpeedup = median(dittoMs[0].map((u, r) => u / dittoMs[i][r]));
    const torchSpeedup = median(torchMs[0].map((u, r) => u / torchMs[i][r]));
    rows.push({
      samples: n,
      setting: s.name,
      torchMs: Math.round(median(torchMs[i])),
      dittoMs: Math.round(median(dittoMs[i])),
      dittoOverTorch: round3(ratio),
      dittoSpeedup: round3(dittoSpeedup),
      torchSpeedup: round3(torchSpeedup),
      finalSampleMaxDiff: Number(sampleDiff[i].toExponential(2)),
      loadAverage: loadNow,
      ...(i === 0 ? { gemmFloorMs: Math.round(median(floorMs)), gemmFloorOverTorch: round3(floorOverTorch) } : {}),
    });
  });
  printTable(rows);
  console.log(
    `${n} samples: GEMM floor (the products alone, ${steps} steps) ${(median(floorMs) / 1000).toFixed(2)} s = ` +
      `${floorOverTorch.toFixed(2)} × PyTorch uncached (median of per-repeat ratios)`,
  );
}
await peer.close();
rmSync(work, { recursive: true, force: true });
printTable(rows);
console.log(JSON.stringify({ threads, steps, cfg, repeats, forwardParity: parity, rows }));

/** The table so far (also printed after each size, so a long run that is stopped keeps what it measured). */
function printTable(list: Record<string, unknown>[]): void {
  console.log(
    "\n| samples | setting | PyTorch eager | Ditto | Ditto ÷ PyTorch | speedup vs own uncached (Ditto / PyTorch) | max |Δx| final samples | load avg (1/5/15 min) |",
  );
  console.log("|---:|---|---:|---:|---:|---:|---:|---|");
  for (const r of list) {
    console.log(
      `| ${r.samples} | ${r.setting} | ${((r.torchMs as number) / 1000).toFixed(2)} s | ${((r.dittoMs as number) / 1000).toFixed(2)} s | ` +
        `${(r.dittoOverTorch as number).toFixed(2)} | ${(r.dittoSpeedup as number).toFixed(2)}× / ${(r.torchSpeedup as number).toFixed(2)}× | ` +
        `${r.finalSampleMaxDiff} | ${r.loadAverage} |`,
    );
  }
  const result = { threads, steps, cfg, repeats, forwardParity: parity, rows: list };
  if (values.json) writeFileSync(resolve(values.json), `${JSON.stringify(result, null, 2)}\n`);
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Every float initializer as raw float32, with the node that reads it (PyTorch maps MatMul weights by it). */
function writeWeights(p: Pipeline, dir: string): void {
  const graph = graphOf(p.model.onnx.proto);
  const consumer = new Map<string, { op: string; node: string }>();
  for (const node of graph.node)
    for (const input of node.input ?? [])
      if (!consumer.has(input)) consumer.set(input, { op: node.opType ?? "", node: node.name ?? "" });
  const index: { name: string; dims: number[]; offset: number; consumer?: { op: string; node: string } }[] = [];
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const t of graph.initializer as TensorProto[]) {
    if (t.dataType !== 1) continue;
    const dims = t.dims.map((d) => toNumber(d));
    const bytes = t.rawData && t.rawData.length > 0 ? t.rawData : new Uint8Array(Float32Array.from(t.floatData).buffer);
    index.push({ name: t.name ?? "", dims, offset, consumer: consumer.get(t.name ?? "") });
    parts.push(bytes);
    offset += bytes.length;
  }
  const blob = new Uint8Array(offset);
  let at = 0;
  for (const part of parts) {
    blob.set(part, at);
    at += part.length;
  }
  writeFileSync(join(dir, "weights.bin"), blob);
  writeFileSync(join(dir, "weights.json"), JSON.stringify(index));
}

/** One forward pass through Ditto's segments (as generation runs them) and through PyTorch; max |Δ|. */
async function forwardParity(p: Pipeline): Promise<number> {
  const batch = 4;
  const x = new Float32Array(batch * 784).map((_, i) => Math.sin(i * 0.37) * 0.8);
  const t = new Float32Array(batch).fill(0.37);
  const y = new BigInt64Array([0n, 3n, 7n, 10n]);
  writeFileSync(join(work, "x.bin"), x);
  writeFileSync(join(work, "t.bin"), t);
  writeFileSync(join(work, "y.bin"), new Uint8Array(y.buffer));
  await peer.ask({
    cmd: "forward",
    batch,
    image: [1, 28, 28],
    x: join(work, "x.bin"),
    t: join(work, "t.bin"),
    y: join(work, "y.bin"),
    out: join(work, "v.bin"),
  });
  const torchV = new Float32Array(readFileSync(join(work, "v.bin")).buffer.slice(0));
  const model = p.model;
  const store = new Map(
    Object.entries(
      feedsFor(model.manifest, {
        sample: new Tensor("float32", x, [batch, 1, 28, 28]),
        time: Float64Array.from(t),
        condition: Int32Array.from(y, Number),
      }),
    ),
  );
  for (const s of [await model.embed(), await model.range(0, model.atomCount), await model.head()]) await s.run(store);
  const v = store.get(model.manifest.output.name)?.data as Float32Array;
  return v.reduce((mx, a, i) => Math.max(mx, Math.abs(a - torchV[i])), 0);
}

function startPeer() {
  // Idle OpenMP threads sleep instead of spinning, as Ditto's ONNX Runtime pools do (`spinning` off): spinning
  // threads on a shared or oversubscribed machine stall PyTorch badly.
  const env = { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? "PASSIVE" };
  const child = spawn(python, [join(here, "peer", "torch_peer.py")], { stdio: ["pipe", "pipe", "inherit"], env });
  const lines = createInterface({ input: child.stdout });
  const waiting: ((line: string) => void)[] = [];
  lines.on("line", (line) => waiting.shift()?.(line));
  child.on("exit", (code) => {
    if (code !== 0 && waiting.length > 0) {
      console.error(`the PyTorch peer exited with code ${code}`);
      process.exit(1);
    }
  });
  return {
    ask(request: Record<string, unknown>): Promise<Record<string, unknown>> {
      return new Promise((done) => {
        waiting.push((line) => {
          const reply = JSON.parse(line);
          if (reply.error) throw new Error(`PyTorch peer: ${reply.error}`);
          done(reply);
        });
        child.stdin.write(`${JSON.stringify(request)}\n`);
      });
    },
    async close() {
      child.stdin.write(`${JSON.stringify({ cmd: "quit" })}\n`);
      await new Promise((r) => child.on("close", r));
    },
  };
}
