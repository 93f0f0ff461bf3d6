/**
 * Issue 22: thread defaults, the graph cache, and tanh-GELU fusion. Parity is checked on real ONNX Runtime sessions:
 * fused against unfused graphs within float tolerance, cached (ORT-optimized) sessions against fresh ones bit for bit.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Tensor } from "onnxruntime-common";
import * as ort from "onnxruntime-node";
import { tunedEnvironment } from "../bin/malloc-tuning.js";
import { FileGraphStore } from "../src/node/graph-cache.ts";
import { fuseTanhGelu } from "../src/onnx/fuse-gelu.ts";
import { graphOf, onnx } from "../src/onnx/proto.ts";
import { loadPipeline } from "../src/pipeline.ts";
import { loadDiT } from "../src/runtime/dit.ts";
import { feedsFor } from "../src/runtime/model-inputs.ts";
import { ortSessionOptions } from "../src/runtime/node-backend.ts";
import { GraphBuilder } from "./fixtures/graph-builder.ts";
import { assertBitIdentical, llamaModel, maxAbsDiff, SHIPPED_MODEL, tempDir } from "./helpers.ts";

/** 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) written as torch.onnx (opset 17) writes it, after a biased MatMul. */
function geluGraph(variant: "torch" | "pow-half-first"): Uint8Array {
  const g = new GraphBuilder(3);
  const x0 = g.input("x", 1, ["batch", 5, 8]);
  const w = g.weight("w", [8, 16]);
  const b = g.weight("b", [16]);
  const x = g.op("Add", [b, g.op("MatMul", [x0, w])]);
  const cube = variant === "torch" ? g.op("Mul", [x, g.op("Mul", [x, x])]) : g.op("Pow", [x, g.scalar(3)]);
  const inner = g.op("Add", [x, g.op("Mul", [g.scalar(0.044715), cube])]);
  const t = g.op("Tanh", [g.op("Mul", [g.scalar(Math.sqrt(2 / Math.PI)), inner])]);
  const onePlus = g.op("Add", [g.scalar(1), t]);
  const y =
    variant === "torch"
      ? g.op("Mul", [g.scalar(0.5), g.op("Mul", [x, onePlus])])
      : g.op("Mul", [g.op("Mul", [x, g.scalar(0.5)]), onePlus]);
  g.named("y", "MatMul", [y, g.weight("w2", [16, 4])]);
  g.output("y");
  return g.build();
}

async function runGraph(bytes: Uint8Array, x: Float32Array): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  const out = await session.run({ x: new Tensor("float32", x, [x.length / 40, 5, 8]) });
  await session.release();
  return out.y.data as Float32Array;
}

describe("thread defaults", () => {
  it("uses every core Node may use unless --threads / intraOpThreads says otherwise", () => {
    assert.equal(ortSessionOptions().intraOpNumThreads, availableParallelism());
    assert.equal(ortSessionOptions({ intraOpThreads: 1 }).intraOpNumThreads, 1);
  });

  it("profiles each session to its own file when profilePrefix is set (bench/ort-profile.ts)", () => {
    const [a, b] = [ortSessionOptions({ profilePrefix: "/tmp/p" }), ortSessionOptions({ profilePrefix: "/tmp/p" })];
    assert.equal(a.enableProfiling, true);
    assert.notEqual(a.profileFilePrefix, b.profileFilePrefix, "sessions created in the same millisecond differ");
    assert.equal(ortSessionOptions().enableProfiling, undefined);
  });
});

describe("tanh-GELU fusion", () => {
  for (const variant of ["torch", "pow-half-first"] as const) {
    it(`fuses the ${variant} pattern (with its bias) into one FastGelu within float tolerance`, async () => {
      const bytes = geluGraph(variant);
      const model = onnx.ModelProto.decode(bytes);
      assert.equal(fuseTanhGelu(model), 1);
      const ops = graphOf(model).node.map((n) => n.opType);
      assert.deepEqual(ops, ["MatMul", "FastGelu", "MatMul"], `left: ${ops.join(", ")}`);
      assert.deepEqual(
        graphOf(model)
          .initializer.map((t) => t.name)
          .sort(),
        ["b", "w", "w2"],
        "unused constants go",
      );
      const x = new Float32Array(3 * 40).map((_, i) => Math.sin(i * 1.7) * 3);
      const fused = await runGraph(onnx.ModelProto.encode(model).finish(), x);
      const plain = await runGraph(bytes, x);
      assert.ok(maxAbsDiff(fused, plain) < 1e-5, `max diff ${maxAbsDiff(fused, plain)}`);
    });
  }

  it("leaves a near-miss alone (0.05 instead of 0.044715)", () => {
    const g = new GraphBuilder(4);
    const x = g.input("x", 1, [2, 3]);
    const cube = g.op("Mul", [x, g.op("Mul", [x, x])]);
    const inner = g.op("Add", [x, g.op("Mul", [g.scalar(0.05), cube])]);
    const t = g.op("Tanh", [g.op("Mul", [g.scalar(Math.sqrt(2 / Math.PI)), inner])]);
    g.named("y", "Mul", [g.scalar(0.5), g.op("Mul", [x, g.op("Add", [g.scalar(1), t])])]);
    g.output("y");
    assert.equal(fuseTanhGelu(onnx.ModelProto.decode(g.build())), 0);
  });

  it("fuses all 12 MLP GELUs of the shipped model; the stack's output stays within 1e-4", async () => {
    const [fused, plain] = await Promise.all([
      loadDiT(SHIPPED_MODEL, { graphCache: false }),
      loadDiT(SHIPPED_MODEL, { graphCache: false, fuseGelu: false }),
    ]);
    const batch = 2;
    const x = new Float32Array(batch * 784).map((_, i) => Math.sin(i * 0.3));
    const feeds = feedsFor(fused.manifest, {
      sample: new Tensor("float32", x, [batch, 1, 28, 28]),
      time: new Float64Array(batch).fill(0.4),
      condition: new Int32Array([3, 10]),
    });
    const outs: Float32Array[] = [];
    for (const model of [fused, plain]) {
      const store = new Map(Object.entries(feeds));
      for (const s of [await model.embed(), await model.range(0, model.atomCount), await model.head()])
        await s.run(store);
      outs.push(store.get(model.manifest.output.name)?.data as Float32Array);
    }
    const diff = maxAbsDiff(outs[0], outs[1]);
    assert.ok(diff < 1e-4 && diff > 0, `fused vs unfused max diff ${diff} (0 would mean nothing was fused)`);
    await Promise.all([fused.release(), plain.release()]);
  });
});

describe("graph cache", () => {
  it("cuts once: a second load reads every graph from the cache, and its sessions give identical images", async () => {
    const dir = tempDir("ditto-graph-cache-");
    const path = llamaModel();
    const request = { classes: [1, 2], seeds: [0, 1], steps: 4, cfg: 2, cache: "fora:interval=2" };
    const cold = await loadPipeline(path, { graphCache: new FileGraphStore(dir) });
    const a = await cold.generate(request);
    assert.equal(cold.model.startup.cacheHits, 0);
    assert.ok(cold.model.startup.cacheMisses > 0);
    const warm = await loadPipeline(path, { graphCache: new FileGraphStore(dir) });
    const b = await warm.generate(request);
    assert.equal(warm.model.startup.cacheMisses, 0, "everything the cold run cut is cached");
    assert.ok(warm.model.startup.cacheHits >= cold.model.startup.cacheMisses);
    assert.equal(warm.model.startup.probeMs < cold.model.startup.probeMs, true);
    const fresh = await loadPipeline(path, { graphCache: false });
    const c = await fresh.generate(request);
    assertBitIdentical(b.samples, a.samples, "warm vs cold");
    assertBitIdentical(c.samples, a.samples, "uncached vs cold");
    await Promise.all([cold.release(), warm.release(), fresh.release()]);
  });

  it("keys entries by the model's SHA-256 and the Ditto build", async () => {
    const dir = tempDir("ditto-graph-cache-");
    const model = await loadDiT(llamaModel(), { graphCache: new FileGraphStore(dir) });
    await model.embed();
    const [sha] = readdirSync(join(dir, "graphs"));
    assert.equal(sha, model.onnx.sha256);
    assert.match(readdirSync(join(dir, "graphs", sha))[0], /^\d+\.\d+\.\d+-[0-9a-f]{12}$/);
    await model.release();
  });

  it("prunes this model's folders of other Ditto builds that nothing wrote for an hour", async () => {
    const dir = tempDir("ditto-graph-cache-");
    const old = join(dir, "graphs", "abc", "0.0.1-old");
    const recent = join(dir, "graphs", "abc", "0.0.1-recent");
    for (const d of [old, recent]) mkdirSync(d, { recursive: true });
    const twoHoursAgo = new Date(Date.now() - 2 * 3600 * 1000);
    utimesSync(old, twoHoursAgo, twoHoursAgo);
    const store = new FileGraphStore(dir);
    await store.write("abc", "key", Uint8Array.of(1, 2, 3));
    assert.deepEqual(await store.read("abc", "key"), Uint8Array.of(1, 2, 3));
    assert.ok(!existsSync(old) && existsSync(recent));
  });

  it("says once, clearly, when the folder is not writable, and carries on uncached", async (t) => {
    // A regular file where the cache folder should be: unwritable even for root.
    const blocked = join(tempDir("ditto-graph-cache-"), "ro");
    writeFileSync(blocked, "a file where the cache folder should be");
    const warnings: string[] = [];
    const model = await loadDiT(llamaModel(), { graphCache: new FileGraphStore(blocked, (m) => warnings.push(m)) });
    await model.embed();
    await model.head();
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(warnings[0], /cannot write the graph cache in .*ro.*DITTO_CACHE_DIR.*--no-graph-cache/s);
    t.diagnostic(warnings[0]);
    await model.release();
  });
});

describe("bench:peer", () => {
  it("without PyTorch, says how to install it and exits non-zero", () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", "bench/peer.ts", "--python", "/nonexistent/python3"], {
      encoding: "utf8",
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /bench:peer needs PyTorch.*apt-get install python3-torch/s);
  });
});

describe("malloc tuning (bin/malloc-tuning.js)", () => {
  it("relaunches on Linux with raised mmap/trim thresholds, once, unless turned off or already set", () => {
    const env = tunedEnvironment({ PATH: "/bin" }, "linux");
    assert.equal(env?.MALLOC_MMAP_THRESHOLD_, String(256 * 1024 * 1024));
    assert.equal(env?.MALLOC_TRIM_THRESHOLD_, String(1024 * 1024 * 1024));
    assert.equal(env?.PATH, "/bin");
    assert.equal(tunedEnvironment({ ...env }, "linux"), undefined, "the relaunched process does not relaunch again");
    assert.equal(tunedEnvironment({ DITTO_MALLOC_TUNING: "off" }, "linux"), undefined);
    assert.equal(tunedEnvironment({ MALLOC_MMAP_THRESHOLD_: "1" }, "linux"), undefined);
    assert.equal(tunedEnvironment({}, "darwin"), undefined);
  });
});
