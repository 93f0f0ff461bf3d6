/**
 * One contract every registered cache policy passes, on the real shipped model:
 * - configured to compute everything, its output is bit-identical to the uncached run;
 * - the same seed twice gives the same output (state resets between generations);
 * - configured to cache, it skips work and still produces finite images;
 * - with separate CFG passes each branch keeps its own state;
 * - a NaN in a cached value makes the engine compute that unit instead, and counts it.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Tensor } from "onnxruntime-common";
import type { CachePolicy } from "../src/cache/policy.ts";
import { POLICIES, parseCacheSpec } from "../src/cache/registry.ts";
import { loadPipeline, type Pipeline } from "../src/pipeline.ts";
import type { ArtifactHeader } from "../src/profiling/artifact.ts";
import { profileBac } from "../src/profiling/bac.ts";
import { profileErtaCache } from "../src/profiling/ertacache.ts";
import { profileRouter } from "../src/profiling/harmonica.ts";
import { profileMagCache } from "../src/profiling/magcache.ts";
import { profileProfilingDit } from "../src/profiling/profilingdit.ts";
import type { CfgMode } from "../src/sampling/denoise.ts";
import { assertBitIdentical, SHIPPED_MODEL, tempDir } from "./helpers.ts";

type Specs = { computeAll: string; caching: string };

/**
 * Per policy: a spec that computes everything and one that caches, or a setup that calibrates them on the model
 * first. A new policy must add a line here.
 */
export const CONFORMANCE: Record<string, Specs | { setup: (pipeline: Pipeline, cfgMode: CfgMode) => Promise<Specs> }> =
  {
    none: { computeAll: "none", caching: "none" },
    fora: { computeAll: "fora:interval=1", caching: "fora:interval=3" },
    taylorseer: { computeAll: "taylorseer:interval=1,order=2", caching: "taylorseer:interval=3,order=1,warmup=1" },
    teacache: { computeAll: "teacache:threshold=0", caching: "teacache:threshold=0.3" },
    fbcache: { computeAll: "fbcache:threshold=0", caching: "fbcache:threshold=0.3" },
    dbcache: { computeAll: "dbcache:threshold=0", caching: "dbcache:threshold=0.3,fn=2,bn=1,warmup=1" },
    ertacache: {
      setup: calibrateOnce(
        async (pipeline) => {
          const [zero, half] = await profileErtaCache(pipeline, {
            ...OPTS,
            items: 2,
            lambdas: [0],
            computedSteps: [4],
          });
          return { computeAll: zero, caching: half };
        },
        "ertacache:artifact=$computeAll",
        "ertacache:artifact=$caching",
      ),
    },
  };

CONFORMANCE.profilingdit = {
  setup: calibrateOnce(
    async (pipeline) => {
      const artifact = await profileProfilingDit(pipeline, { ...OPTS, items: 2 });
      return { computeAll: artifact, caching: artifact };
    },
    "profilingdit:artifact=$computeAll,interval=1",
    "profilingdit:artifact=$caching,interval=3,s0=1",
  ),
};

CONFORMANCE.magcache = {
  setup: async (pipeline, cfgMode) => {
    const path = saved(await profileMagCache(pipeline, { ...OPTS, cfgMode, items: 1 }));
    return {
      computeAll: `magcache:calibration=${path},threshold=0`,
      caching: `magcache:calibration=${path},threshold=0.5,retention=0.1,maxSkip=2`,
    };
  },
};
CONFORMANCE.easycache = { computeAll: "easycache:threshold=0", caching: "easycache:threshold=0.5,warmup=2" };

CONFORMANCE.bac = {
  setup: calibrateOnce(
    async (pipeline) => withAllOnes(await profileBac(pipeline, { ...OPTS, items: 2, budget: 3 })),
    "bac:artifact=$computeAll",
    "bac:artifact=$caching",
  ),
};
CONFORMANCE.schedule = {
  setup: calibrateOnce(
    async (pipeline) => withAllOnes(await profileBac(pipeline, { ...OPTS, items: 2, budget: 3 })),
    "schedule:artifact=$computeAll",
    "schedule:artifact=$caching,table=uniform",
  ),
};

CONFORMANCE.harmonica = {
  setup: calibrateOnce(
    async (pipeline) => withAllOnes(await profileRouter(pipeline, { ...OPTS, items: 2, rounds: 0, beta: 2e-2 })),
    "harmonica:artifact=$computeAll",
    "harmonica:artifact=$caching",
  ),
};
CONFORMANCE.l2c = {
  setup: calibrateOnce(
    async (pipeline) => withAllOnes(await profileRouter(pipeline, { ...OPTS, items: 2, mode: "l2c", beta: 2e-2 })),
    "l2c:artifact=$computeAll",
    "l2c:artifact=$caching",
  ),
};

type Artifact = ArtifactHeader & object;

/**
 * A setup that calibrates once (batched CFG) and serves both CFG modes: the artifacts are relabelled with the mode
 * asked for, since the contract tested here (the policy's runtime behaviour) does not depend on the mode the
 * calibration ran in, and each calibration is the costly part of this file. `$computeAll` and `$caching` in the
 * specs become the artifacts' paths.
 */
function calibrateOnce(
  calibrate: (pipeline: Pipeline) => Promise<{ computeAll: Artifact; caching: Artifact }>,
  computeAll: string,
  caching: string,
): (pipeline: Pipeline, cfgMode: CfgMode) => Promise<Specs> {
  let made: Promise<{ computeAll: Artifact; caching: Artifact }> | undefined;
  return async (pipeline, cfgMode) => {
    made ??= calibrate(pipeline);
    const artifacts = await made;
    const path = (a: Artifact) => saved({ ...a, sampler: { ...a.sampler, cfgMode } });
    const fill = (spec: string) =>
      spec.replace("$computeAll", path(artifacts.computeAll)).replace("$caching", path(artifacts.caching));
    return { computeAll: fill(computeAll), caching: fill(caching) };
  };
}

/** The fitted table as the caching artifact, and the same artifact with every unit computed as the other. */
function withAllOnes<T extends Artifact & { m: (0 | 1)[][] }>(some: T): { computeAll: T; caching: T } {
  return { computeAll: { ...some, m: some.m.map((row) => row.map(() => 1 as const)) }, caching: some };
}

function saved(artifact: object): string {
  const path = join(tempDir(), "artifact.json");
  writeFileSync(path, JSON.stringify(artifact));
  return path;
}

const OPTS = { classes: [0, 8], seeds: [3, 4], steps: 8, cfg: 3 };

describe("policy conformance", () => {
  let pipeline: Pipeline;
  let uncached: Float32Array;
  before(async () => {
    pipeline = await loadPipeline(SHIPPED_MODEL);
    uncached = (await pipeline.generate(OPTS)).samples;
  });
  after(() => pipeline.release());

  it("covers every registered policy", () => {
    assert.deepEqual(Object.keys(CONFORMANCE).sort(), POLICIES.map((p) => p.name).sort());
  });

  for (const [name, declared] of Object.entries(CONFORMANCE)) {
    let entry: Specs = { computeAll: "none", caching: "none" };
    it(`${name}: computing everything is bit-identical to uncached`, async () => {
      entry = "setup" in declared ? await declared.setup(pipeline, "batched") : declared;
      const result = await pipeline.generate({ ...OPTS, cache: entry.computeAll });
      assertBitIdentical(result.samples, uncached, entry.computeAll);
      assert.equal(result.reports[0].unitsSkipped, 0);
    });

    it(`${name}: is deterministic and resets between runs`, async () => {
      const a = await pipeline.generate({ ...OPTS, cache: entry.caching });
      const b = await pipeline.generate({ ...OPTS, cache: entry.caching });
      assertBitIdentical(a.samples, b.samples, "same seed twice");
      assert.ok(a.samples.every(Number.isFinite));
      if (name !== "none") assert.ok(a.reports[0].unitsSkipped > 0, "the caching setting skips work");
    });

    it(`${name}: separate CFG passes keep separate state`, async () => {
      const separate = "setup" in declared ? await declared.setup(pipeline, "separate") : declared;
      const result = await pipeline.generate({ ...OPTS, cache: separate.caching, cfgMode: "separate" });
      const passes = new Set(result.reports[0].trace.map((t) => t.pass));
      assert.deepEqual([...passes].sort(), ["cond", "uncond"]);
      assert.ok(result.samples.every(Number.isFinite));
      const computeAll = await pipeline.generate({ ...OPTS, cache: separate.computeAll, cfgMode: "separate" });
      // Uncached, the two CFG modes differ only by batching; ONNX Runtime's kernels are batch-independent here.
      // (Computing everything in batched mode is bit-identical to `uncached`, the first test of each policy.)
      assert.ok(maxDiff(computeAll.samples, uncached) < 1e-4);
    });
  }

  it("recomputes a unit whose cached value holds NaN, and counts it", async () => {
    const base = parseCacheSpec("fora:interval=2");
    const poisoned: CachePolicy = {
      ...base,
      spec: "fora-poisoned",
      createState: (ctx) => {
        const state = base.createState(ctx);
        return {
          ...state,
          decide: state.decide.bind(state),
          update: state.update.bind(state),
          bytes: state.bytes.bind(state),
          approximate: (unit, decision, view) => {
            const a = state.approximate(unit, decision, view);
            if (!a) return a;
            const [first, ...rest] = a.terms;
            const poisoned = Float32Array.from(first.tensor.data as Float32Array);
            poisoned[0] = Number.NaN;
            return {
              terms: [{ tensor: new Tensor("float32", poisoned, first.tensor.dims), coef: first.coef }, ...rest],
            };
          },
        };
      },
    };
    const result = await pipeline.generate({ ...OPTS, cache: poisoned });
    const report = result.reports[0];
    assert.equal(report.nonFiniteFallbacks, 4, "steps 1, 3, 5 and 7 would reuse the poisoned value");
    assert.ok(report.trace.some((t) => t.decisions === "N"));
    assert.ok(result.samples.every(Number.isFinite));
  });
});

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
