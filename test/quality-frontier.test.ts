/**
 * Issue 20: MagCache, EasyCache, the Hermite basis and FoCa-style corrector of the TaylorSeer forecaster, KID, and
 * `ditto tune`. Rule tests on hand-made sequences; end-to-end runs on the shipped model at few steps.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Tensor } from "onnxruntime-common";
import { materialize } from "../src/cache/accumulate.ts";
import { EasyCacheState } from "../src/cache/policies/easycache.ts";
import { MagCacheState, magcache, magnitudeRatio, resampleRatios } from "../src/cache/policies/magcache.ts";
import { basisWeights, PLAIN_TAYLOR, type TaylorSeerOptions, TaylorState } from "../src/cache/policies/taylorseer.ts";
import type { Approximation, StepView } from "../src/cache/policy.ts";
import { parseCacheSpec, policyFromConfig } from "../src/cache/registry.ts";
import { parseDuration } from "../src/cli/tune.ts";
import { kid, kidWithSpread } from "../src/metrics/kid.ts";
import { loadPipeline, type Pipeline } from "../src/pipeline.ts";
import { profileMagCache } from "../src/profiling/magcache.ts";
import type { PolicySpace } from "../src/tune/space.ts";
import { tune } from "../src/tune/tune.ts";
import { assertBitIdentical, assertRejectsWith, SHIPPED_MODEL, tempDir } from "./helpers.ts";

const t = (values: number[], dims = [values.length]) => new Tensor("float32", Float32Array.from(values), dims);
const view = (step: number, steps = 50): StepView => ({
  step,
  steps,
  time: 1 - step / steps,
  grid: new Float64Array(0),
  tap: () => Promise.reject(new Error("no taps")),
});

describe("MagCache rule", () => {
  it("with γ ≡ 1 reuses up to K steps in a row after the retained steps", () => {
    const state = new MagCacheState(new Array(12).fill(1), { threshold: 0.1, maxSkip: 2, retainSteps: 3 });
    const letters = Array.from({ length: 12 }, (_, s) => {
      const d = state.decideAt(s);
      if (s === 0) state.primeResidual(t([1]));
      return d === "compute" ? "C" : "R";
    }).join("");
    assert.equal(letters, "CCCRRCRRCRRC");
  });

  it("a hand-made γ list gives the hand-computed decisions", () => {
    // after retention (step 0): ratio 0.9 → err 0.1 R; ratio 0.81 → err 0.29 C (reset);
    // ratio 1.05 → err 0.05 R; ratio 1.1025 → err 0.1525 R; ratio 1.1576 → err 0.31 C.
    const gammas = [1, 0.9, 0.9, 1.05, 1.05, 1.05];
    const state = new MagCacheState(gammas, { threshold: 0.2, maxSkip: 5, retainSteps: 1 });
    state.primeResidual(t([1]));
    assert.deepEqual(
      gammas.map((_, s) => state.decideAt(s)),
      ["compute", "reuse", "compute", "reuse", "reuse", "compute"],
    );
  });

  it("maps a 28-step curve to 50 steps by nearest index, hitting both ends", () => {
    const curve = Array.from({ length: 28 }, (_, i) => 1 + i / 100);
    const mapped = resampleRatios(curve, 50);
    assert.equal(mapped.length, 50);
    assert.equal(mapped[0], curve[0]);
    assert.equal(mapped[49], curve[27]);
  });

  it("measures the token-mean norm ratio along channels", () => {
    // two tokens of 2 channels: norms 5 and 1 over 2.5 and 1 → ratios 2 and 1 → mean 1.5
    assert.equal(magnitudeRatio(t([3, 4, 1, 0], [1, 2, 2]), t([1.5, 2, 0, 1], [1, 2, 2])), 1.5);
  });

  it("rejects a run without its ratio curve and bad ratios, naming the fix", async () => {
    await assertRejectsWith(() => parseCacheSpec("magcache"), "OPTION_INVALID", /ditto profile --method magcache/);
    await assertRejectsWith(() => magcache({ ratios: [1, -2] }), "OPTION_INVALID", /positive/);
    await assertRejectsWith(() => parseCacheSpec("magcache:ratios=1;1,maxSkip=-1"), "OPTION_INVALID", /maxSkip/);
  });
});

describe("EasyCache rule", () => {
  it("measures k between computed steps and reuses while k·Δx/‖r‖ accumulates under τ", () => {
    const state = new EasyCacheState(0.25, 2, true);
    assert.equal(state.decideFromChange(0, 8, Number.POSITIVE_INFINITY), "compute");
    state.observe(t([1, 1]), Float32Array.from([0, 0]));
    assert.equal(state.decideFromChange(1, 8, 1), "compute", "warm-up");
    // Δr = 1 (mean), Δx = 2 → k = 0.5; ‖r‖ = mean|[2, 2]| = 2
    state.observe(t([2, 2]), Float32Array.from([2, 2]));
    assert.equal(state.transformationRate(), 0.5);
    // predicted = 0.5 · Δx / 2: Δx = 0.4 → 0.1 R; 0.4 → 0.2 R; 0.4 → 0.3 C (reset); last step forced
    const d = [0.4, 0.4, 0.4, 0.4, 0.4].map((dx, i) => state.decideFromChange(i + 2, 8, dx));
    assert.deepEqual(d, ["reuse", "reuse", "compute", "reuse", "reuse"]);
    assert.equal(state.decideFromChange(7, 8, 0.01), "compute", "the last step computes");
  });

  it("never reuses with τ = 0", () => {
    const state = new EasyCacheState(0, 1, false);
    state.decideFromChange(0, 5, Number.POSITIVE_INFINITY);
    state.observe(t([1]), Float32Array.from([0]));
    state.observe(t([1.5]), Float32Array.from([1]));
    for (let s = 2; s < 5; s++) assert.equal(state.decideFromChange(s, 5, 1e-9), "compute");
  });
});

const opts = (o: Partial<TaylorSeerOptions>): Required<TaylorSeerOptions> =>
  ({ interval: 3, order: 1, warmup: 1, variable: "step", ...PLAIN_TAYLOR, ...o }) as Required<TaylorSeerOptions>;

/** Feeds F at the full steps of `state` and returns its forecasts elsewhere. */
function forecasts(state: TaylorState, f: (s: number) => number, steps: number, full: (s: number) => boolean) {
  const out = new Map<number, number>();
  for (let s = 0; s < steps; s++) {
    if (full(s)) state.record(0, t([f(s)]), s, s);
    else out.set(s, (materialize(state.approximate(0, "forecast", view(s)) as Approximation).data as Float32Array)[0]);
  }
  return out;
}

describe("Forecasters: Hermite basis and FoCa-style corrector", () => {
  it("Hermite weights are σ^i·H_i(σk)/i! (physicists' H), and σ = 1/√2 makes order 1 plain linear extrapolation", () => {
    const [sigma, k] = [0.5, 3];
    const w = basisWeights("hermite", sigma, 4, k);
    const x = sigma * k;
    const H = [1, 2 * x, 4 * x * x - 2, 8 * x ** 3 - 12 * x];
    for (const [i, h] of H.entries())
      assert.ok(Math.abs(w[i] - (sigma ** i * h) / [1, 1, 2, 6][i]) < 1e-12, `weight ${i}`);
    assert.ok(Math.abs(basisWeights("hermite", Math.SQRT1_2, 2, 7)[1] - 7) < 1e-12);
    assert.deepEqual(basisWeights("taylor", 0.5, 3, 2), [1, 2, 2]);
  });

  it("Hermite (σ = 1/√2, order 1) forecasts a linear sequence exactly", () => {
    const f = (s: number) => 0.75 - 0.125 * s;
    const state = new TaylorState(opts({ basis: "hermite", sigma: Math.SQRT1_2 }), 1);
    for (const [s, v] of forecasts(state, f, 20, (s) => s % 3 === 0)) if (s > 3) assert.ok(Math.abs(v - f(s)) < 1e-6);
  });

  it("Hermite order 2 equals F(a) + D1·σH1(σk) + D2·σ²H2(σk)/2 with backward differences", () => {
    const f = (s: number) => 0.5 * s * s - s + 2;
    const sigma = 0.5;
    const state = new TaylorState(opts({ order: 2, basis: "hermite", sigma }), 1);
    const got = forecasts(state, f, 10, (s) => s % 3 === 0).get(8) as number;
    const d1 = (f(6) - f(3)) / 3;
    const d2 = (d1 - (f(3) - f(0)) / 3) / 3;
    const x = sigma * 2;
    const expect = f(6) + d1 * sigma * 2 * x + (d2 * sigma ** 2 * (4 * x * x - 2)) / 2;
    assert.ok(Math.abs(got - expect) < 1e-4, `${got} vs ${expect}`);
  });

  it("the FoCa-style corrector (λ = 1) makes order 1 exact on quadratics, also with uneven full steps", () => {
    const f = (s: number) => 0.02 * s * s - 0.3 * s + 1;
    const fullSet = new Set([0, 2, 3, 7, 9, 14, 16, 21]);
    const state = new TaylorState(opts({ corrector: "foca", gain: 1 }), 1);
    const got = forecasts(state, f, 24, (s) => fullSet.has(s));
    let checked = 0;
    for (const [s, v] of got) {
      if (s < 4) continue; // the error term needs two earlier forecasters of the same order
      assert.ok(Math.abs(v - f(s)) < 1e-5, `step ${s}: ${v} vs ${f(s)}`);
      checked++;
    }
    assert.ok(checked > 10);
    // Without the corrector order 1 is not exact on this quadratic.
    const plain = forecasts(new TaylorState(opts({}), 1), f, 24, (s) => fullSet.has(s));
    assert.ok(Math.abs((plain.get(20) as number) - f(20)) > 1e-3);
  });

  it("the corrector on order 0 (λ = 1) equals order 1: reuse corrected by its own error is linear extrapolation", () => {
    const f = (s: number) => Math.sin(s / 5);
    const full = (s: number) => s % 4 === 0;
    const a = forecasts(new TaylorState(opts({ order: 0, corrector: "foca" }), 1), f, 30, full);
    const b = forecasts(new TaylorState(opts({ order: 1 }), 1), f, 30, full);
    for (const [s, v] of a) if (s > 8) assert.ok(Math.abs(v - (b.get(s) as number)) < 1e-6, `step ${s}`);
  });
});

describe("KID", () => {
  it("is about 0 for two samples of one distribution and positive for shifted ones", () => {
    const rand = mulberry(7);
    const sample = (n: number, shift: number) => Float32Array.from({ length: n * 4 }, () => rand() + shift);
    const same = kid(sample(200, 0), sample(200, 0), 4);
    const shifted = kid(sample(200, 0), sample(200, 0.5), 4);
    assert.ok(Math.abs(same) < 0.02, `same: ${same}`);
    assert.ok(shifted > 10 * Math.abs(same), `shifted ${shifted} vs same ${same}`);
    const spread = kidWithSpread(sample(40, 0), sample(100, 0), 4);
    assert.equal(spread.subsets, 4);
    assert.ok(spread.std > 0);
  });

  it("rejects sets of fewer than two vectors", async () => {
    await assertRejectsWith(() => kid(new Float32Array(4), new Float32Array(8), 4), "INPUT_INVALID");
  });
});

function mulberry(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

describe("on the shipped model", () => {
  let pipeline: Pipeline;
  const request = { seeds: [0, 1], classes: [3, 7], steps: 8, cfg: 3 };
  before(async () => {
    pipeline = await loadPipeline(SHIPPED_MODEL);
  });
  after(() => pipeline.release());

  it("each new policy and forecaster is bit-identical to uncached at its trivial setting", async () => {
    const reference = await pipeline.generate(request);
    const artifact = await profileMagCache(pipeline, { steps: 8, cfg: 3, items: 1 });
    assert.equal(artifact.ratios.length, 8);
    assert.ok(
      artifact.ratios.slice(1).every((g) => g > 0.5 && g < 2),
      `γ: ${artifact.ratios}`,
    );
    const path = join(tempDir(), "mag.json");
    writeFileSync(path, JSON.stringify(artifact));
    for (const spec of [
      `magcache:calibration=${path},threshold=0`,
      "easycache:threshold=0",
      "taylorseer:interval=1,basis=hermite,corrector=foca",
      "taylorseer:interval=1,scope=stack,order=2",
    ]) {
      const out = await pipeline.generate({ ...request, cache: spec });
      assertBitIdentical(out.samples, reference.samples, spec);
    }
    await assertRejectsWith(
      () => pipeline.generate({ ...request, steps: 10, cache: `magcache:calibration=${path}` }),
      "ARTIFACT_MISMATCH",
      /steps/,
    );
  });

  it("the new policies skip steps and stay close at a moderate setting", async () => {
    const reference = await pipeline.generate({ ...request, steps: 16 });
    for (const spec of [
      "easycache:threshold=0.2,warmup=3",
      "taylorseer:interval=3,scope=stack,basis=hermite,sigma=0.5",
    ]) {
      const out = await pipeline.generate({ ...request, steps: 16, cache: spec });
      assert.ok(out.reports[0].idealSpeedup > 1.3, `${spec}: ${out.reports[0].idealSpeedup}`);
      let mse = 0;
      for (let i = 0; i < out.samples.length; i++) mse += (out.samples[i] - reference.samples[i]) ** 2;
      const psnr = 10 * Math.log10(4 / (mse / out.samples.length)); // range [-1, 1]
      assert.ok(psnr > 20, `${spec}: ${psnr.toFixed(1)} dB`);
    }
  });

  it("tune on a tiny budget returns a setting meeting its bar on held-out seeds, or says none does", async () => {
    const space: PolicySpace[] = [
      { policy: "fora", settings: [{ interval: 2 }, { interval: 3 }, { interval: 4, warmup: 2 }] },
      { policy: "magcache", needs: "magcache", settings: [{ threshold: 0.1, retention: 0.2, maxSkip: 2 }] },
      { policy: "easycache", settings: [{ threshold: 0.05 }, { threshold: 0.3, warmup: 2 }] },
    ];
    const small = {
      budgetMs: 60_000,
      steps: 6,
      calibrationSeeds: 2,
      holdoutSeeds: 2,
      repeats: 1,
      timed: 2,
      timingSamples: 1,
      space,
    };
    const result = await tune(pipeline, { ...small, minPsnr: 25 });
    assert.ok(result.evaluated >= 6);
    assert.ok(result.front.length > 0);
    if (result.chosen) {
      assert.ok(result.chosen.holdout.psnr >= 25, `held-out ${result.chosen.holdout.psnr}`);
      assert.deepEqual(result.chosen.holdout.seeds, [5000, 5001]);
      // the chosen config round-trips through --cache-config
      assert.equal(policyFromConfig({ ...result.chosen.config, tunedFor: {} }).name, result.chosen.policy.name);
    } else assert.match(result.verdict, /no searched setting/);
    const impossible = await tune(pipeline, { ...small, minPsnr: 500 });
    assert.equal(impossible.chosen, undefined);
    assert.match(impossible.verdict, /no searched setting meets the bar.*closest Pareto point/);
    await assertRejectsWith(
      () => tune(pipeline, { ...small, minPsnr: 30, policies: ["harmonica"] }),
      "OPTION_INVALID",
      /not searched/,
    );
  });

  it("parses tune budgets", async () => {
    assert.equal(parseDuration("10m"), 600_000);
    assert.equal(parseDuration("90s"), 90_000);
    assert.equal(parseDuration("1.5h"), 5_400_000);
    await assertRejectsWith(() => parseDuration("soon"), "OPTION_INVALID", /--budget/);
  });
});
