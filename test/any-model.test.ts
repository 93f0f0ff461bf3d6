/**
 * Any ONNX DiT (issue 14): manifest inference for a DDPM ε-model, refusal of unreviewed guesses, options a sampler
 * cannot honour, model-agnostic bench metrics and repeat-aware timing. All on graphs built in TypeScript.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { run as bench } from "../src/cli/bench.ts";
import { compareTiming, run as generate } from "../src/cli/generate.ts";
import { run as profile } from "../src/cli/profile.ts";
import { nlpd } from "../src/metrics/nlpd.ts";
import { hasNullRow, inferManifest } from "../src/model/infer-manifest.ts";
import { classCondition } from "../src/model/manifest.ts";
import { GraphIndex } from "../src/onnx/graph.ts";
import { loadOnnx } from "../src/onnx/load.ts";
import { graphOf } from "../src/onnx/proto.ts";
import { loadPipeline } from "../src/pipeline.ts";
import { profileErtaCache } from "../src/profiling/ertacache.ts";
import type { LlamaOptions } from "./fixtures/dit-llama.ts";
import { GraphBuilder } from "./fixtures/graph-builder.ts";
import { assertRejectsWith, llamaModel, tempDir } from "./helpers.ts";

const EPSILON: LlamaOptions = { timestep: "int64", classRows: 10 };

async function inferred(dir: string) {
  const loaded = await loadOnnx(join(dir, "model.onnx"));
  return inferManifest(new GraphIndex(graphOf(loaded.proto)), join(dir, "model.onnx"));
}

describe("init-manifest on a DDPM ε-model", () => {
  it("an int64 step input means a step index: epsilon, DDIM, scale 1, 1000 train steps, all to review", async () => {
    const m = await inferred(llamaModel(EPSILON));
    assert.equal(m.objective.kind, "epsilon");
    assert.equal(m.objective.schedule?.trainSteps, 1000);
    assert.equal(m.recommended?.sampler, "ddim");
    assert.equal(m.inputs.timestep.name, "t");
    assert.equal(m.inputs.timestep.scale, 1);
    for (const field of ["objective.kind", "objective.schedule", "recommended.sampler", "inputs.timestep.scale"])
      assert.ok(m.needsReview?.includes(field), `needsReview lists ${field}`);
  });

  it("a 10-row class table without a null row: 10 classes, no null class, no guidance", async () => {
    const m = await inferred(llamaModel(EPSILON));
    assert.equal(classCondition(m)?.numClasses, 10);
    assert.equal(classCondition(m)?.nullClass, undefined);
    assert.equal(m.recommended?.cfgScale, 1);
    assert.ok(m.needsReview?.includes("inputs.condition.numClasses"));
    // DiT's num_classes + 1 table keeps its null row; a float time stays a flow model.
    const dit = await inferred(llamaModel());
    assert.equal(dit.objective.kind, "flow-velocity");
    assert.equal(classCondition(dit)?.numClasses, 10);
    assert.equal(classCondition(dit)?.nullClass, 10);
    assert.deepEqual([11, 10, 1001, 1000, 101, 6, 2].map(hasNullRow), [true, false, true, false, true, false, false]);
  });
});

describe("unreviewed manifests are refused", () => {
  it("generate, bench and profile list the fields to check; --accept-guesses runs anyway", async () => {
    const dir = llamaModel(EPSILON);
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(await inferred(dir)));
    const out = join(tempDir(), "grid.png");
    const err = await assertRejectsWith(
      () => generate(["--model", dir, "--steps", "2", "--out", out, "--quiet"]),
      "MANIFEST_UNREVIEWED",
      /objective\.kind, .*inputs\.condition\.numClasses.*--accept-guesses/,
    );
    assert.ok(err.message.includes("needsReview"));
    assert.ok(!existsSync(out), "nothing written");
    await assertRejectsWith(
      () => bench(["--model", dir, "--policies", "none", "--quick", "--quiet"]),
      "MANIFEST_UNREVIEWED",
      /objective\.schedule/,
    );
    const artifact = join(tempDir(), "erta.json");
    await assertRejectsWith(
      () => profile(["--model", dir, "--method", "ertacache", "--steps", "3", "--out", artifact, "--quiet"]),
      "MANIFEST_UNREVIEWED",
    );
    assert.ok(!existsSync(artifact));
    await generate(["--model", dir, "--steps", "2", "--classes", "0", "--out", out, "--quiet", "--accept-guesses"]);
    assert.ok(existsSync(out));
  });
});

describe("options a sampler cannot honour", () => {
  it("ertacache adjust runs under DDIM; under DDPM it is refused, naming the fix; adjust=false runs", async () => {
    const pipeline = await loadPipeline(llamaModel(EPSILON));
    try {
      const opts = { classes: [1, 2], seeds: [0, 1], steps: 5, cfg: 1 };
      const [ddim] = await profileErtaCache(pipeline, { steps: 5, cfg: 1, items: 2, computedSteps: [3] });
      const ddimPath = join(tempDir(), "erta-ddim.json");
      writeFileSync(ddimPath, JSON.stringify(ddim));
      const adjusted = await pipeline.generate({ ...opts, cache: `ertacache:artifact=${ddimPath}` });
      assert.ok(adjusted.samples.every(Number.isFinite));
      const [artifact] = await profileErtaCache(pipeline, {
        steps: 5,
        cfg: 1,
        items: 2,
        computedSteps: [3],
        sampler: "ddpm",
      });
      const path = join(tempDir(), "erta.json");
      writeFileSync(path, JSON.stringify(artifact));
      const ddpm = { ...opts, sampler: "ddpm" as const };
      await assertRejectsWith(
        () => pipeline.generate({ ...ddpm, cache: `ertacache:artifact=${path}` }),
        "OPTION_INVALID",
        /adjust=true .*needs a deterministic sampler \(Euler or DDIM\); this run samples with DDPM\. Pass adjust=false/,
      );
      const r = await pipeline.generate({ ...ddpm, cache: `ertacache:artifact=${path},adjust=false` });
      assert.ok(r.samples.every(Number.isFinite));
      assert.match(r.reports[0].spec, /adjust=false/);
    } finally {
      await pipeline.release();
    }
  });
});

/** A tiny linear classifier for 3×16×16 images: 8 ReLU features, 10 logits; no FD reference, no TFUP head. */
function writeRgbClassifier(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const g = new GraphBuilder(3);
  const x = g.input("image", 1, ["batch", 3, 16, 16]);
  const flat = g.op("Flatten", [x], { axis: 1 });
  const features = g.named("features", "Relu", [g.op("MatMul", [flat, g.weight("w1", [768, 8], 0.1)])]);
  g.named("logits", "MatMul", [features, g.weight("w2", [8, 10])]);
  g.output("logits", 1, ["batch", 10]);
  g.output("features", 1, ["batch", 8]);
  writeFileSync(join(dir, "classifier.onnx"), g.build());
  const manifest = {
    name: "tiny-rgb-classifier",
    onnx: "classifier.onnx",
    inputs: { image: { shape: ["batch", 3, 16, 16], range: [-1, 1] } },
    outputs: { logits: { shape: ["batch", 10] }, features: { shape: ["batch", 8] } },
  };
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
}

interface BenchOut {
  settings: Record<string, unknown>;
  rows: Record<string, number & number[]>[];
}

async function benchJson(dir: string): Promise<{ md: string; json: BenchOut }> {
  const prefix = join(tempDir(), "bench");
  await bench(["--model", dir, "--policies", "none;fora:interval=2", "--quick", "--quiet", "--out", prefix]);
  return { md: readFileSync(`${prefix}.md`, "utf8"), json: JSON.parse(readFileSync(`${prefix}.json`, "utf8")) };
}

describe("ditto bench on any model", () => {
  it("32×32 single-channel, no classifier: PSNR, SSIM and NLPD; classifier columns n/a", async () => {
    const { md, json } = await benchJson(llamaModel({ size: 32 }));
    assert.equal(json.settings.classifier, null);
    const [none, fora] = json.rows;
    assert.equal(none.psnr, Number.POSITIVE_INFINITY);
    assert.equal(none.ssim, 1);
    assert.equal(none.nlpd, 0);
    // A random test graph's features barely move between steps, so FORA is nearly exact here: finite, not ∞.
    assert.ok(Number.isFinite(fora.psnr) && fora.psnr > 5, JSON.stringify(fora));
    assert.ok(fora.ssim <= 1 && fora.nlpd >= 0 && Number.isFinite(fora.nlpd), JSON.stringify(fora));
    for (const key of ["fd", "kid", "accuracy", "tfupAccuracy", "featureDistance"]) assert.equal(fora[key], null, key);
    assert.equal(fora.speedupRange.length, 2);
    assert.match(md, /classifier metrics .*: n\/a — the model's manifest names no evaluation classifier/);
    assert.match(md, /\| `fora:interval=2` \|.*\| n\/a \| n\/a \| n\/a \| n\/a \| n\/a \|/);
  });

  it("3-channel with its own evaluation classifier: accuracy and feature distance; FD without a reference is n/a", async () => {
    const dir = llamaModel({ size: 16, channels: 3 });
    writeRgbClassifier(join(dir, "classifier"));
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    writeFileSync(
      join(dir, "manifest.json"),
      JSON.stringify({ ...manifest, evaluation: { classifier: "classifier" } }),
    );
    const { json } = await benchJson(dir);
    assert.equal(json.settings.classifier, "tiny-rgb-classifier");
    const [none, fora] = json.rows;
    assert.equal(none.featureDistance, 0);
    assert.ok(fora.accuracy >= 0 && fora.accuracy <= 1);
    assert.ok(Number.isFinite(fora.featureDistance) && fora.featureDistance >= 0, "computed, not n/a");
    assert.equal(fora.fd, null);
    assert.ok(Number.isFinite(fora.nlpd) && fora.nlpd >= 0);
    // A classifier for other images is refused before the model runs, naming both layouts.
    const gray = llamaModel({ size: 32 });
    const grayManifest = JSON.parse(readFileSync(join(gray, "manifest.json"), "utf8"));
    writeRgbClassifier(join(gray, "classifier"));
    writeFileSync(
      join(gray, "manifest.json"),
      JSON.stringify({ ...grayManifest, evaluation: { classifier: "classifier" } }),
    );
    await assertRejectsWith(
      () => bench(["--model", gray, "--policies", "none", "--quick", "--quiet"]),
      "MANIFEST_INVALID",
      /takes 3×16×16 images but the model makes 1×32×32/,
    );
  });
});

describe("NLPD", () => {
  const image = (channels: number, size: number, f: (i: number) => number) => ({
    data: Float32Array.from({ length: channels * size * size }, (_, i) => f(i)),
    count: 1,
    channels,
    height: size,
    width: size,
  });
  it("is 0 for identical images, grows with the error, and takes any channels × size", () => {
    for (const [channels, size] of [
      [1, 8],
      [3, 32],
      [1, 5],
    ]) {
      const base = image(channels, size, (i) => 0.5 + 0.3 * Math.sin(i * 0.37));
      const small = image(channels, size, (i) => base.data[i] + 0.02 * Math.sin(i * 1.9));
      const large = image(channels, size, (i) => base.data[i] + 0.1 * Math.sin(i * 1.9));
      assert.equal(nlpd(base, base), 0);
      const [d1, d2] = [nlpd(base, small), nlpd(base, large)];
      assert.ok(d1 > 0 && d2 > d1, `${channels}×${size}: ${d1} < ${d2}`);
    }
  });
});

/** Runs an in-process command and returns what it wrote on stdout. */
async function stdoutOf(command: () => Promise<void>): Promise<string> {
  const write = process.stdout.write.bind(process.stdout);
  let text = "";
  // Only string writes are the command's: the test runner's own events to its parent go through as bytes.
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (typeof chunk !== "string") return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
    text += chunk;
    return true;
  }) as typeof process.stdout.write;
  try {
    await command();
  } finally {
    process.stdout.write = write;
  }
  return text;
}

describe("generate --compare timing", () => {
  it("runs interleaved repeats: median and range, the old JSON fields kept", async () => {
    const dir = llamaModel({ size: 16 });
    const out = join(tempDir(), "grid.png");
    const argv = ["--model", dir, "--steps", "4", "--classes", "0,1", "--cache", "fora:interval=2", "--out", out];
    const text = await stdoutOf(() => generate([...argv, "--compare", "--repeats", "2", "--json", "--quiet"]));
    const r = JSON.parse(text);
    for (const key of ["wallMs", "uncachedWallMs", "speedup", "psnr", "ssim", "idealSpeedup", "spec", "finite"])
      assert.ok(key in r, `keeps ${key}`);
    assert.equal(r.repeats, 2);
    assert.ok(r.speedupRange[0] <= r.speedup && r.speedup <= r.speedupRange[1], JSON.stringify(r));
    assert.ok(r.uncachedWallMsRange[0] <= r.uncachedWallMs && r.uncachedWallMs <= r.uncachedWallMsRange[1]);
    assert.ok(r.spread >= 0 && Number.isFinite(r.nlpd));
    await assertRejectsWith(() => generate([...argv, "--repeats", "2"]), "OPTION_INVALID", /with --compare/);
  });

  it("warns when the repeats spread over 15 %, not below", () => {
    const reference = {} as Parameters<typeof compareTiming>[0];
    const steady = compareTiming(reference, [100, 104, 102], [200, 203, 201]);
    assert.equal(steady.warning, undefined);
    assert.equal(steady.speedup.median, 201 / 102);
    const noisy = compareTiming(reference, [100, 100, 100], [200, 130, 200]);
    assert.match(noisy.warning ?? "", /disagree by 35 %.*over 15 %/);
  });
});
