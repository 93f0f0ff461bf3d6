import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Tensor } from "onnxruntime-common";
import { FirstBlockState } from "../src/cache/policies/fbcache.ts";
import { rescaler, TeaCacheState } from "../src/cache/policies/teacache.ts";
import type { StepView } from "../src/cache/policy.ts";
import { relativeL1 } from "../src/cache/signals.ts";
import { loadPipeline } from "../src/pipeline.ts";
import { polyfit, profileTeaCache } from "../src/profiling/teacache.ts";
import { assertRejectsWith, SHIPPED_MODEL, tempDir } from "./helpers.ts";

const t = (values: number[]) => new Tensor("float32", Float32Array.from(values), [values.length]);
const view = (step: number, steps = 10): StepView => ({
  step,
  steps,
  time: 0,
  grid: new Float64Array(0),
  tap: () => Promise.reject(new Error("none")),
});

describe("TeaCache", () => {
  it("measures the relative L1 change on odd and even lengths, Infinity against zeros", () => {
    // |1−2| + |−2−(−1)| + |3−3| = 2 over |2| + |−1| + |3| = 6; the even prefix drops the last pair.
    assert.ok(Math.abs(relativeL1(t([1, -2, 3]), t([2, -1, 3])) - 2 / 6) < 1e-12);
    assert.ok(Math.abs(relativeL1(t([1, -2]), t([2, -1])) - 2 / 3) < 1e-12);
    assert.equal(relativeL1(t([1, 2, 3]), t([0, 0, 0])), Number.POSITIVE_INFINITY);
  });

  it("accumulates the rescaled change and skips while it stays under δ (hand-computed decisions)", () => {
    const state = new TeaCacheState(0.25, rescaler([1, 0]), 1, true);
    const decisions = [state.decideFromChange(0, 8, Number.POSITIVE_INFINITY)];
    state.primeResidual(t([0]));
    const rel = [0.1, 0.1, 0.5, 0.1, 0.1, 0.1, 0.1];
    for (let i = 0; i < rel.length; i++) decisions.push(state.decideFromChange(i + 1, 8, rel[i]));
    // acc: 0.1 R, 0.2 R, 0.7 C (reset), 0.1 R, 0.2 R, 0.3 C (reset), last step forced C.
    assert.deepEqual(decisions, ["compute", "reuse", "reuse", "compute", "reuse", "reuse", "compute", "compute"]);
  });

  it("never skips with δ = 0, even where a fitted polynomial goes negative", () => {
    const state = new TeaCacheState(0, rescaler([-5, 0.01]), 1, true);
    state.decideFromChange(0, 5, Number.POSITIVE_INFINITY);
    state.primeResidual(t([0]));
    for (let s = 1; s < 5; s++) assert.equal(state.decideFromChange(s, 5, 0.01), "compute");
  });

  it("holds the polynomial inside its calibrated range", () => {
    const f = rescaler([-1000, 10, 0], [0, 0.01]); // −1000x² + 10x peaks at x = 0.005, is 0 at 0.01, negative beyond
    assert.ok(f(0.02) >= 0);
    assert.equal(f(0.02), 0);
    assert.ok(Math.abs(f(0.005) - 0.025) < 1e-12);
  });

  it("fits a polynomial that recovers known coefficients", () => {
    const xs = Array.from({ length: 40 }, (_, i) => i / 40);
    const ys = xs.map((x) => 2 * x ** 3 - x + 0.5);
    const c = polyfit(xs, ys, 3);
    for (const [i, v] of [2, 0, -1, 0.5].entries()) assert.ok(Math.abs(c[i] - v) < 1e-8, `coefficient ${i}: ${c[i]}`);
  });

  it("calibrates on the shipped model and refuses its artifact for another step count", async () => {
    const pipeline = await loadPipeline(SHIPPED_MODEL);
    const artifact = await profileTeaCache(pipeline, { steps: 8, items: 2, cfg: 3 });
    assert.equal(artifact.format, "ditto.teacache.v1");
    assert.equal(artifact.fit.pairs, 7 * 4, "7 step pairs × 4 batch rows");
    const path = join(tempDir(), "tea.json");
    writeFileSync(path, JSON.stringify(artifact));
    const ok = await pipeline.generate({
      classes: [1],
      seeds: [0],
      steps: 8,
      cfg: 3,
      cache: `teacache:calibration=${path}`,
    });
    assert.ok(ok.samples.every(Number.isFinite));
    // Each step reads block 0's modulated input before it decides: the patch embed runs inside that tap's session.
    const calls = Object.entries(ok.reports[0].sessionCalls).filter(([, n]) => n > 0);
    assert.deepEqual(
      calls.filter(([name]) => name === "patch" || name.startsWith("tap(")).map(([name, n]) => [name.split(",")[0], n]),
      [["tap(/Add_output_0", 8]],
    );
    await assertRejectsWith(
      () => pipeline.generate({ classes: [1], seeds: [0], steps: 9, cfg: 3, cache: `teacache:calibration=${path}` }),
      "ARTIFACT_MISMATCH",
      /made for steps 8, but this run has 9/,
    );
    await pipeline.release();
  });
});

describe("FBCache / DBCache", () => {
  it("compares with the signal at the last computed step, not the previous step", () => {
    const state = new FirstBlockState(3, 0.15, 1, 1, -1, -1);
    const signals = [1, 1.1, 1.2, 1.3, 1.5, 1.55];
    const decisions: string[] = [];
    signals.forEach((v, s) => {
      state.update(0, { value: () => t([v]) });
      const d = state.decide(1, view(s));
      decisions.push(d);
      if (d === "compute") state.update(1, { value: () => t([0]) });
    });
    // reference 1: 1.1 (0.10) R, 1.2 (0.20) C → ref 1.2: 1.3 (0.083) R, 1.5 (0.25) C → ref 1.5: 1.55 (0.033) R.
    // Against the previous step instead, every change is < 0.15 and step 2 and 4 would have been reused.
    assert.deepEqual(decisions, ["compute", "reuse", "compute", "reuse", "compute", "reuse"]);
  });

  it("stops reusing at the caps", () => {
    const state = new FirstBlockState(3, 1, 1, 1, 3, 2);
    const decisions: string[] = [];
    for (let s = 0; s < 8; s++) {
      state.update(0, { value: () => t([1]) });
      const d = state.decide(1, view(s));
      decisions.push(d);
      if (d === "compute") state.update(1, { value: () => t([0]) });
    }
    // two consecutive at most, three in all
    assert.deepEqual(decisions, ["compute", "reuse", "reuse", "compute", "reuse", "compute", "compute", "compute"]);
  });

  it("computes every step when Fn covers the whole stack", async () => {
    const pipeline = await loadPipeline(SHIPPED_MODEL);
    const r = await pipeline.generate({
      classes: [1],
      seeds: [0],
      steps: 4,
      cfg: 3,
      cache: "fbcache:fn=12,threshold=10",
    });
    assert.equal(r.reports[0].unitsSkipped, 0);
    assert.equal(r.reports[0].units.length, 1);
    await pipeline.release();
  });
});
