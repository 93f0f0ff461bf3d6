import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DEFAULT_CLASSIFIER_DIR } from "../src/model/manifest.ts";
import { loadPipeline } from "../src/pipeline.ts";
import { SHIPPED_MODEL } from "./helpers.ts";

describe("shipped models", () => {
  it("fashion-dit loads in onnxruntime-node and 4 Euler steps on 2 samples give finite values in a sane range", async () => {
    const pipeline = await loadPipeline(SHIPPED_MODEL);
    const result = await pipeline.generate({ classes: [0, 9], seeds: [0, 1], steps: 4, cfg: 3 });
    assert.deepEqual(result.dims, [2, 1, 28, 28]);
    assert.ok(result.samples.every(Number.isFinite));
    const max = result.samples.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert.ok(max < 4, `|x| ≤ ${max}: within a few units of the data range [-1, 1]`);
    await pipeline.release();
  });

  it("fit in the repository's size budget and carry their manifests", () => {
    const files = [join(SHIPPED_MODEL, "model.onnx"), join(DEFAULT_CLASSIFIER_DIR, "classifier.onnx")];
    const total = files.reduce((a, f) => a + statSync(f).size, 0);
    assert.ok(total < 80e6, `${total} bytes`);
    const manifest = JSON.parse(readFileSync(join(SHIPPED_MODEL, "manifest.json"), "utf8"));
    assert.equal(manifest.inputs.condition.nullClass, 10);
    assert.equal(manifest.classNames.length, 10);
    const classifier = JSON.parse(readFileSync(join(DEFAULT_CLASSIFIER_DIR, "manifest.json"), "utf8"));
    assert.ok(classifier.testAccuracy >= 0.91);
  });
});
