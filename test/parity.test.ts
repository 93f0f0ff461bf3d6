/**
 * The block-split model must equal the unsplit model: max |Δ| ≤ 1e-5 on the final images of a 10-step CFG run
 * (on the CPU execution provider the chained slices are in fact bit-identical).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { none } from "../src/cache/policies/none.ts";
import type { CachePolicy } from "../src/cache/policy.ts";
import { atomUnits, blockUnits } from "../src/cache/policy.ts";
import { classCondition, requireImage } from "../src/model/manifest.ts";
import { loadPipeline } from "../src/pipeline.ts";
import { WholeModelEvaluator } from "../src/runtime/whole-model.ts";
import { denoise } from "../src/sampling/denoise.ts";
import { batchNoise } from "../src/sampling/noise.ts";
import { createSampler } from "../src/sampling/samplers.ts";
import { llamaModel, maxAbsDiff, SHIPPED_MODEL } from "./helpers.ts";

/** The uncached policy at a chosen session granularity. */
function uncachedAt(granularity: "block" | "branch"): CachePolicy {
  return {
    ...none(),
    name: `none-${granularity}`,
    spec: `none-${granularity}`,
    units: granularity === "block" ? blockUnits : atomUnits,
  };
}

for (const [label, path] of [
  ["shipped model", SHIPPED_MODEL],
  ["DiT-Llama test graph", ""],
] as const) {
  describe(`split vs monolithic parity: ${label}`, () => {
    it("block- and branch-split runs equal one whole-model session within 1e-5 (10 steps, CFG)", async () => {
      const pipeline = await loadPipeline(path || llamaModel());
      const m = pipeline.manifest;
      const classes = [1, 7];
      const seeds = [11, 12];
      const steps = 10;
      const cfg = 3;
      const { channels: c, height: h, width: w } = requireImage(m, "parity");
      const whole = await WholeModelEvaluator.create(pipeline.model);
      const sampler = createSampler(m, { steps });
      let reference: Float32Array = new Float32Array(0);
      for await (const r of denoise(
        {
          noise: batchNoise(seeds, c * h * w),
          dims: [2, c, h, w],
          classes: Int32Array.from(classes),
          nullClass: classCondition(m)?.nullClass,
          cfgScale: cfg,
          sampler,
        },
        whole,
      )) {
        reference = r.x;
      }
      for (const policy of [none(), uncachedAt("block"), uncachedAt("branch")]) {
        const result = await pipeline.generate({ classes, seeds, steps, cfg, cache: policy });
        const diff = maxAbsDiff(result.samples, reference);
        assert.ok(diff <= 1e-5, `${policy.name}: max |Δ| = ${diff}`);
        assert.ok(result.samples.every(Number.isFinite));
      }
      await whole.release();
      await pipeline.release();
    });
  });
}
