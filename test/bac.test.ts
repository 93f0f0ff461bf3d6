import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { computedFraction } from "../src/cache/policies/schedule.ts";
import { loadPipeline } from "../src/pipeline.ts";
import { acsSchedule, bubblingUnion, profileBac, staggeredSteps, toTable, uniformSteps } from "../src/profiling/bac.ts";
import { gaussianNoise } from "../src/sampling/noise.ts";
import { SHIPPED_MODEL, tempDir } from "./helpers.ts";

/** The DP's objective for a sorted update set starting at 0: Σ over segments [a, next − 1] of Σ_t S[a][t]. */
function score(S: number[][], steps: number[]): number {
  let total = 0;
  steps.forEach((a, k) => {
    const end = k + 1 < steps.length ? steps[k + 1] - 1 : S.length - 1;
    for (let t = a; t <= end; t++) total += S[a][t];
  });
  return total;
}

function bestByBruteForce(S: number[][], M: number): number {
  const K = S.length;
  let best = Number.NEGATIVE_INFINITY;
  for (let mask = 0; mask < 1 << (K - 1); mask++) {
    const steps = [0, ...Array.from({ length: K - 1 }, (_, i) => i + 1).filter((s) => mask & (1 << (s - 1)))];
    if (steps.length === M) best = Math.max(best, score(S, steps));
  }
  return best;
}

describe("BAC scheduler", () => {
  it("finds the optimum of hand-made and random 8×8 matrices (entries in [−1, 1]), always with step 0", () => {
    const hand = [
      [1, 0.9, 0.2, 0.1, 0],
      [0.9, 1, 0.3, 0.2, 0.1],
      [0.2, 0.3, 1, 0.9, 0.8],
      [0.1, 0.2, 0.9, 1, 0.9],
      [0, 0.1, 0.8, 0.9, 1],
    ];
    assert.deepEqual(acsSchedule(hand, 2).steps, [0, 2]);
    for (let trial = 0; trial < 100; trial++) {
      const r = gaussianNoise(100 + trial, 64);
      const S = Array.from({ length: 8 }, (_, i) => Array.from({ length: 8 }, (_, j) => Math.tanh(r[i * 8 + j])));
      for (const M of [2, 3, 5]) {
        const { steps, score: dpScore } = acsSchedule(S, M);
        assert.equal(steps[0], 0);
        assert.equal(steps.length, M);
        assert.ok(Math.abs(dpScore - bestByBruteForce(S, M)) < 1e-9, `trial ${trial}, M ${M}`);
        assert.ok(Math.abs(score(S, steps) - dpScore) < 1e-9, "the backtracked steps achieve the score");
      }
    }
  });

  it("M = K gives every step, M = 1 only step 0", () => {
    const S = Array.from({ length: 6 }, () => new Array(6).fill(0.5));
    assert.deepEqual(acsSchedule(S, 6).steps, [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(acsSchedule(S, 1).steps, [0]);
  });

  it("staggered ablation: the uniform grid's step count, shifted by a per-unit phase", () => {
    assert.deepEqual(uniformSteps(100, 10).slice(0, 3), [0, 10, 20]);
    assert.deepEqual(staggeredSteps(100, 10, 0, 12), uniformSteps(100, 10));
    assert.deepEqual(staggeredSteps(100, 10, 6, 12).slice(0, 3), [0, 15, 25]);
    assert.deepEqual(staggeredSteps(20, 10, 11, 12), [0, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
  });

  it("bubbles the downstream MLP update steps (same layer included) into promoted units", () => {
    const units = [
      { block: 0, kind: "attn" as const },
      { block: 0, kind: "mlp" as const },
      { block: 1, kind: "attn" as const },
      { block: 1, kind: "mlp" as const },
      { block: 2, kind: "attn" as const },
      { block: 2, kind: "mlp" as const },
    ];
    const sets = [
      [0, 4],
      [0, 2],
      [0, 5],
      [0, 3, 6],
      [0, 1],
      [0, 7],
    ];
    const final = bubblingUnion(sets, units, [2, 5]);
    assert.deepEqual(final[2], [0, 3, 5, 6, 7], "attn of layer 1 takes the MLP steps of layers 1 and 2");
    assert.deepEqual(final[5], [0, 7], "the last MLP has no MLP after it but itself");
    assert.deepEqual(final[0], [0, 4], "units not promoted keep their own steps");
    assert.deepEqual(toTable([[0, 2], [0]], 3), [
      [1, 1],
      [0, 0],
      [1, 0],
    ]);
  });
});

describe("BAC on the shipped model", () => {
  it("profiles, and its trace computes exactly Σm / (S·U) of the units", async () => {
    const pipeline = await loadPipeline(SHIPPED_MODEL);
    const artifact = await profileBac(pipeline, { steps: 8, cfg: 3, items: 2, budget: 3, promote: 2 });
    assert.equal(artifact.m.length, 8);
    assert.equal(artifact.units.length, 24);
    assert.equal(artifact.promoted.length, 2);
    const path = join(tempDir(), "bac.json");
    writeFileSync(path, JSON.stringify(artifact));
    for (const table of ["m", "acs", "unified", "uniform"] as const) {
      const r = await pipeline.generate({
        classes: [5],
        seeds: [2],
        steps: 8,
        cfg: 3,
        cache: `bac:artifact=${path},table=${table}`,
      });
      const letters = r.reports[0].trace.map((t) => t.decisions).join("");
      const computed = [...letters].filter((c) => c === "C").length / letters.length;
      const t = table === "m" ? artifact.m : artifact.tables[table];
      assert.ok(Math.abs(computed - computedFraction(t)) < 1e-12, `${table}: ${computed} vs ${computedFraction(t)}`);
      assert.ok(r.samples.every(Number.isFinite));
    }
    await pipeline.release();
  });
});
