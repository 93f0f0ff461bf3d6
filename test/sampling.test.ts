import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ModelManifest } from "../src/model/manifest.ts";
import { batchNoise, gaussianNoise } from "../src/sampling/noise.ts";
import { alphasCumprod, createSampler, flowTimes } from "../src/sampling/samplers.ts";

const flowManifest = { objective: { kind: "flow-velocity" }, recommended: {} } as unknown as ModelManifest;
const epsManifest = {
  objective: {
    kind: "epsilon",
    schedule: { betaSchedule: "linear", betaStart: 1e-4, betaEnd: 0.02, trainSteps: 1000 },
  },
  recommended: {},
} as unknown as ModelManifest;

describe("seeded noise", () => {
  it("is bit-identical for a seed and independent of the batch it is drawn in", () => {
    assert.deepEqual(gaussianNoise(5, 100), gaussianNoise(5, 100));
    assert.notDeepEqual(gaussianNoise(5, 100), gaussianNoise(6, 100));
    const batch = batchNoise([9, 5], 100);
    assert.deepEqual(batch.subarray(100), gaussianNoise(5, 100));
  });

  it("is standard normal", () => {
    const n = gaussianNoise(1, 200_000);
    const mean = n.reduce((a, b) => a + b, 0) / n.length;
    const variance = n.reduce((a, b) => a + (b - mean) ** 2, 0) / n.length;
    assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
    assert.ok(Math.abs(variance - 1) < 0.01, `variance ${variance}`);
  });
});

describe("flow-matching Euler", () => {
  it("runs its time grid from noise (1) to data (0), with the SD3 shift bending it toward noise", () => {
    assert.deepEqual(Array.from(flowTimes(4, 1)), [1, 0.75, 0.5, 0.25, 0]);
    const shifted = flowTimes(4, 3);
    assert.equal(shifted[0], 1);
    assert.equal(shifted[4], 0);
    assert.ok(Math.abs(shifted[2] - 0.75) < 1e-12, "σ' = 3·0.5 / (1 + 2·0.5)");
    assert.deepEqual(Array.from(flowTimes(2, 1, 0, 1)), [0, 0.5, 1], "reversed time convention");
  });

  it("integrates an exact straight path in one step: x_0 = x_1 − v", () => {
    const s = createSampler(flowManifest, { steps: 1 });
    const x0 = Float32Array.from([0.5, -0.25]);
    const noise = Float32Array.from([1, 2]);
    const v = noise.map((e, i) => e - x0[i]);
    assert.deepEqual(Array.from(s.update(noise, v, 1, 0)), Array.from(x0));
    assert.deepEqual(Array.from(s.predictX0(noise, v, 1)), Array.from(x0));
  });

  it("rejects a bad step count and the wrong sampler for the objective", () => {
    assert.throws(() => createSampler(flowManifest, { steps: 0 }), /--steps/);
    assert.throws(() => createSampler(flowManifest, { steps: 10, kind: "ddim" }), /ε-prediction/);
  });
});

describe("DDIM", () => {
  it("computes ᾱ for the linear schedule and recovers x0 exactly when ε is exact", () => {
    const abar = alphasCumprod({ betaSchedule: "linear", betaStart: 1e-4, betaEnd: 0.02, trainSteps: 1000 });
    assert.ok(Math.abs(abar[0] - (1 - 1e-4)) < 1e-12);
    assert.ok(abar[999] < 1e-4 && abar[999] > 0);
    const s = createSampler(epsManifest, { steps: 10 });
    assert.equal(s.times[0], 900);
    assert.equal(s.times[10], -1);
    const x0 = Float32Array.from([0.3, -0.7]);
    const eps = Float32Array.from([0.9, 0.1]);
    const a = abar[900];
    const xt = x0.map((v, i) => Math.sqrt(a) * v + Math.sqrt(1 - a) * eps[i]);
    const out = s.update(xt, eps, 900, -1);
    for (let i = 0; i < 2; i++) assert.ok(Math.abs(out[i] - x0[i]) < 1e-5);
  });
});
