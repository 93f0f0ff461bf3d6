/** TFUP (spec shared/specs/tfup.md, "How to test it" 1–7) and its inputs: the classifier's features by graph edit. */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { PNG } from "pngjs";
import { tfupArtifact, tfupCacheFromArtifact } from "../src/adapt/artifact.ts";
import { evaluateTfup } from "../src/adapt/evaluate.ts";
import { FeatureModel } from "../src/adapt/feature-model.ts";
import { klMatrix, logSoftmaxRows, matrix, rowMinMax } from "../src/adapt/linalg.ts";
import { findImageShift } from "../src/adapt/shifts.ts";
import {
  buildTfupCache,
  type ClassEmbeddings,
  keysPerClass,
  predictTfup,
  resolveTfupParams,
  selectKeys,
} from "../src/adapt/tfup.ts";
import { Classifier } from "../src/metrics/classifier.ts";
import { loadClassifierFeatures, loadTestPool } from "../src/node/tfup-classifier.ts";
import { loadOnnx } from "../src/onnx/load.ts";
import { nodeBackend } from "../src/runtime/node-backend.ts";
import { gaussianNoise } from "../src/sampling/noise.ts";
import { assertBitIdentical, assertRejectsWith, ditto, maxAbsDiff, tempDir } from "./helpers.ts";

function randomEmbeddings(classes: number, dim: number, seed: number, bias = false): ClassEmbeddings {
  return {
    weights: gaussianNoise(seed, classes * dim),
    classes,
    dim,
    bias: bias ? gaussianNoise(seed + 1, classes) : undefined,
  };
}

/** Gaussian clusters (means scaled by `sep`), and class embeddings = means + a shared direction + per-class error. */
function shiftedClusters(seed: number, sep: number, classes = 4, dim = 16, perClass = 50) {
  const s = sep / Math.sqrt(dim);
  const means = gaussianNoise(seed, classes * dim).map((v) => v * s);
  const noise = gaussianNoise(seed + 1, classes * perClass * dim);
  const common = gaussianNoise(seed + 3, dim).map((v) => 10 * v * s);
  const error = gaussianNoise(seed + 2, classes * dim).map((v) => v * s);
  const n = classes * perClass;
  const labels = Int32Array.from({ length: n }, (_, i) => i % classes);
  const features = Float32Array.from({ length: n * dim }, (_, j) => {
    const [i, d] = [Math.floor(j / dim), j % dim];
    return means[labels[i] * dim + d] + noise[j] / Math.sqrt(dim);
  });
  const weights = means.map((m, j) => m + error[j] + common[j % dim]);
  // Cluster accuracy: nearest true mean, the best any prototype classifier can do.
  const nearest = Int32Array.from({ length: n }, (_, i) => {
    const dist = (c: number) => {
      let t = 0;
      for (let d = 0; d < dim; d++) t += (features[i * dim + d] - means[c * dim + d]) ** 2;
      return t;
    };
    let best = 0;
    for (let c = 1; c < classes; c++) if (dist(c) < dist(best)) best = c;
    return best;
  });
  return { features, labels, nearest, embeddings: { weights, classes, dim } };
}

const acc = (p: Int32Array, labels: Int32Array) => p.filter((v, i) => v === labels[i]).length / labels.length;

describe("TFUP", () => {
  it("1. α = 0 gives exactly the zero-shot logits (cosine and linear heads)", () => {
    for (const head of ["cosine", "linear"] as const) {
      const e = randomEmbeddings(5, 12, 3, head === "linear");
      const pool = gaussianNoise(4, 60 * 12);
      const query = gaussianNoise(5, 7 * 12);
      const plain = predictTfup(query, buildTfupCache(pool, e, { head, alpha: 0 }));
      assertBitIdentical(plain.logits, plain.zeroShot, `${head}: α = 0`);
      // …and the zero-shot logits are what the head defines: 100·cos or f·Wᵀ + b.
      const i = 2;
      const c = 3;
      const f = query.subarray(i * 12, (i + 1) * 12);
      const w = e.weights.subarray(c * 12, (c + 1) * 12);
      const dot = f.reduce((s, v, d) => s + v * w[d], 0);
      const norm = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0));
      const expected = head === "cosine" ? (100 * dot) / (norm(f) * norm(w)) : dot + (e.bias?.[c] ?? 0);
      assert.ok(Math.abs(plain.zeroShot[i * 5 + c] - expected) < 1e-4 * Math.max(1, Math.abs(expected)));
      const adapted = predictTfup(query, buildTfupCache(pool, e, { head }));
      assert.ok(maxAbsDiff(adapted.logits, adapted.zeroShot) > 0, "α = 0.3 changes the logits");
    }
  });

  it("2. selection: highest confidence, then smallest prototype score; K follows the clip rule", () => {
    // Hand-made P over 2 classes: P[:, 0] = 0.99, 0.9, 0.8, 0.7, 0.3, 0.1.
    const p0 = [0.99, 0.9, 0.8, 0.7, 0.3, 0.1];
    const logP = matrix(
      p0.flatMap((p) => [Math.log(p), Math.log(1 - p)]),
      6,
      2,
    );
    // K = 1: candidates {0, 1} for class 0 and {5, 4} for class 1; π = KL to the other candidate:
    // π0 = KL(.99‖.9) = 0.071 < π1 = 0.144; π5 = 0.116 < π4 = 0.154.
    assert.deepEqual([...selectKeys(logP, 1).indices], [0, 5]);
    // K = 2: candidates {0, 1, 2, 3}: π = 0.562, 0.298, 0.499, 0.960 → keep 1, 2 (not the most confident);
    // class 1 candidates {5, 4, 3, 2}: π = 2.056, 1.075, 1.400, 1.923 → keep 4, 3.
    const two = selectKeys(logP, 2);
    assert.deepEqual([...two.indices], [1, 2, 4, 3]);
    assert.deepEqual([...two.values], [0, 0, 1, 1]);
    // N = 10, C = 2: K = clip(⌊10 · 0.3 / 2⌋, 9, 16) = 9, from min(2K, N) = 10 candidates per class.
    const params = resolveTfupParams();
    assert.equal(keysPerClass(10, 2, params), 9);
    assert.equal(keysPerClass(1000, 10, params), 16);
    assert.equal(keysPerClass(400, 10, params), 12);
    const cache = buildTfupCache(gaussianNoise(8, 10 * 6), randomEmbeddings(2, 6, 9));
    assert.equal(cache.k, 9);
    assert.equal(cache.values.length, 18);
    assert.equal(cache.duplicates, 18 - new Set(cache.poolIndices).size);
    assert.ok(cache.duplicates >= 8, "18 keys from 10 samples repeat at least 8");
  });

  it("3. the KL-as-GEMM matrix equals the direct double-loop KL to 1e-6", () => {
    const logP = logSoftmaxRows(
      matrix(
        gaussianNoise(10, 7 * 5).map((v) => 4 * v),
        7,
        5,
      ),
    );
    const logQ = logSoftmaxRows(
      matrix(
        gaussianNoise(11, 9 * 5).map((v) => 4 * v),
        9,
        5,
      ),
    );
    const d = klMatrix(logP, logQ);
    for (let i = 0; i < 7; i++)
      for (let j = 0; j < 9; j++) {
        let kl = 0;
        for (let k = 0; k < 5; k++) {
          const p = Math.exp(logP.data[i * 5 + k]);
          const q = Math.exp(logQ.data[j * 5 + k]);
          kl += p * Math.log(p / q);
        }
        assert.ok(Math.abs(d.data[i * 9 + j] - kl) < 1e-6, `KL[${i}][${j}]: ${d.data[i * 9 + j]} vs ${kl}`);
      }
  });

  it("4. row min-max maps each row to [0, 1] with min 0 and max 1; a constant row gives 0.5", () => {
    const m = rowMinMax(matrix([3, -1, 7, 2, /* constant */ 4, 4, 4, 4, 0.5, 0.25, 0.75, 1], 3, 4));
    assert.deepEqual([...m.data.subarray(0, 4)], [0.5, 0, 1, 0.375]);
    assert.deepEqual([...m.data.subarray(4, 8)], [0.5, 0.5, 0.5, 0.5]);
    const row = [...m.data.subarray(8)];
    assert.equal(Math.min(...row), 0);
    assert.equal(Math.max(...row), 1);
  });

  it("5. synthetic domain shift: TFUP ≥ zero-shot, and reaches cluster accuracy on well-separated clusters", () => {
    for (const seed of [7, 11]) {
      const s = shiftedClusters(seed, 3);
      const p = predictTfup(s.features, buildTfupCache(s.features, s.embeddings));
      const [zeroShot, tfup, cluster] = [
        acc(p.zeroShotPredictions, s.labels),
        acc(p.predictions, s.labels),
        acc(s.nearest, s.labels),
      ];
      assert.ok(
        zeroShot < cluster - 0.05,
        `seed ${seed}: the shift costs zero-shot accuracy (${zeroShot} vs ${cluster})`,
      );
      assert.ok(tfup >= cluster - 0.01, `seed ${seed}: TFUP ${tfup} approaches cluster accuracy ${cluster}`);
    }
    const overlapping = shiftedClusters(7, 0.7);
    const p = predictTfup(overlapping.features, buildTfupCache(overlapping.features, overlapping.embeddings));
    assert.ok(acc(p.predictions, overlapping.labels) >= acc(p.zeroShotPredictions, overlapping.labels));
  });

  it("6. permuting the pool does not change the predictions", () => {
    const e = randomEmbeddings(4, 10, 20);
    const n = 120;
    const pool = gaussianNoise(21, n * 10);
    const order = Array.from({ length: n }, (_, i) => (i * 37) % n); // 37 is coprime with 120: a permutation
    const permuted = new Float32Array(pool.length);
    order.forEach((from, to) => {
      permuted.set(pool.subarray(from * 10, (from + 1) * 10), to * 10);
    });
    for (const head of ["cosine", "linear"] as const) {
      const a = predictTfup(pool, buildTfupCache(pool, e, { head }));
      const b = predictTfup(pool, buildTfupCache(permuted, e, { head }));
      assert.deepEqual([...a.predictions], [...b.predictions], head);
      assert.ok(maxAbsDiff(a.logits, b.logits) < 1e-4, head);
      assert.ok(maxAbsDiff(a.logits, a.zeroShot) > 0.1, `${head}: the cache acts`);
    }
  });

  it("7. shipped classifier: features by graph edit are bit-identical run to run and to the full model's output", async () => {
    const pool = await loadTestPool();
    const first = await loadClassifierFeatures();
    const second = await loadClassifierFeatures();
    const a = await first.featureModel.extract(pool.images, pool.count);
    const b = await second.featureModel.extract(pool.images, pool.count);
    assertBitIdentical(a, b, "two extractions");
    const classifier = await Classifier.load();
    const full = await classifier.classify(pool.images, pool.count);
    assertBitIdentical(a, full.features, "feature extractor vs the full classifier's features output");
    // Class embeddings from the initializers reproduce the classifier's logits: z = f·Wᵀ + b.
    const e = first.featureModel.embeddings;
    assert.deepEqual([e.classes, e.dim], [10, 128]);
    const plain = predictTfup(a, buildTfupCache(a, e, { head: "linear" }));
    assert.ok(maxAbsDiff(plain.zeroShot, full.logits) < 1e-4);
    assert.deepEqual([...plain.zeroShotPredictions], [...full.predictions]);
    await Promise.all([first.featureModel.release(), second.featureModel.release(), classifier.release()]);
  });

  it("exposes an internal tensor as the output (graph edit): the pre-ReLU layer of the shipped classifier", async () => {
    const { proto } = await loadOnnx("models/fashion-classifier/classifier.onnx");
    const spec = { features: "/fc/fc.1/Gemm_output_0", classEmbeddings: "out.weight" };
    const pre = await FeatureModel.create(proto, spec, nodeBackend);
    const post = await FeatureModel.create(proto, { ...spec, features: "features" }, nodeBackend);
    const pool = await loadTestPool();
    const x = pool.images.subarray(0, 20 * 784);
    const [h, f] = [await pre.extract(x, 20), await post.extract(x, 20)];
    assert.ok(
      h.some((v) => v < 0),
      "pre-activation values are signed",
    );
    assert.ok(
      maxAbsDiff(
        h.map((v) => Math.max(0, v)),
        f,
      ) < 1e-5,
      "ReLU(pre) = features",
    );
    await Promise.all([pre.release(), post.release()]);
  });

  it("helps on a shifted set of the shipped test images (low contrast) and reports duplicates", async () => {
    const { featureModel } = await loadClassifierFeatures();
    const pool = await loadTestPool();
    const set = findImageShift("low-contrast").apply({
      data: pool.images,
      count: pool.count,
      channels: 1,
      height: 28,
      width: 28,
    });
    const r = await evaluateTfup(featureModel, set, pool.labels);
    assert.ok(r.adaptedAccuracy > r.plainAccuracy + 0.05, `${r.plainAccuracy} → ${r.adaptedAccuracy}`);
    assert.equal(r.keys, 160);
    assert.ok(r.duplicates >= 0 && r.changed > 0);
    await featureModel.release();
  });

  it("the ditto.tfup.v1 artifact round-trips to the same predictions and refuses another classifier", () => {
    const e = randomEmbeddings(4, 8, 40, true);
    const pool = gaussianNoise(41, 80 * 8);
    const live = buildTfupCache(pool, e, { head: "linear" });
    const header = { sha256: "ab".repeat(32), layer: "features", classEmbeddings: "out.weight" };
    const json = JSON.parse(JSON.stringify(tfupArtifact(live, header, "synthetic pool")));
    assert.equal(json.format, "ditto.tfup.v1");
    assert.equal(json.keys.length, 4 * json.params.K);
    const frozen = tfupCacheFromArtifact(json, e, header);
    const [a, b] = [predictTfup(pool, live), predictTfup(pool, frozen)];
    assert.deepEqual([...a.predictions], [...b.predictions]);
    assert.ok(maxAbsDiff(a.logits, b.logits) < 1e-5);
    assert.throws(
      () => tfupCacheFromArtifact(json, e, { ...header, sha256: "cd".repeat(32) }),
      (err: Error & { code?: string }) => err.code === "ARTIFACT_MISMATCH" && /rebuild it/.test(err.message),
    );
    assert.throws(
      () => tfupCacheFromArtifact({ ...json, values: [9] }, e, header),
      (err: Error & { code?: string }) => err.code === "ARTIFACT_INVALID",
    );
  });

  it("rejects bad inputs with clear codes", async () => {
    const e = randomEmbeddings(3, 4, 30);
    await assertRejectsWith(() => buildTfupCache(new Float32Array(10), e), "INPUT_INVALID", /whole number of rows/);
    await assertRejectsWith(
      () => buildTfupCache(new Float32Array(8).fill(Number.NaN), e),
      "INPUT_INVALID",
      /non-finite/,
    );
    await assertRejectsWith(() => buildTfupCache(new Float32Array(8), e, { alpha: -1 }), "OPTION_INVALID", /alpha/);
    await assertRejectsWith(
      () => buildTfupCache(new Float32Array(8), e, { kMin: 5, kMax: 2 }),
      "OPTION_INVALID",
      /kMax/,
    );
    const noHead = tempDir("ditto-tfup-manifest-");
    writeFileSync(join(noHead, "manifest.json"), JSON.stringify({ name: "mine", onnx: "classifier.onnx" }));
    await assertRejectsWith(() => loadClassifierFeatures(noHead), "MANIFEST_INVALID", /"featureHead"/);
    const { proto } = await loadOnnx("models/fashion-classifier/classifier.onnx");
    await assertRejectsWith(
      () => FeatureModel.create(proto, { features: "penultimate", classEmbeddings: "out.weight" }, nodeBackend),
      "GRAPH_CUT_INVALID",
      /does not exist/,
    );
    await assertRejectsWith(
      () => FeatureModel.create(proto, { features: "features", classEmbeddings: "out.bias" }, nodeBackend),
      "MANIFEST_INVALID",
      /must be a matrix/,
    );
    await assertRejectsWith(
      () => FeatureModel.create(proto, { features: "features", classEmbeddings: "logits" }, nodeBackend),
      "MANIFEST_INVALID",
      /not an initializer/,
    );
  });
});

describe("ditto adapt --method tfup", () => {
  it("--json prints plain and adapted accuracy per shift and the average over shifted sets", async () => {
    const r = await ditto(["adapt", "--method", "tfup", "--shift", "clean,invert", "--json", "--quiet"]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.method, "tfup");
    assert.deepEqual(
      report.sets.map((s: { shift: string }) => s.shift),
      ["clean", "invert"],
    );
    assert.equal(report.params.alpha, 0.3);
    assert.equal(report.params.beta, 1);
    const [clean, invert] = report.sets;
    assert.equal(clean.images, 1000);
    assert.equal(clean.plainAccuracy, 0.947, "the classifier's own accuracy on its shipped test images");
    assert.ok(invert.plainAccuracy < 0.5 && invert.adaptedAccuracy > invert.plainAccuracy);
    assert.deepEqual(report.averageShifted, {
      sets: 1,
      plainAccuracy: invert.plainAccuracy,
      adaptedAccuracy: invert.adaptedAccuracy,
    });
  });

  it("takes a folder of labelled PNGs as the pool", async () => {
    const dir = tempDir("ditto-tfup-");
    const pool = await loadTestPool();
    for (let i = 0; i < 30; i++) {
      const png = new PNG({ width: 28, height: 28 });
      for (let p = 0; p < 784; p++) {
        const v = Math.round((pool.images[i * 784 + p] + 1) * 127.5);
        png.data.set([v, v, v, 255], 4 * p);
      }
      writeFileSync(join(dir, `${pool.labels[i]}-${String(i).padStart(3, "0")}.png`), PNG.sync.write(png));
    }
    const r = await ditto(["adapt", "--method", "tfup", "--pool", dir, "--shift", "blur", "--json", "--quiet"]);
    assert.equal(r.code, 0, r.stderr);
    const [set] = JSON.parse(r.stdout).sets;
    assert.equal(set.images, 30);
    assert.ok(set.plainAccuracy >= 0 && set.adaptedAccuracy >= 0, "labels read from the file names");
  });

  it("rejects an unknown method, an unknown shift, a generated shift with --pool, and a missing pool", async () => {
    for (const [args, pattern] of [
      [["--method", "tent"], /--method must be tfup/],
      [["--shift", "fog"], /unknown shift 'fog'; choose clean, low-contrast/],
      [["--pool", "test", "--shift", "low-cfg"], /generates its own pool/],
      [["--pool", "/nonexistent/images"], /does not exist/],
    ] as const) {
      const r = await ditto(["adapt", ...args, "--quiet"]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, pattern);
      assert.match(r.stderr, /\[OPTION_INVALID\]/);
    }
  });
});
