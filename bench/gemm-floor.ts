/**
 * `npx tsx bench/gemm-floor.ts`: a lower bound on one uncached denoising step of the shipped model, set by the
 * matrix products alone. One ONNX graph holds the dense products of every block in order (qkv 256→768, a Slice to
 * 256 columns standing in for attention, proj 256→256, MLP 256→1024→256), chained so that each reads the previous
 * output: run as one session, its input and output copies are two small tensors, so the time is ONNX Runtime's
 * GEMM kernels (MLAS) and nothing else. The same chain runs in PyTorch eager (torch.matmul, the BLAS bench:peer's
 * PyTorch side uses) for the same shapes. Attention's own products (3 % of a step's FLOPs), the norms, GELU and the
 * adaLN arithmetic are left out, so a real step can only be slower than this floor.
 *
 *   npx tsx bench/gemm-floor.ts [--batches 20,40] [--repeats 15] [--threads N] [--steps 50] [--python PATH]
 *
 * `--batches` are network batches (samples × 2 under classifier-free guidance). Prints, per batch, the median ms
 * of one chain on each side, GFLOPS, and the chain × steps: the least a whole uncached generation can take here.
 * `npm run bench:peer` times the same chain inside its interleaved repeats.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { Tensor } from "onnxruntime-common";
import { median } from "../src/bench/harness.ts";
import { nodeBackend } from "../src/runtime/node-backend.ts";
import { GraphBuilder } from "../test/fixtures/graph-builder.ts";

/** The dense products of a DiT block (manifest "architecture": blocks, hidden, mlpRatio, tokens). */
export interface ChainShape {
  blocks: number;
  hidden: number;
  mlpRatio: number;
  tokens: number;
}

/** The shipped model's architecture (models/fashion-dit/manifest.json). */
const SHIPPED: ChainShape = { blocks: 12, hidden: 256, mlpRatio: 4, tokens: 49 };

/** [K, N] of each product of one block: qkv, proj, fc1, fc2. */
function productShapes({ hidden: d, mlpRatio }: ChainShape): [number, number][] {
  return [
    [d, 3 * d],
    [d, d],
    [d, mlpRatio * d],
    [mlpRatio * d, d],
  ];
}

/** FLOPs of one chain run per row (one token of one sample of the network batch). */
export function chainFlopsPerRow(shape: ChainShape): number {
  return shape.blocks * productShapes(shape).reduce((sum, [k, n]) => sum + 2 * k * n, 0);
}

/** The chain as an ONNX graph: x [M, D] → per block qkv, Slice, proj, fc1, fc2 → y [M, D]. */
export function chainGraph(shape: ChainShape): Uint8Array {
  const d = shape.hidden;
  const g = new GraphBuilder(5);
  let h = g.input("x", 1, ["rows", d]);
  const starts = g.ints([0]);
  const ends = g.ints([d]);
  const axes = g.ints([1]);
  const [qkvShape, projShape, fc1Shape, fc2Shape] = productShapes(shape);
  for (let b = 0; b < shape.blocks; b++) {
    // Uniform weights in ±sqrt(3 / fan-in) keep activations O(1) along the chain (no overflow, no denormals).
    const w = ([k, n]: [number, number], name: string) => g.weight(`b${b}.${name}`, [k, n], Math.sqrt(3 / k));
    const qkv = g.op("MatMul", [h, w(qkvShape, "qkv")]);
    const v = g.op("Slice", [qkv, starts, ends, axes]);
    const fc1 = g.op("MatMul", [g.op("MatMul", [v, w(projShape, "proj")]), w(fc1Shape, "fc1")]);
    const last = b === shape.blocks - 1;
    h = last ? g.named("y", "MatMul", [fc1, w(fc2Shape, "fc2")]) : g.op("MatMul", [fc1, w(fc2Shape, "fc2")]);
  }
  g.output("y", 1, ["rows", d]);
  return g.build();
}

/** A session running the chain over `rows` rows; `run()` resolves when one chain has run. */
export async function chainSession(shape: ChainShape, rows: number, threads: number) {
  const session = await nodeBackend.createSession(chainGraph(shape), { intraOpThreads: threads });
  const x = new Tensor(
    "float32",
    Float32Array.from({ length: rows * shape.hidden }, (_, i) => Math.sin(i)),
    [rows, shape.hidden],
  );
  await session.run({ x });
  return { run: () => session.run({ x }), release: () => session.release() };
}

async function ortChain(rows: number, threads: number, repeats: number): Promise<number[]> {
  const chain = await chainSession(SHIPPED, rows, threads);
  for (let i = 0; i < 2; i++) await chain.run();
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    await chain.run();
    times.push(performance.now() - t0);
  }
  await chain.release();
  return times;
}

function torchChain(rows: number, threads: number, repeats: number, python: string): number[] | string {
  const d = SHIPPED.hidden;
  const script = `
import json, time, torch
torch.set_num_threads(${threads})
torch.manual_seed(0)
shapes = ${JSON.stringify(productShapes(SHIPPED))}
ws = [[(torch.rand(k, n) * 2 - 1) * (3 / k) ** 0.5 for k, n in shapes] for _ in range(${SHIPPED.blocks})]
x = torch.randn(${rows}, ${d})
def chain():
    h = x
    with torch.no_grad():
        for qkv, proj, fc1, fc2 in ws:
            h = torch.matmul(torch.matmul(torch.matmul(h, qkv)[:, :${d}], proj), fc1) @ fc2
    return h
for _ in range(3): chain()
times = []
for _ in range(${repeats}):
    t0 = time.perf_counter(); chain(); times.append((time.perf_counter() - t0) * 1000)
print(json.dumps(times))
`;
  const run = spawnSync(python, ["-c", script], {
    encoding: "utf8",
    env: { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? "PASSIVE" },
  });
  if (run.status !== 0)
    return `PyTorch not run (${(run.stderr || run.error?.message || "").trim().split("\n").at(-1)})`;
  return JSON.parse(run.stdout.trim().split("\n").at(-1) as string);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      batches: { type: "string", default: "20,40" },
      repeats: { type: "string", default: "15" },
      threads: { type: "string" },
      steps: { type: "string", default: "50" },
      python: { type: "string" },
    },
  });
  const threads = values.threads ? Number(values.threads) : availableParallelism();
  const repeats = Number(values.repeats);
  const steps = Number(values.steps);
  const python =
    values.python ?? process.env.DITTO_PYTHON ?? (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
  console.log(
    `GEMM floor of one uncached step: ${SHIPPED.blocks} blocks × [${productShapes(SHIPPED)
      .map(([k, n]) => `${k}→${n}`)
      .join(", ")}], ${SHIPPED.tokens} tokens per sample, ${threads} thread(s), median of ${repeats}; ` +
      `load average ${loadavg()
        .map((v) => v.toFixed(2))
        .join(" ")}`,
  );
  console.log("| network batch | rows | GFLOP per step | ORT (MLAS) ms | GFLOPS | PyTorch ms | GFLOPS | ORT × steps |");
  console.log("|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const batch of values.batches.split(",").map(Number)) {
    const rows = batch * SHIPPED.tokens;
    const gflop = (rows * chainFlopsPerRow(SHIPPED)) / 1e9;
    const ort = median(await ortChain(rows, threads, repeats));
    const torch = torchChain(rows, threads, repeats, python);
    const torchCells =
      typeof torch === "string"
        ? ["n/a", "n/a"]
        : [median(torch).toFixed(1), (gflop / (median(torch) / 1000)).toFixed(0)];
    console.log(
      `| ${batch} | ${rows} | ${gflop.toFixed(1)} | ${ort.toFixed(1)} | ${(gflop / (ort / 1000)).toFixed(0)} | ` +
        `${torchCells.join(" | ")} | ${((ort * steps) / 1000).toFixed(2)} s |`,
    );
    if (typeof torch === "string") console.log(torch);
  }
}

if (process.argv[1]?.endsWith("gemm-floor.ts")) await main();
