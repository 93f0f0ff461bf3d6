import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Tensor } from "onnxruntime-common";
import { materialize } from "../src/cache/accumulate.ts";
import { fullSteps, PLAIN_TAYLOR, TaylorState, taylorseer } from "../src/cache/policies/taylorseer.ts";
import { type Approximation, atomUnits, type CachePolicy, type StepView } from "../src/cache/policy.ts";
import { parseCacheSpec } from "../src/cache/registry.ts";
import { loadPipeline } from "../src/pipeline.ts";
import { assertBitIdentical, SHIPPED_MODEL } from "./helpers.ts";

function view(step: number): StepView {
  return {
    step,
    steps: 50,
    time: 1 - step / 50,
    grid: new Float64Array(0),
    tap: () => Promise.reject(new Error("no taps")),
  };
}

function tensor(values: number[]): Tensor {
  return new Tensor("float32", Float32Array.from(values), [values.length]);
}

/** Feeds F(s) at the state's full steps and returns its forecasts at the others. */
function run(state: TaylorState, f: (s: number) => number[], steps: number) {
  const forecasts = new Map<number, Float32Array>();
  for (let s = 0; s < steps; s++) {
    if (state.decide(0, view(s)) === "compute") state.update(0, { value: () => tensor(f(s)) }, view(s));
    else forecasts.set(s, materialize(state.approximate(0, "forecast", view(s)) as Approximation).data as Float32Array);
  }
  return forecasts;
}

describe("TaylorSeer schedule", () => {
  it("matches the official presets' full-step sets", () => {
    assert.deepEqual(fullSteps(50, 6, 3), [0, 1, 2, 8, 14, 20, 26, 32, 38, 44]);
    assert.deepEqual(fullSteps(50, 5, 1), [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]);
    assert.equal(fullSteps(50, 5, 2).length, 11);
    assert.deepEqual(fullSteps(10, 3, 1), [0, 3, 6, 9], "FORA (N = 3, W = 1)");
    assert.deepEqual(fullSteps(5, 2, 0), fullSteps(5, 2, 1), "W = 0 is treated as 1");
  });
});

describe("TaylorSeer factors", () => {
  it("forecasts a linear feature exactly with O = 1", () => {
    const alpha = [0.5, -1.25, 3];
    const beta = [0.125, 0.5, -0.25];
    const state = new TaylorState({ interval: 4, order: 1, warmup: 1, variable: "step", ...PLAIN_TAYLOR }, 1);
    const forecasts = run(state, (s) => alpha.map((a, i) => a + beta[i] * s), 20);
    assert.ok(forecasts.size > 10);
    for (const [s, got] of forecasts) {
      if (s < 4) continue; // before the second full step only the value is known
      for (let i = 0; i < alpha.length; i++)
        assert.ok(Math.abs(got[i] - Math.fround(alpha[i] + beta[i] * s)) < 1e-5, `step ${s}`);
    }
  });

  it("with O = 2 on a quadratic equals F(a) + D1·k + D2·k²/2 with backward differences at the actual spacings", () => {
    const f = (s: number) => [0.5 * s * s - s + 2];
    const state = new TaylorState({ interval: 3, order: 2, warmup: 1, variable: "step", ...PLAIN_TAYLOR }, 1);
    const forecasts = run(state, f, 10); // full at 0, 3, 6, 9
    const d1 = (f(6)[0] - f(3)[0]) / 3;
    const d1prev = (f(3)[0] - f(0)[0]) / 3;
    const d2 = (d1 - d1prev) / 3;
    const expect = f(6)[0] + d1 * 2 + (d2 * 4) / 2;
    assert.ok(Math.abs((forecasts.get(8) as Float32Array)[0] - expect) < 1e-4);
  });

  it("keeps only the value during warm-up, then grows to O + 1 factors", () => {
    const state = new TaylorState({ interval: 6, order: 2, warmup: 3, variable: "step", ...PLAIN_TAYLOR }, 1);
    const sizes: number[] = [];
    for (let s = 0; s <= 8; s++) {
      if (state.decide(0, view(s)) === "compute") {
        state.update(0, { value: () => tensor([s, s]) }, view(s));
        sizes.push(state.bytes() / 8);
      }
    }
    // full steps 0, 1, 2, 8: one factor through step 1 (s < W − 1 = 2), two after step 2, three after step 8.
    assert.deepEqual(sizes, [1, 1, 2, 3]);
  });
});

describe("TaylorSeer on the shipped model", () => {
  it("reuses nothing with N = 1, forecasts on skipped steps without calling any block session, and sizes its cache by formula", async () => {
    const pipeline = await loadPipeline(SHIPPED_MODEL);
    const opts = { classes: [2, 5], seeds: [0, 1], steps: 9, cfg: 3 };
    const base = await pipeline.generate(opts);
    const n1 = await pipeline.generate({ ...opts, cache: "taylorseer:interval=1,order=2" });
    assertBitIdentical(n1.samples, base.samples, "N = 1");
    const fora = await pipeline.generate({ ...opts, cache: "fora:interval=3,warmup=2" });
    const order0 = await pipeline.generate({ ...opts, cache: "taylorseer:interval=3,order=0,warmup=2" });
    assertBitIdentical(order0.samples, fora.samples, "TaylorSeer O = 0 vs FORA");
    const cached = await pipeline.generate({ ...opts, cache: "taylorseer:interval=4,order=1,warmup=1" });
    const report = cached.reports[0];
    const full = [0, 4, 8];
    // All 24 branches form one stacked unit: computed together on full steps, forecast together otherwise.
    assert.deepEqual(
      report.units.map((u) => u.cache),
      ["stacked"],
    );
    for (const t of report.trace) assert.equal(t.decisions, full.includes(t.step) ? "C" : "F", `step ${t.step}`);
    // Full steps run the stack as one session; forecast steps run no block session at all, but one session for
    // patch embed → forecast-and-accumulate → head. The conditioning runs once for all steps
    // (runtime/conditioning.ts), so the whole embed never runs. The first two full steps hand out their values as
    // gated sums for the steps that will read them; the last one's would never be read: it runs the plain stack
    // session, handing nothing out.
    const counts: Record<string, number> = {
      conditioning: 1,
      patch: 3,
      head: 3,
      "skip-step": 6,
      "blocks0-11+projected": 2,
      "blocks0-11": 1,
    };
    const expected = (name: string) => counts[name] ?? 0;
    // (The conditioning table is kept from an earlier generation on the same grid when there was one: 0 or 1.)
    for (const [name, calls] of Object.entries(report.sessionCalls)) {
      if (name === "conditioning") assert.ok(calls <= 1, name);
      else assert.equal(calls, expected(name), name);
    }
    // A full step's value is held as one gated sum [B, 49, 256] per later step that reads it: step 0's for steps
    // 1–3 and 5–7 (O + 1 = 2 intervals), step 4's for steps 5–7 — 9 sums at the peak instead of 2 × 24 branch values.
    const batch = 4; // 2 samples × (cond + uncond)
    assert.equal(report.cachePeakBytes, 9 * batch * 49 * 256 * 4);
    assert.ok(report.idealSpeedup > 2 && report.idealSpeedup < 3, `ideal ${report.idealSpeedup}`);
    await pipeline.release();
  });

  it("forecasts through the stacked unit what per-branch value units forecast, within float tolerance", async () => {
    const pipeline = await loadPipeline(SHIPPED_MODEL);
    const opts = { classes: [2, 5], seeds: [0, 1], steps: 9, cfg: 3 };
    const stacked = taylorseer({ interval: 3, order: 2, warmup: 1 });
    const perBranch = { ...stacked, units: atomUnits };
    const a = await pipeline.generate({ ...opts, cache: stacked });
    const b = await pipeline.generate({ ...opts, cache: perBranch });
    assert.deepEqual(
      a.reports[0].units.map((u) => u.cache),
      ["stacked"],
    );
    assert.equal(b.reports[0].units.length, 24);
    const diff = a.samples.reduce((mx, v, i) => Math.max(mx, Math.abs(v - b.samples[i])), 0);
    assert.ok(diff < 1e-4, `max |Δ| ${diff}`);
    await pipeline.release();
  });

  it("hands full-step values out as one gated sum per step that reads them, forecasting what the stacked values do", async () => {
    const pipeline = await loadPipeline(SHIPPED_MODEL);
    const opts = { classes: [2, 5], seeds: [0, 1], steps: 12, cfg: 3 };
    // K = 1 (FORA N = 2) takes the direct form, K ≥ 3 the stacked one; the corrector reads one value more.
    for (const spec of [
      "fora:interval=2",
      "taylorseer:interval=4,order=2",
      "taylorseer:interval=3,order=1,corrector=foca",
    ]) {
      const policy = parseCacheSpec(spec);
      const withoutReads: CachePolicy = {
        ...policy,
        createState: (ctx) => Object.assign(policy.createState(ctx), { readsAt: undefined }),
      };
      const projected = await pipeline.generate({ ...opts, cache: policy });
      const [a] = projected.reports;
      const stacked = await pipeline.generate({ ...opts, cache: withoutReads });
      const [b] = stacked.reports;
      assert.ok((a.sessionCalls["blocks0-11+projected"] ?? 0) > 0, spec);
      assert.equal(b.sessionCalls["blocks0-11+projected"] ?? 0, 0, spec);
      // Every read found its step's sum: no extra computes.
      assert.deepEqual(
        a.trace.map((t) => t.decisions),
        b.trace.map((t) => t.decisions),
        spec,
      );
      assert.ok(a.cachePeakBytes < b.cachePeakBytes / 2, `${spec}: ${a.cachePeakBytes} vs ${b.cachePeakBytes}`);
      const diff = projected.samples.reduce((mx, v, i) => Math.max(mx, Math.abs(v - stacked.samples[i])), 0);
      assert.ok(diff < 1e-4, `${spec}: max |Δ| ${diff}`);
    }
    await pipeline.release();
  });
});
