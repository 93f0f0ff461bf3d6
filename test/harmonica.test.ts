import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { computedFraction, tablePolicy } from "../src/cache/policies/schedule.ts";
import { loadPipeline, type Pipeline } from "../src/pipeline.ts";
import { bestPrefix, fitPassForTest, marginalLambda, profileRouter } from "../src/profiling/harmonica.ts";
import { cachedCells, tableFromLogits } from "../src/profiling/router-cem.ts";
import { gaussianNoise } from "../src/sampling/noise.ts";
import { assertBitIdentical, assertRejectsWith, maxAbsDiff, SHIPPED_MODEL, tempDir } from "./helpers.ts";

describe("G-HC per-step choice", () => {
  it("equals brute force over all subsets when unit effects are additive and independent (U ≤ 10)", () => {
    for (let trial = 0; trial < 50; trial++) {
      const r = gaussianNoise(200 + trial, 40).map(Math.abs);
      const U = 4 + (trial % 7);
      const e = Array.from({ length: U }, (_, u) => r[u]);
      const w = Array.from({ length: U }, (_, u) => 0.5 + r[20 + u]);
      const lambda = 0.5 + r[39];
      const beta = r[38];
      // The fit's order (λ e / w ascending) and its measured MSE of each prefix, here additive.
      const order = e
        .map((v, u) => ({ k: (lambda * v) / w[u], u }))
        .sort((a, b) => a.k - b.k)
        .map((o) => o.u);
      const curve = { lambda, mse: [0], weight: [0] };
      order.forEach((u, j) => {
        curve.mse.push(curve.mse[j] + e[u]);
        curve.weight.push(curve.weight[j] + w[u]);
      });
      const chosen = new Set(order.slice(0, bestPrefix(curve, beta)));
      let best = 0;
      let bestSet = new Set<number>();
      for (let mask = 0; mask < 1 << U; mask++) {
        const set = new Set(Array.from({ length: U }, (_, u) => u).filter((u) => mask & (1 << u)));
        const J = [...set].reduce((a, u) => a + lambda * e[u] - beta * w[u], 0);
        if (J < best - 1e-12) {
          best = J;
          bestSet = set;
        }
      }
      assert.deepEqual([...chosen].sort(), [...bestSet].sort(), `trial ${trial}`);
    }
  });
});

describe("HarmoniCa by CEM: low-rank logits → table at an exact budget", () => {
  it("caches exactly the K lowest-logit cells of steps ≥ 1; step 0 always computes", () => {
    const S = 4;
    const U = 3;
    // a = [9, 0, 5, 1], b = [0, 2, 1]: logits of steps 1–3 are [0 2 1], [5 7 6], [1 3 2].
    const z = [9, 0, 5, 1, 0, 2, 1];
    const t = tableFromLogits(z, S, U, 3);
    assert.deepEqual(t, [
      [1, 1, 1],
      [0, 1, 0],
      [1, 1, 1],
      [0, 1, 1],
    ]);
    assert.equal(cachedCells(0.6, 50, 24), 480);
    assert.equal(cachedCells(0, 5, 2), 8, "never more than the cells of steps ≥ 1");
    assert.ok(tableFromLogits(z, S, U, 0).every((row) => row.every((v) => v === 1)));
  });
});

describe("HarmoniCa and L2C on the shipped model", () => {
  let pipeline: Pipeline;
  const opts = { steps: 5, cfg: 3, items: 1 };
  before(async () => {
    pipeline = await loadPipeline(SHIPPED_MODEL);
  });
  after(() => pipeline.release());

  it("optimizer=cem meets the budget exactly, keeps step 0 full and never loses its best candidate", async () => {
    const a = await profileRouter(pipeline, {
      ...opts,
      items: 1,
      optimizer: "cem",
      rho: 0.6,
      population: 3,
      iterations: 2,
    });
    assert.equal(a.kind, "harmonica-cem");
    assert.equal(a.fit.optimizer, "cem");
    assert.ok(a.m[0].every((v) => v === 1));
    const U = a.m[0].length;
    assert.equal(a.m.flat().filter((v) => v === 0).length, cachedCells(0.6, opts.steps, U));
    const h = a.fit.cem?.history ?? [];
    assert.equal(h.length, 2);
    assert.ok(h[1] <= h[0] && Number.isFinite(h[1]));
  });

  it("β = 0 caches nothing (bit-identical to uncached); a huge β caches every unit after step 0", async () => {
    const zero = await fitPassForTest(pipeline, { ...opts, beta: 0 });
    assert.ok(zero.table.every((row) => row.every((v) => v === 1)));
    const gen = { seeds: zero.set.seeds, classes: zero.set.classes, steps: opts.steps, cfg: opts.cfg };
    const base = await pipeline.generate(gen);
    const routed = await pipeline.generate({ ...gen, cache: tablePolicy(zero.table) });
    assertBitIdentical(routed.samples, base.samples, "β = 0");
    const huge = await fitPassForTest(pipeline, { ...opts, beta: 1e12 });
    assert.ok(huge.table.slice(1).every((row) => row.every((v) => v === 0)));
  });

  it("fits on its own trajectory: the latents it fed each step replay under the final table", async () => {
    const fit = await fitPassForTest(pipeline, { ...opts, beta: 2e-2 });
    assert.ok(
      computedFraction(fit.table) < 1 && computedFraction(fit.table) > 0.2,
      `computed ${computedFraction(fit.table)}`,
    );
    const latents: Float32Array[] = [fit.latents[0]];
    await pipeline.generate({
      seeds: fit.set.seeds,
      classes: fit.set.classes,
      steps: opts.steps,
      cfg: opts.cfg,
      cache: tablePolicy(fit.table),
      onStep: (p) => latents.push(p.result.x),
    });
    for (let s = 0; s < opts.steps; s++) assert.ok(maxAbsDiff(latents[s], fit.latents[s]) < 1e-4, `step ${s}`);
  });

  it("L2C keeps even steps full; λ is the cumulative marginal, 0 at step 0, probed where the table routes nothing", async () => {
    const l2c = await fitPassForTest(pipeline, { ...opts, beta: 1e12, mode: "l2c" });
    for (const [s, row] of l2c.table.entries())
      assert.ok(
        row.every((v) => v === (s % 2 === 0 ? 1 : 0)),
        `step ${s}`,
      );
    const lambda = await marginalLambda(pipeline, l2c.set, l2c.table, 1);
    assert.equal(lambda[0], 0);
    assert.ok(lambda[1] > 1e-12, "routing step 1 changes the final image");
    assert.ok(lambda[2] > 1e-12, "step 2 routes nothing: it is probed by caching all of it");
  });

  it("budget mode lands within one unit per step of ρ, and the artifact is refused for another step count", async () => {
    const artifact = await profileRouter(pipeline, { ...opts, rho: 0.6, rounds: 1, lambdaChunk: 2 });
    assert.ok(
      Math.abs(artifact.cost.computedFraction - 0.6) <= 1 / 24 + 1e-9,
      `computed ${artifact.cost.computedFraction}`,
    );
    const path = join(tempDir(), "router.json");
    writeFileSync(path, JSON.stringify(artifact));
    const ok = await pipeline.generate({
      classes: [1],
      seeds: [3],
      steps: 5,
      cfg: 3,
      cache: `harmonica:artifact=${path}`,
    });
    assert.ok(ok.samples.every(Number.isFinite));
    await assertRejectsWith(
      () => pipeline.generate({ classes: [1], seeds: [3], steps: 6, cfg: 3, cache: `harmonica:artifact=${path}` }),
      "ARTIFACT_MISMATCH",
    );
  });
});
