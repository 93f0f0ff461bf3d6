import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { channelLayout, ertaHooks, uniformReuse } from "../src/cache/policies/ertacache.ts";
import { none } from "../src/cache/policies/none.ts";
import type { CachePolicy } from "../src/cache/policy.ts";
import { stackUnit } from "../src/cache/policy.ts";
import { loadPipeline, type Pipeline } from "../src/pipeline.ts";
import { endpointPhi, fitAffineError, greedyReuse, phiFactor, profileErtaCache } from "../src/profiling/ertacache.ts";
import { plannedTimes } from "../src/sampling/denoise.ts";
import { gaussianNoise } from "../src/sampling/noise.ts";
import { flowTimes } from "../src/sampling/samplers.ts";
import { assertBitIdentical, assertRejectsWith, SHIPPED_MODEL, tempDir } from "./helpers.ts";

describe("ERTACache offline policy", () => {
  it("walks a hand-made E greedily, resetting the source after each compute", () => {
    const E = [
      [0, 0.1, 0.2, 0.5, 0.9],
      [0, 0, 0.1, 0.2, 0.4],
      [0, 0, 0, 0.1, 0.2],
      [0, 0, 0, 0, 0.1],
      [0, 0, 0, 0, 0],
    ];
    // src 0: step 1 (0.1) and 2 (0.2) reuse; step 3 (0.5) computes → src 3; step 4 is last: computes (forceLast).
    assert.deepEqual(greedyReuse(E, 0.3, true), { reuse: [false, true, true, false, false], src: [0, 0, 0, 3, 4] });
    // Without forceLast, step 4 reuses from 3 (E[3][4] = 0.1).
    assert.deepEqual(greedyReuse(E, 0.3, false).reuse, [false, true, true, false, true]);
    assert.ok(
      greedyReuse(E, 0, true).reuse.every((r) => !r),
      "λ = 0 reuses nothing",
    );
  });

  it("fits the affine error exactly and φ by its formula", () => {
    const vt = gaussianNoise(5, 4000);
    const noise = gaussianNoise(6, 4000);
    const v = vt.map((x, i) => x - (0.3 * x + 0.1 + 1e-4 * noise[i])); // ε = ṽ − v = 0.3ṽ + 0.1 + noise
    const [a, b] = fitAffineError(vt, v);
    assert.ok(Math.abs(a - 0.3) < 1e-3 && Math.abs(b - 0.1) < 1e-3, `a ${a}, b ${b}`);
    assert.deepEqual(fitAffineError(vt, vt), [0, 0]);
    assert.equal(phiFactor([1, 1], [1, 1], [0, 0]), 1, "ṽ = v ⇒ φ = 1");
    assert.equal(phiFactor([3, 1], [1, 1], [0, 1]), 0, "‖ṽ − v‖ ≥ ‖v − v_prev‖ ⇒ φ = 0");
    assert.ok(Math.abs(phiFactor([1.5, 1], [1, 1], [0, 0]) - 0.75) < 1e-12, "1 − 0.5/2");
    assert.ok(Math.abs(phiFactor([1.5, 1], [1, 1], undefined) - 0.75) < 1e-12, "norm form: 1 − 0.5/‖v‖₁ = 1 − 0.5/2");
    assert.equal(phiFactor([4, 1], [1, 1], undefined), 0, "norm form clips at φ_min");
  });

  it("endpoint φ under Euler is the clipped projection ⟨ṽ, v⟩/‖ṽ‖²", () => {
    const euler = {
      stochastic: false,
      update: (x: Float32Array, v: Float32Array, t: number, tn: number) => x.map((xi, k) => xi + (tn - t) * v[k]),
    };
    const x = Float32Array.from([0.3, -0.2, 0.5]);
    const v = Float32Array.from([1, 2, -1]);
    const approx = v.map((vi) => 1.25 * vi); // overshoots by 25 % ⇒ φ = 0.8
    assert.equal(endpointPhi(euler, x, approx, v, 1, 0.9), 0.8);
    assert.equal(
      endpointPhi(
        euler,
        x,
        v.map((vi) => 0.5 * vi),
        v,
        1,
        0.9,
      ),
      1,
      "an undershoot clips at 1",
    );
    assert.equal(
      endpointPhi(
        euler,
        x,
        v.map((vi) => 0.5 * vi),
        v,
        1,
        0.9,
        0,
        2,
      ),
      2,
      "… or at φ_max",
    );
  });

  it("lays rectification channels over C of an image and over the action dims of a chunk", () => {
    const image = channelLayout([2, 3, 3], true);
    assert.equal(image.channels, 2);
    assert.deepEqual([0, 8, 9, 17, 18].map(image.channelOf), [0, 0, 1, 1, 0]);
    const chunk = channelLayout([16, 2], false);
    assert.equal(chunk.channels, 2);
    assert.deepEqual([0, 1, 2, 31, 32].map(chunk.channelOf), [0, 1, 0, 1, 0]);
  });

  it("spreads uniform reuse over the run with the same count", () => {
    const reuse = [false, true, true, true, false, true, true, false];
    const u = uniformReuse(reuse);
    assert.equal(u.filter((r) => !r).length, 3);
    assert.equal(u[0], false);
    assert.equal(u[7], false);
  });

  it("re-budgets time so every run ends exactly at t_end, with τ monotone (random S and φ)", () => {
    for (let trial = 0; trial < 200; trial++) {
      const r = gaussianNoise(trial, 64).map((v) => Math.abs(v) % 1);
      const S = 2 + Math.floor(r[0] * 40);
      const grid = flowTimes(S, 1 + r[1] * 4);
      const reuse = Array.from({ length: S }, (_, s) => s > 0 && r[2 + (s % 60)] < 0.5);
      const phi = Array.from({ length: S }, (_, s) => r[(3 + 7 * s) % 64]);
      const artifact = { phi, rect: { granularity: "tensor" as const, a: [], b: [] } };
      const options = { adjust: true, rectify: false, kappaMax: 2, channelOf: () => 0 };
      const hooks = ertaHooks(reuse, artifact, options);
      const planned = plannedTimes(grid, S, ertaHooks(reuse, artifact, options));
      let tau = grid[0];
      let total = 0;
      for (let s = 0; s < S; s++) {
        assert.equal(planned[s], tau, `the engine's planned time of step ${s} (its conditioning table row)`);
        const next = hooks.nextTime?.({ step: s, steps: S, time: tau, grid }) as number;
        assert.ok(next <= tau, `monotone at step ${s}`);
        total += next - tau;
        tau = next;
      }
      assert.ok(Math.abs(total - (grid[S] - grid[0])) < 1e-9, `Σ Δt = ${total}`);
      assert.equal(tau, grid[S]);
    }
  });
});

describe("ERTACache on the shipped model", () => {
  let pipeline: Pipeline;
  let path0: string;
  let path: string;
  const opts = { classes: [3, 6], seeds: [0, 1], steps: 6, cfg: 3 };
  before(async () => {
    pipeline = await loadPipeline(SHIPPED_MODEL);
    const [zero, some] = await profileErtaCache(pipeline, {
      steps: 6,
      cfg: 3,
      items: 2,
      lambdas: [0],
      computedSteps: [3],
    });
    const dir = tempDir();
    path0 = join(dir, "erta0.json");
    path = join(dir, "erta3.json");
    writeFileSync(path0, JSON.stringify(zero));
    writeFileSync(path, JSON.stringify(some));
    assert.equal(some.reuse.filter((r) => !r).length, 3);
  });
  after(() => pipeline.release());

  it("λ = 0 computes every step: bit-identical to uncached", async () => {
    const base = await pipeline.generate(opts);
    const r = await pipeline.generate({ ...opts, cache: `ertacache:artifact=${path0}` });
    assertBitIdentical(r.samples, base.samples, "λ = 0");
  });

  it("with adjustment and rectification off equals plain stack-residual reuse on the same steps", async () => {
    const artifact = JSON.parse((await import("node:fs")).readFileSync(path, "utf8"));
    const plain: CachePolicy = {
      name: "static-stack",
      spec: "static-stack",
      units: stackUnit,
      createState: () => {
        let residual: import("onnxruntime-common").Tensor | undefined;
        return {
          decide: (_u, view) => (artifact.reuse[view.step] && residual ? "reuse" : "compute"),
          update: (_u, c) => {
            residual = c.value();
          },
          approximate: () => (residual ? { terms: [{ tensor: residual, coef: 1 }] } : undefined),
          bytes: () => 0,
        };
      },
    };
    const a = await pipeline.generate({ ...opts, cache: `ertacache:artifact=${path},adjust=false,rectify=false` });
    const b = await pipeline.generate({ ...opts, cache: plain });
    assertBitIdentical(a.samples, b.samples, "ERTACache without corrections");
    const full = await pipeline.generate({ ...opts, cache: `ertacache:artifact=${path}` });
    assert.ok(full.samples.every(Number.isFinite));
  });

  it("with time adjustment reads each moved step's conditioning from the table (no embed run per step)", async () => {
    const grid = flowTimes(opts.steps, pipeline.manifest.recommended?.shift ?? 1);
    const r = await pipeline.generate({ ...opts, cache: `ertacache:artifact=${path},rectify=false` });
    const [report] = r.reports;
    assert.ok(
      report.trace.some((t) => !grid.includes(t.time)),
      "the time controller moved some step off the grid",
    );
    assert.equal(report.sessionCalls.embed, 0, JSON.stringify(report.sessionCalls));
  });

  it("stops with a clear error when a time controller's times differ from the ones planned before the run", async () => {
    let calls = 0;
    // Moves the time by how often any instance was asked: the instance that plans the run and the one that runs it
    // disagree, as a controller reading the model's output would.
    const drifting: CachePolicy = {
      ...none(),
      createHooks: () => ({ nextTime: (ctx) => ctx.grid[ctx.step + 1] - 1e-3 * calls++ }),
    };
    await assertRejectsWith(
      () => pipeline.generate({ ...opts, cache: drifting }),
      "RUNTIME_FAILED",
      /step 1 runs at t = .*, not at the planned .*nextTime must depend on the step context only/,
    );
  });

  it("refuses its artifact for another step count, CFG scale or model", async () => {
    await assertRejectsWith(
      () => pipeline.generate({ ...opts, steps: 7, cache: `ertacache:artifact=${path}` }),
      "ARTIFACT_MISMATCH",
      /steps 6, but this run has 7/,
    );
    await assertRejectsWith(
      () => pipeline.generate({ ...opts, cfg: 2, cache: `ertacache:artifact=${path}` }),
      "ARTIFACT_MISMATCH",
      /CFG scale 3, but this run has 2/,
    );
    const other = JSON.parse((await import("node:fs")).readFileSync(path, "utf8"));
    other.model.sha256 = "0".repeat(64);
    const otherPath = join(tempDir(), "other.json");
    writeFileSync(otherPath, JSON.stringify(other));
    await assertRejectsWith(
      () => pipeline.generate({ ...opts, cache: `ertacache:artifact=${otherPath}` }),
      "ARTIFACT_MISMATCH",
      /model sha256/,
    );
    await assertRejectsWith(
      () => pipeline.generate({ ...opts, cache: "ertacache" }),
      "OPTION_INVALID",
      /needs artifact=FILE\.json/,
    );
  });
});

describe("ERTACache on an ε-prediction policy (reach-policy, DDIM)", () => {
  it("profiles action chunks (one rectification channel per action dim) and runs with φ under DDIM", async () => {
    const pipeline = await loadPipeline(join(import.meta.dirname, "../models/reach-policy"));
    try {
      const observations = Float32Array.from({ length: 4 * 7 }, (_, i) => ((i * 37) % 11) / 20 - 0.25);
      const [artifact] = await profileErtaCache(pipeline, {
        steps: 10,
        sampler: "ddim",
        observations,
        computedSteps: [6],
      });
      assert.equal(artifact.phiMode, "norm");
      assert.equal(artifact.reuse.filter((r) => !r).length, 6);
      const reused = artifact.reuse.flatMap((r, s) => (r ? [s] : []));
      for (const s of reused) {
        assert.equal(artifact.rect.a[s].length, 2);
        assert.ok((artifact.phiRect as number[])[s] > 0 && (artifact.phiRect as number[])[s] <= 1);
      }
      const path = join(tempDir(), "erta-policy.json");
      writeFileSync(path, JSON.stringify(artifact));
      const request = { seeds: [0, 1, 2, 3], observations, steps: 10, sampler: "ddim" as const };
      const r = await pipeline.generate({ ...request, cache: `ertacache:artifact=${path}` });
      assert.ok(r.samples.every(Number.isFinite));
      assert.equal(r.reports[0].trace.filter((t) => t.decisions[0] === "R").length, reused.length);
    } finally {
      await pipeline.release();
    }
  });
});
