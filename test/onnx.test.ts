import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Tensor } from "onnxruntime-common";
import { GraphError } from "../src/errors.ts";
import { extractSubModel } from "../src/onnx/extract.ts";
import { GraphIndex } from "../src/onnx/graph.ts";
import { decodeOnnx, loadOnnx } from "../src/onnx/load.ts";
import { graphOf, type NodeProto, onnx, type TensorProto } from "../src/onnx/proto.ts";
import { switchBranches } from "../src/onnx/switch.ts";
import { nodeBackend } from "../src/runtime/node-backend.ts";
import { buildDiTLlama } from "./fixtures/dit-llama.ts";
import { GraphBuilder } from "./fixtures/graph-builder.ts";
import { assertRejectsWith, tempDir } from "./helpers.ts";

/** y = (x + a) * b, z = y - x: small enough to reason about by hand. */
function tinyGraph(): Uint8Array {
  const g = new GraphBuilder();
  const x = g.input("x", 1, ["n", 3]);
  const y = g.named("y", "Mul", [
    g.named("s", "Add", [x, g.weight("a", [3], 0, [1, 2, 3])]),
    g.weight("b", [3], 0, [2, 2, 2]),
  ]);
  g.named("z", "Sub", [y, x]);
  g.output("z", 1, ["n", 3]);
  return g.build();
}

describe("extractSubModel", () => {
  it("keeps exactly the nodes between the cut tensors, with their initializers, and runs", async () => {
    const model = decodeOnnx(tinyGraph(), "tiny");
    const { model: sub, nodeIndices } = extractSubModel(model, {
      inputs: ["s", "x"],
      outputs: ["z"],
      types: new Map([["s", { elemType: 1, dims: ["n", 3] }]]),
    });
    assert.deepEqual(nodeIndices, [1, 2]);
    const graph = graphOf(sub);
    assert.deepEqual(
      graph.initializer.map((t) => t.name),
      ["b"],
    );
    const session = await nodeBackend.createSession(onnx.ModelProto.encode(sub).finish());
    const out = await session.run({
      s: new Tensor("float32", Float32Array.from([1, 1, 1]), [1, 3]),
      x: new Tensor("float32", Float32Array.from([0, 1, 2]), [1, 3]),
    });
    assert.deepEqual(Array.from(out.z.data as Float32Array), [2, 1, 0]);
  });

  it("refuses an output that cannot be computed from the given inputs, naming what is missing", async () => {
    const model = decodeOnnx(tinyGraph(), "tiny");
    const err = await assertRejectsWith(
      () => extractSubModel(model, { inputs: ["s"], outputs: ["z"], types: new Map([["s", { elemType: 1 }]]) }),
      "GRAPH_CUT_INVALID",
      /graph input 'x'/,
    );
    assert.equal(err.details.output, "z");
  });

  it("refuses unknown tensor names and cuts through control-flow subgraphs", async () => {
    const model = decodeOnnx(tinyGraph(), "tiny");
    await assertRejectsWith(
      () => extractSubModel(model, { inputs: ["x"], outputs: ["nope"] }),
      "GRAPH_CUT_INVALID",
      /does not exist/,
    );

    const g = new GraphBuilder();
    const x = g.input("x", 1, [3]);
    const cond = g.input("c", 9, []);
    const branch = onnx.GraphProto.create({
      name: "then",
      node: [
        onnx.NodeProto.create({ opType: "Neg", input: ["x"], output: ["inner"] }),
        onnx.NodeProto.create({ opType: "Identity", input: ["inner"], output: ["thenOut"] }),
      ],
      output: [onnx.ValueInfoProto.create({ name: "thenOut" })],
    });
    const otherwise = onnx.GraphProto.create({
      name: "else",
      node: [onnx.NodeProto.create({ opType: "Identity", input: ["x"], output: ["elseOut"] })],
      output: [onnx.ValueInfoProto.create({ name: "elseOut" })],
    });
    const bytes = g.build();
    const withIf = onnx.ModelProto.decode(bytes);
    const graph = graphOf(withIf);
    graph.node.push(
      onnx.NodeProto.create({
        opType: "If",
        name: "branchy",
        input: [cond],
        output: ["r"],
        attribute: [
          { name: "then_branch", type: 5, g: branch },
          { name: "else_branch", type: 5, g: otherwise },
        ],
      }),
    );
    graph.output.push(onnx.ValueInfoProto.create({ name: "r" }));
    await assertRejectsWith(
      () => extractSubModel(withIf, { inputs: [x, cond], outputs: ["inner"] }),
      "GRAPH_CUT_INVALID",
      /control-flow subgraph/,
    );
    // The If node's implicit read of x is followed: cutting x away from the If must fail.
    await assertRejectsWith(
      () => extractSubModel(withIf, { inputs: [cond], outputs: ["r"] }),
      "GRAPH_CUT_INVALID",
      /graph input 'x'/,
    );
    const whole = extractSubModel(withIf, { inputs: [x, cond], outputs: ["r"] });
    assert.equal(whole.nodeIndices.length, 1);
  });

  it("indexes implicit subgraph inputs as consumers", () => {
    const g = new GraphBuilder();
    g.input("x", 1, [3]);
    const model = onnx.ModelProto.decode(g.build());
    const graph = graphOf(model);
    const body = onnx.GraphProto.create({
      node: [onnx.NodeProto.create({ opType: "Neg", input: ["x"], output: ["o"] })],
      output: [onnx.ValueInfoProto.create({ name: "o" })],
    });
    graph.node.push(
      onnx.NodeProto.create({
        opType: "If",
        input: ["c"],
        output: ["r"],
        attribute: [{ name: "then_branch", type: 5, g: body }],
      }),
    );
    const index = new GraphIndex(graph);
    assert.deepEqual(index.consumers.get("x"), [0]);
    assert.equal(index.subgraphTensors.get("o"), 0);
  });
});

describe("loadOnnx", () => {
  it("rejects a truncated file and a file that is not ONNX, naming the file", async () => {
    const dir = tempDir();
    const bytes = buildDiTLlama();
    const truncated = join(dir, "truncated.onnx");
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await assertRejectsWith(() => loadOnnx(truncated), "MODEL_MALFORMED", /truncated\.onnx/);
    const text = join(dir, "notes.onnx");
    writeFileSync(text, "this is not a model, just some text\n");
    await assertRejectsWith(() => loadOnnx(text), "MODEL_MALFORMED", /notes\.onnx/);
  });

  it("reports a missing file clearly", async () => {
    await assertRejectsWith(() => loadOnnx("/nonexistent/model.onnx"), "MODEL_NOT_FOUND", /not found/);
  });

  it("inlines initializers stored as external data", async () => {
    const dir = tempDir();
    const model = decodeOnnx(tinyGraph(), "tiny");
    const a = graphOf(model).initializer.find((t) => t.name === "a") as TensorProto;
    const raw = new Uint8Array(Float32Array.from([1, 2, 3]).buffer);
    writeFileSync(join(dir, "weights.bin"), Buffer.concat([Buffer.alloc(8), Buffer.from(raw)]));
    a.floatData = [];
    a.dataLocation = 1;
    a.externalData = [
      { key: "location", value: "weights.bin" },
      { key: "offset", value: "8" },
      { key: "length", value: "12" },
    ];
    const path = join(dir, "ext.onnx");
    writeFileSync(path, onnx.ModelProto.encode(model).finish());
    const loaded = await loadOnnx(path);
    const session = await nodeBackend.createSession(loaded.bytes);
    const out = await session.run({ x: new Tensor("float32", Float32Array.from([0, 0, 0]), [1, 3]) });
    assert.deepEqual(Array.from(out.z.data as Float32Array), [2, 4, 6]);
  });
});

describe("switchBranches", () => {
  /** h1 = h + 2·relu(h·w) (a gated branch), out = h1 · 3; the branch value is v = relu(h·w). */
  function gatedGraph(shareInside = false): Uint8Array {
    const g = new GraphBuilder();
    const h = g.input("h", 1, ["n", 2]);
    const t = g.named("t", "MatMul", [h, g.weight("w", [2, 2], 0, [1, -1, 2, 1])]);
    const v = g.named("v", "Relu", [t]);
    const h1 = g.named("h1", "Add", [h, g.named("gv", "Mul", [v, g.scalar(2)])]);
    // A model that reads the branch's inner tensor elsewhere cannot be switched.
    g.named("out", "Mul", [shareInside ? g.named("mix", "Add", [h1, t]) : h1, g.scalar(3)]);
    g.output("out", 1, ["n", 2]);
    return g.build();
  }
  const branch = {
    result: "v",
    members: new Set(["t", "v"]),
    rank: 2,
    flag: "on",
    keep: "keep",
    cached: "c",
    fresh: "f",
  };
  const bool = (b: boolean) => new Tensor("bool", new Uint8Array([b ? 1 : 0]), [1]);

  it("computes the branch or takes the cached value, and hands the value out only when asked", async () => {
    const model = decodeOnnx(gatedGraph(), "gated");
    switchBranches(model, [branch]);
    const session = await nodeBackend.createSession(onnx.ModelProto.encode(model).finish(), {});
    const h = new Tensor("float32", Float32Array.from([1, 2]), [1, 2]);
    const none = new Tensor("float32", new Float32Array(0), [0]);
    // computed: t = [1·1 + 2·2, 1·(−1) + 2·1] = [5, 1]; out = 3·(h + 2·t) = [33, 12]
    const computed = await session.run({ h, on: bool(true), keep: bool(true), c: none });
    assert.deepEqual(Array.from(computed.out.data as Float32Array), [33, 12]);
    assert.deepEqual(Array.from(computed.f.data as Float32Array), [5, 1]);
    const unkept = await session.run({ h, on: bool(true), keep: bool(false), c: none });
    assert.equal((unkept.f.data as Float32Array).length, 0);
    // reused: v = c = [10, 20]; out = 3·(h + 2·c) = [63, 126]; nothing handed out
    const cached = new Tensor("float32", Float32Array.from([10, 20]), [1, 2]);
    const reused = await session.run({ h, on: bool(false), keep: bool(false), c: cached });
    assert.deepEqual(Array.from(reused.out.data as Float32Array), [63, 126]);
    assert.equal((reused.f.data as Float32Array).length, 0);
    await session.release();
  });

  it("takes the gate Mul into the If and nests the hand-out, so a reused branch runs one If", () => {
    const model = decodeOnnx(gatedGraph(), "gated");
    switchBranches(model, [branch]);
    const top = graphOf(model).node as NodeProto[];
    assert.deepEqual(
      top.map((n) => n.opType),
      ["If", "Add", "Mul"],
    );
    assert.deepEqual(top[0].output, ["gv", "f"]);
  });

  it("leaves the gate outside when the branch value has other readers", async () => {
    // h1 = h + 2·v as before, out = 3·h1 + v: v is read twice, so the If yields v itself.
    const g = new GraphBuilder();
    const h = g.input("h", 1, ["n", 2]);
    const t = g.named("t", "MatMul", [h, g.weight("w", [2, 2], 0, [1, -1, 2, 1])]);
    const v = g.named("v", "Relu", [t]);
    const h1 = g.named("h1", "Add", [h, g.named("gv", "Mul", [v, g.scalar(2)])]);
    g.named("out", "Add", [g.named("h3", "Mul", [h1, g.scalar(3)]), v]);
    g.output("out", 1, ["n", 2]);
    const model = decodeOnnx(g.build(), "twice");
    switchBranches(model, [branch]);
    const ifNode = (graphOf(model).node as NodeProto[]).find((n) => n.opType === "If") as NodeProto;
    assert.deepEqual(ifNode.output, ["v", "f"]);
    const session = await nodeBackend.createSession(onnx.ModelProto.encode(model).finish(), {});
    const h0 = new Tensor("float32", Float32Array.from([1, 2]), [1, 2]);
    const none = new Tensor("float32", new Float32Array(0), [0]);
    // computed: v = [5, 1]; out = 3·(h + 2v) + v = [38, 13]
    const computed = await session.run({ h: h0, on: bool(true), keep: bool(true), c: none });
    assert.deepEqual(Array.from(computed.out.data as Float32Array), [38, 13]);
    assert.deepEqual(Array.from(computed.f.data as Float32Array), [5, 1]);
    // reused: v = c = [10, 20]; out = 3·(h + 2c) + c = [73, 146]
    const cached = new Tensor("float32", Float32Array.from([10, 20]), [1, 2]);
    const reused = await session.run({ h: h0, on: bool(false), keep: bool(false), c: cached });
    assert.deepEqual(Array.from(reused.out.data as Float32Array), [73, 146]);
    assert.equal((reused.f.data as Float32Array).length, 0);
    await session.release();
  });

  it("refuses a branch whose inner tensor is read outside it", () => {
    assert.throws(
      () => switchBranches(decodeOnnx(gatedGraph(true), "shared"), [branch]),
      (err: Error) =>
        err instanceof GraphError && /tensor 't' of a switched branch is read outside it/.test(err.message),
    );
  });
});
