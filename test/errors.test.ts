/** Bad input gets a clear error naming what was wrong and how to fix it: one test per class of bad input. */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { taylorseer } from "../src/cache/policies/taylorseer.ts";
import { parseCacheSpec } from "../src/cache/registry.ts";
import { loadManifest } from "../src/model/manifest.ts";
import { loadPipeline } from "../src/pipeline.ts";
import { checkSampleShape } from "../src/runtime/model-inputs.ts";
import { assertRejectsWith, llamaModel } from "./helpers.ts";

describe("clear errors", () => {
  it("rejects unknown policies, unknown options and bad option values", async () => {
    await assertRejectsWith(() => parseCacheSpec("teacahe"), "UNKNOWN_POLICY", /choose none, fora/);
    await assertRejectsWith(
      () => parseCacheSpec("taylorseer:intervl=3"),
      "OPTION_INVALID",
      /its options are interval, order, warmup, variable, basis, sigma, corrector, gain or scope/,
    );
    await assertRejectsWith(
      () => parseCacheSpec("taylorseer:interval=0"),
      "OPTION_INVALID",
      /interval=0 is invalid: must be ≥ 1/,
    );
    await assertRejectsWith(() => parseCacheSpec("taylorseer:order=two"), "OPTION_INVALID", /not a number/);
    await assertRejectsWith(() => taylorseer({ interval: 2.5 }), "OPTION_INVALID", /integer/);
  });

  it("rejects a wrong sample shape, naming the expected one", async () => {
    const manifest = await loadManifest(llamaModel());
    await assertRejectsWith(
      () => checkSampleShape(manifest, [2, 1, 28, 28]),
      "INPUT_INVALID",
      /takes \[batch, 1, 8, 8\]/,
    );
    const pipeline = await loadPipeline(llamaModel());
    await assertRejectsWith(
      () => pipeline.generate({ count: 2, noise: new Float32Array(10), steps: 2 }),
      "INPUT_INVALID",
      /noise has 10 values/,
    );
    await assertRejectsWith(
      () => pipeline.generate({ classes: [12], steps: 2 }),
      "OPTION_INVALID",
      /class 12 is out of range/,
    );
  });

  it("rejects a manifest that is missing, malformed, or names inputs the graph lacks", async () => {
    const dir = llamaModel();
    writeFileSync(join(dir, "manifest.json"), "{ not json");
    await assertRejectsWith(() => loadManifest(dir), "MANIFEST_INVALID", /not valid JSON/);
    writeFileSync(join(dir, "manifest.json"), JSON.stringify({ onnx: "model.onnx", objective: { kind: "score" } }));
    await assertRejectsWith(
      () => loadManifest(dir),
      "MANIFEST_INVALID",
      /objective\.kind must be "flow-velocity" or "epsilon"/,
    );
    const other = llamaModel();
    const m = JSON.parse(readFileSync(join(other, "manifest.json"), "utf8"));
    m.inputs.sample.name = "latents";
    writeFileSync(join(other, "manifest.json"), JSON.stringify(m));
    await assertRejectsWith(() => loadPipeline(other), "MANIFEST_INVALID", /'latents' is not an input/);
    await assertRejectsWith(() => loadManifest(join(dir, "missing", "model.onnx")), "MODEL_NOT_FOUND");
  });
});
