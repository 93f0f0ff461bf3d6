/** Attention fusion (src/onnx/fuse-attention.ts): the exported timm/DiT attention → com.microsoft Attention. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Tensor } from "onnxruntime-common";
import * as ort from "onnxruntime-node";
import { fuseAttention } from "../src/onnx/fuse-attention.ts";
import { graphOf, type ModelProto, onnx } from "../src/onnx/proto.ts";
import { loadDiT } from "../src/runtime/dit.ts";
import { feedsFor } from "../src/runtime/model-inputs.ts";
import { GraphBuilder } from "./fixtures/graph-builder.ts";
import { maxAbsDiff, SHIPPED_MODEL } from "./helpers.ts";

const T = 6;
const D = 8;
const H = 2;

/**
 * One attention as torch.onnx writes timm's module: the head size and the scale computed from Shape(x) at run time.
 * `variant` breaks one thing the fusion must check.
 */
type Variant = "exported" | "static shapes" | "probabilities out" | "k not transposed" | "no bias";

function exportedAttention(variant: Variant = "exported") {
  const g = new GraphBuilder(9);
  const x = g.input("x", 1, ["batch", T, D]);
  // 0-D int64 constants (Gather indices, the head count), added to the graph after it is built.
  const scalars: ReturnType<typeof onnx.TensorProto.create>[] = [];
  const scalar = (v: number) => {
    const name = `int_${scalars.length}`;
    scalars.push(onnx.TensorProto.create({ name, dims: [], dataType: 7, int64Data: [v] }));
    return name;
  };
  // Constants as raw little-endian bytes, the way torch.onnx stores them.
  const raw = (values: number[], dataType: 1 | 7, dims = [values.length]) => {
    const name = `raw_${scalars.length}`;
    const bytes =
      dataType === 7
        ? new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer)
        : new Uint8Array(Float32Array.from(values).buffer);
    scalars.push(onnx.TensorProto.create({ name, dims, dataType, rawData: bytes }));
    return name;
  };
  const fixed = variant === "static shapes";
  const shape = g.op("Shape", [x]);
  const [b, t, d] = [0, 1, 2].map((i) => g.op("Gather", [shape, scalar(i)], { axis: 0 }));
  const headSize = g.op("Cast", [g.op("Div", [d, scalar(H)])], { to: 7 });
  const axes0 = g.ints([0]);
  const unsq = (v: string) => g.op("Unsqueeze", [v, axes0]);
  let qkv = g.op("MatMul", [x, g.weight("qkv.w", [D, 3 * D], 0.5)]);
  if (variant !== "no bias") qkv = g.op("Add", [g.weight("qkv.b", [3 * D], 0.2), qkv]);
  const target = fixed
    ? raw([0, T, 3, H, D / H], 7)
    : g.op("Concat", [unsq(b), unsq(t), g.ints([3]), g.ints([H]), unsq(headSize)], { axis: 0 });
  const split = g.op("Transpose", [g.op("Reshape", [qkv, target])], { perm: [2, 0, 3, 1, 4] });
  const [q, k, v] = [0, 1, 2].map((i) => g.op("Gather", [split, scalar(i)], { axis: 0 }));
  const kT = variant === "k not transposed" ? k : g.op("Transpose", [k], { perm: [0, 1, 3, 2] });
  // The exporter's run-time scale · (q·kᵀ), or a constant divisor √d.
  const scores = fixed
    ? g.op("Div", [g.op("MatMul", [q, kT]), raw([Math.sqrt(D / H)], 1, [])])
    : g.op("Mul", [g.op("MatMul", [q, kT]), g.op("Pow", [g.op("Cast", [headSize], { to: 1 }), g.scalar(-0.5)])]);
  const probs =
    variant === "probabilities out"
      ? g.named("probs", "Softmax", [scores], { axis: -1 })
      : g.op("Softmax", [scores], { axis: -1 });
  const merged = g.op("Transpose", [g.op("MatMul", [probs, v])], { perm: [0, 2, 1, 3] });
  const flatShape = fixed ? raw([0, T, D], 7) : g.op("Concat", [unsq(b), unsq(t), unsq(d)], { axis: 0 });
  const flat = g.op("Reshape", [merged, flatShape]);
  g.named("y", "MatMul", [flat, g.weight("proj.w", [D, D], 0.5)]);
  g.output("y");
  if (variant === "probabilities out") g.output("probs");
  const model = onnx.ModelProto.decode(g.build());
  graphOf(model).initializer.push(...scalars);
  return model;
}

const dimsOfX = (name: string) => (name === "x" ? [1, T, D] : undefined);

async function run(model: ModelProto, x: Float32Array): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(onnx.ModelProto.encode(model).finish());
  const out = await session.run({ x: new Tensor("float32", x, [x.length / (T * D), T, D]) });
  await session.release();
  return out.y.data as Float32Array;
}

describe("attention fusion", () => {
  for (const variant of ["exported", "static shapes", "no bias"] as const) {
    it(`fuses the ${variant} attention into one Attention node within float tolerance`, async () => {
      const x = new Float32Array(3 * T * D).map((_, i) => Math.cos(i * 0.7));
      const plain = await run(exportedAttention(variant), x);
      const model = exportedAttention(variant);
      assert.equal(fuseAttention(model, dimsOfX), 1);
      const ops = graphOf(model).node.map((n) => n.opType);
      assert.deepEqual(ops, ["Attention", "MatMul"], "the shape arithmetic around the pattern is gone too");
      const attention = graphOf(model).node[0];
      assert.equal(attention.attribute?.find((a) => a.name === "num_heads")?.i, H);
      assert.ok(Math.abs((attention.attribute?.find((a) => a.name === "scale")?.f ?? 0) - 0.5) < 1e-7, "1/√4");
      const fused = await run(model, x);
      assert.ok(maxAbsDiff(plain, fused) < 1e-5, `max diff ${maxAbsDiff(plain, fused)}`);
    });
  }

  it("leaves the pattern alone when the probabilities are a graph output (ProfilingDiT's taps)", () => {
    assert.equal(fuseAttention(exportedAttention("probabilities out"), dimsOfX), 0);
  });

  it("leaves a near miss alone (k not transposed), and a pattern whose input shape is unknown", () => {
    assert.equal(fuseAttention(exportedAttention("k not transposed"), dimsOfX), 0);
    assert.equal(
      fuseAttention(exportedAttention(), () => undefined),
      0,
    );
  });

  it("fuses all 12 attentions of the shipped model; its output stays within 1e-4", async () => {
    const dit = await loadDiT(SHIPPED_MODEL, { graphCache: false });
    const bytes = readFileSync(join(SHIPPED_MODEL, "model.onnx"));
    const model = onnx.ModelProto.decode(bytes);
    assert.equal(
      fuseAttention(model, (n) => dit.probeDims(n)),
      12,
    );
    const batch = 2;
    const feeds = feedsFor(dit.manifest, {
      sample: new Tensor(
        "float32",
        new Float32Array(batch * 784).map((_, i) => Math.sin(i * 0.3)),
        [batch, 1, 28, 28],
      ),
      time: new Float64Array(batch).fill(0.4),
      condition: new Int32Array([3, 10]),
    });
    const outs: Float32Array[] = [];
    for (const graph of [bytes, onnx.ModelProto.encode(model).finish()]) {
      const session = await ort.InferenceSession.create(graph);
      outs.push((await session.run(feeds))[dit.manifest.output.name].data as Float32Array);
      await session.release();
    }
    assert.ok(maxAbsDiff(outs[0], outs[1]) < 1e-4, `fused vs unfused max diff ${maxAbsDiff(outs[0], outs[1])}`);
    await dit.release();
  });
});
