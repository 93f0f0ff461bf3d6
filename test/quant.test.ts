/**
 * TFMQ int8 quantization (shared/specs/tfmq.md, "How to test it"): the range search, the quantized linear's error
 * bound, the modulation path kept float (graph walk, bit-identical conditioning table), static per-step scales tied
 * to their step grid, and the quantized folder working as a normal model.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { promisify } from "node:util";
import * as ort from "onnxruntime-node";
import { toUnitRange } from "../src/image/png.ts";
import { psnr } from "../src/metrics/fidelity.ts";
import { optimizedOpCounts, writeQuantizedModel } from "../src/node/quant-write.ts";
import { onnx } from "../src/onnx/proto.ts";
import { loadPipeline, type Pipeline } from "../src/pipeline.ts";
import { writeArtifact } from "../src/profiling/artifact.ts";
import { profileBac } from "../src/profiling/bac.ts";
import { profileErtaCache } from "../src/profiling/ertacache.ts";
import { profileTeaCache } from "../src/profiling/teacache.ts";
import type { Linear } from "../src/quant/linears.ts";
import { quantizationOnModulationPath } from "../src/quant/modulation-path.ts";
import { quantizeModel } from "../src/quant/quantize.ts";
import { quantizeGraph } from "../src/quant/quantize-graph.ts";
import { INT8_MAX, rangeError, searchChannelRange } from "../src/quant/range-search.ts";
import { ConditioningTable } from "../src/runtime/conditioning.ts";
import { GraphBuilder } from "./fixtures/graph-builder.ts";
import { assertBitIdentical, assertRejectsWith, llamaModel, SHIPPED_MODEL, tempDir } from "./helpers.ts";

describe("TFMQ weight range search", () => {
  it("clips a channel's lone outlier (α < 1) and lowers the L2.4 error below α = 1's", () => {
    // L2.4 punishes a clipped value hard (|Δ|^2.4), so clipping pays only when many weights gain a finer step:
    // 4095 weights in ±0.1 and one at 1.0.
    const row = Array.from({ length: 4095 }, (_, i) => Math.sin(i * 1.7) * 0.1);
    row.push(1.0);
    const chosen = searchChannelRange(row);
    assert.ok(chosen.alpha < 1, `α = ${chosen.alpha}`);
    const full = rangeError(row, 1.0 / INT8_MAX);
    assert.ok(chosen.error <= full, `${chosen.error} > ${full}`);
    assert.ok(Math.abs(chosen.scale - (chosen.alpha * 1.0) / INT8_MAX) < 1e-12);
  });
});

describe("the quantized linear", () => {
  it("DynamicQuantizeLinear → MatMulInteger → rescale matches x·W within K·max|x|·max|w|/127", async () => {
    const [M, K, N] = [6, 64, 24];
    const g = new GraphBuilder(5);
    const x = g.input("x", 1, [M, K]);
    g.named("y", "MatMul", [x, g.weight("W", [K, N], 0.5)]);
    g.output("y", 1, [M, N]);
    const model = onnx.ModelProto.decode(g.build());
    const w = Float32Array.from(model.graph?.initializer?.[0].floatData ?? []);
    const linear: Linear = {
      node: 0,
      name: "/lin/MatMul",
      path: "token",
      input: "x",
      output: "y",
      weight: "W",
      layout: "kn",
      inner: K,
      channels: N,
    };
    const { model: q } = quantizeGraph(model, [linear], { scheme: "dynamic", timestepInput: "t" });
    const xs = Float32Array.from({ length: M * K }, (_, i) => Math.cos(i * 0.37) * 2 - 0.3);
    const run = async (bytes: Uint8Array) => {
      const s = await ort.InferenceSession.create(bytes);
      const out = await s.run({ x: new ort.Tensor("float32", xs, [M, K]) });
      await s.release();
      return out.y.data as Float32Array;
    };
    const yq = await run(onnx.ModelProto.encode(q).finish());
    const yf = await run(g.build());
    const maxX = Math.max(...xs.map(Math.abs));
    const maxW = Math.max(...w.map(Math.abs));
    const bound = (K * maxX * maxW) / 127 + 1e-4;
    let worst = 0;
    for (let i = 0; i < yf.length; i++) worst = Math.max(worst, Math.abs(yq[i] - yf[i]));
    assert.ok(worst <= bound, `max error ${worst} > bound ${bound}`);
    assert.ok(worst > 0, "the integer path really ran (a float copy would match exactly)");
  });
});

describe("ditto quantize on the shipped model (dynamic, modulation float)", () => {
  let float: Pipeline;
  let int8: Pipeline;
  let dir: string;
  before(async () => {
    float = await loadPipeline(SHIPPED_MODEL);
    dir = tempDir("ditto-int8-");
    writeQuantizedModel(dir, await quantizeModel(float));
    int8 = await loadPipeline(dir);
  });

  it("writes a model folder whose ditto.quant.v1 artifact is tied to the float model's SHA-256", () => {
    const artifact = JSON.parse(readFileSync(join(dir, "quant.json"), "utf8"));
    assert.equal(artifact.format, "ditto.quant.v1");
    assert.equal(artifact.model.sha256, float.model.onnx.sha256);
    assert.equal(artifact.onnx.sha256, int8.model.onnx.sha256);
    assert.equal(Object.keys(artifact.weights).length, 48, "QKV, out-proj, fc1, fc2 of 12 blocks");
    assert.equal(artifact.modulationCached, true);
    assert.equal(int8.manifest.quantization && (int8.manifest.quantization as { scheme: string }).scheme, "dynamic");
  });

  it("keeps every quantization node off the paths from timestep and class to gates, shifts and scales", () => {
    assert.deepEqual(quantizationOnModulationPath(int8.model.graph, int8.model.structure), []);
    assert.equal(int8.model.structure.blocks.length, 12);
    assert.equal(
      int8.model.structure.atoms[0].modulatedInput,
      float.model.structure.atoms[0].modulatedInput,
      "block 0's modulated input (TeaCache's signal) is still found",
    );
  });

  it("builds the conditioning table bit for bit as the float model does", async () => {
    const times = Float64Array.from({ length: 10 }, (_, i) => 1 - i / 10);
    const tables = await Promise.all(
      [float, int8].map(async (p) => {
        const seg = await p.model.conditioning();
        assert.ok(seg);
        const table = await ConditioningTable.build(seg, p.manifest, times, [2, 10], 1);
        assert.ok(table);
        return table.lookup(new Float64Array(4).fill(times[6]), Int32Array.from([2, 10, 2, 10])) as Map<
          string,
          ort.Tensor
        >;
      }),
    );
    assert.deepEqual([...tables[1].keys()].sort(), [...tables[0].keys()].sort());
    for (const [name, t] of tables[0])
      assertBitIdentical(tables[1].get(name)?.data as Float32Array, t.data as Float32Array, name);
  });

  it("is fused by ONNX Runtime's CPU optimizer into DynamicQuantizeMatMul", async () => {
    const ops = await optimizedOpCounts(new Uint8Array(readFileSync(join(dir, "model.onnx"))));
    assert.equal(ops["com.microsoft:DynamicQuantizeMatMul"], 48);
  });

  it("generates with a cache policy like any model, close to the float model", async () => {
    const options = { classes: [1, 7], seeds: [0, 1], steps: 6, cache: "fora:interval=2" };
    const [a, b] = [await float.generate(options), await int8.generate(options)];
    const img = (s: Float32Array) => ({ data: toUnitRange(s, [-1, 1]), count: 2, channels: 1, height: 28, width: 28 });
    const db = psnr(img(b.samples), img(a.samples));
    assert.ok(db > 30 && db < 100, `PSNR ${db} dB`);
  });
});

describe("ditto quantize on a tiny DiT-Llama graph", () => {
  let float: Pipeline;
  before(async () => {
    float = await loadPipeline(llamaModel());
  });

  it("--modulation int8 does put quantization on the modulation path (the graph walk can fail)", async () => {
    const dir = tempDir("ditto-int8mod-");
    writeQuantizedModel(dir, await quantizeModel(float, { modulation: "int8" }));
    const q = await loadPipeline(dir);
    assert.ok(quantizationOnModulationPath(q.model.graph, q.model.structure).length > 0);
  });

  it("static scales are block-session inputs, calibrated for S = 20 and refused at S = 25", async () => {
    const dir = tempDir("ditto-static-");
    writeQuantizedModel(dir, await quantizeModel(float, { scheme: "static", calibration: { steps: 20, items: 2 } }));
    const q = await loadPipeline(dir);
    const block = await q.model.range(0, 1);
    assert.ok(
      block.plan.inputs.some((t) => t.includes("/DittoQuant/step_scale")),
      `block 0 reads its per-step scale as an input (${block.plan.inputs.join(", ")})`,
    );
    const ok = await q.generate({ classes: [3], steps: 20 });
    assert.ok(ok.samples.every(Number.isFinite));
    await assertRejectsWith(() => q.generate({ classes: [3], steps: 25 }), "ARTIFACT_MISMATCH", /steps 20.*steps 25/);
  });

  it("runs every policy, the calibrated ones calibrated on the int8 model itself", async () => {
    const dir = tempDir("ditto-int8-policies-");
    writeQuantizedModel(dir, await quantizeModel(float));
    const q = await loadPipeline(dir);
    const base = { steps: 8, items: 2 };
    const files = {
      teacache: join(dir, "teacache.json"),
      ertacache: join(dir, "ertacache.json"),
      bac: join(dir, "bac.json"),
    };
    writeArtifact(files.teacache, await profileTeaCache(q, { ...base, items: 3 }));
    writeArtifact(files.ertacache, (await profileErtaCache(q, { ...base, computedSteps: [5] }))[0]);
    writeArtifact(files.bac, await profileBac(q, base));
    for (const file of Object.values(files))
      assert.equal(JSON.parse(readFileSync(file, "utf8")).model.sha256, q.model.onnx.sha256, file);
    const specs = [
      "fora:interval=2",
      "taylorseer:interval=2,order=1",
      "fbcache:threshold=0.1",
      "dbcache:threshold=0.1",
      `teacache:calibration=${files.teacache},threshold=0.2`,
      `ertacache:artifact=${files.ertacache}`,
      `bac:artifact=${files.bac}`,
    ];
    for (const cache of specs) {
      const r = await q.generate({ classes: [2, 5], steps: 8, cache });
      assert.ok(r.samples.every(Number.isFinite), cache);
    }
    await assertRejectsWith(
      () => float.generate({ classes: [2], steps: 8, cache: `bac:artifact=${files.bac}` }),
      "ARTIFACT_MISMATCH",
      /model sha256/,
    );
  });

  it("rejects a bad scheme, a quantized input model and an --exclude that leaves nothing", async () => {
    await assertRejectsWith(() => quantizeModel(float, { scheme: "int4" as never }), "OPTION_INVALID", /--scheme/);
    await assertRejectsWith(() => quantizeModel(float, { exclude: ["/./"] }), "OPTION_INVALID", /--exclude/);
    const dir = tempDir("ditto-int8-");
    writeQuantizedModel(dir, await quantizeModel(float));
    await assertRejectsWith(async () => quantizeModel(await loadPipeline(dir)), "OPTION_INVALID", /already quantized/);
  });
});

describe("ditto quantize (command line)", () => {
  const cli = join(import.meta.dirname, "../bin/ditto.js");
  const ditto = async (args: string[]) => {
    try {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, [cli, ...args]);
      return { code: 0, stdout, stderr };
    } catch (err) {
      return err as { code: number; stdout: string; stderr: string };
    }
  };

  it("writes a model folder that generate takes as --model, and says what ONNX Runtime fused", async () => {
    const dir = tempDir("ditto-cli-int8-");
    const q = await ditto(["quantize", "--model", llamaModel(), "--out", dir, "--quiet"]);
    assert.equal(q.code, 0, q.stderr);
    assert.match(q.stdout, /fused into DynamicQuantizeMatMul/);
    const out = join(dir, "grid.png");
    const g = await ditto(["generate", "--model", dir, "--classes", "1", "--steps", "3", "--out", out, "--quiet"]);
    assert.equal(g.code, 0, g.stderr);
    assert.ok(existsSync(out));
  });

  it("rejects a missing --out and calibration flags without --scheme static, with exit code 2", async () => {
    const noOut = await ditto(["quantize", "--model", llamaModel()]);
    assert.equal(noOut.code, 2);
    assert.match(noOut.stderr, /--out DIR is required.*OPTION_INVALID/);
    const steps = await ditto(["quantize", "--model", llamaModel(), "--out", tempDir(), "--steps", "20"]);
    assert.equal(steps.code, 2);
    assert.match(steps.stderr, /--scheme static/);
  });
});
