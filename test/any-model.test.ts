/**
 * Any ONNX DiT (issue 14): manifest inference for a DDPM ε-model, refusal of unreviewed guesses, options a sampler
 * cannot honour, model-agnostic bench metrics and repeat-aware timing. All on graphs built in TypeScript.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { run as bench } from "../src/cli/bench.ts";
import { run as generate } from "../src/cli/generate.ts";
import { hasNullRow, inferManifest } from "../src/model/infer-manifest.ts";
import { GraphIndex } from "../src/onnx/graph.ts";
import { loadOnnx } from "../src/onnx/load.ts";
import { graphOf } from "../src/onnx/proto.ts";
import { loadPipeline } from "../src/pipeline.ts";
import { profileErtaCache } from "../src/profiling/ertacache.ts";
import type { LlamaOptions } from "./fixtures/dit-llama.ts";
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
    assert.equal(m.inputs.condition?.numClasses, 10);
    assert.equal(m.inputs.condition?.nullClass, undefined);
    assert.equal(m.recommended?.cfgScale, 1);
    assert.ok(m.needsReview?.includes("inputs.condition.numClasses"));
    // DiT's num_classes + 1 table keeps its null row; a float time stays a flow model.
    const dit = await inferred(llamaModel());
    assert.equal(dit.objective.kind, "flow-velocity");
    assert.equal(dit.inputs.condition?.numClasses, 10);
    assert.equal(dit.inputs.condition?.nullClass, 10);
    assert.deepEqual([11, 10, 1001, 1000, 101, 6, 2].map(hasNullRow), [true, false, true, false, true, false, false]);
  });
});

describe("unreviewed manifests are refused", () => {
  it("generate and bench list the fields to check; --accept-guesses runs anyway", async () => {
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
    await generate(["--model", dir, "--steps", "2", "--classes", "0", "--out", out, "--quiet", "--accept-guesses"]);
    assert.ok(existsSync(out));
  });
});

describe("options a sampler cannot honour", () => {
  it("ertacache adjust under DDIM is refused, naming the fix; adjust=false runs", async () => {
    const pipeline = await loadPipeline(llamaModel(EPSILON));
    try {
      const opts = { classes: [1, 2], seeds: [0, 1], steps: 5, cfg: 1 };
      const [artifact] = await profileErtaCache(pipeline, { steps: 5, cfg: 1, items: 2, computedSteps: [3] });
      const path = join(tempDir(), "erta.json");
      writeFileSync(path, JSON.stringify(artifact));
      await assertRejectsWith(
        () => pipeline.generate({ ...opts, cache: `ertacache:artifact=${path}` }),
        "OPTION_INVALID",
        /adjust=true .*needs the Euler sampler; this run samples with DDIM\. Pass adjust=false/,
      );
      await assertRejectsWith(
        () => pipeline.generate({ ...opts, cache: `ertacache:artifact=${path},adjust=true` }),
        "OPTION_INVALID",
      );
      const r = await pipeline.generate({ ...opts, cache: `ertacache:artifact=${path},adjust=false` });
      assert.ok(r.samples.every(Number.isFinite));
      assert.match(r.reports[0].spec, /adjust=false/);
    } finally {
      await pipeline.release();
    }
  });
});
