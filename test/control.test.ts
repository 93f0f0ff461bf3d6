import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { Tensor } from "onnxruntime-common";
import { tablePolicy } from "../src/cache/policies/schedule.ts";
import { rollout } from "../src/control/rollout.ts";
import { wilson } from "../src/control/stats.ts";
import { type Episode, EVAL_SEED, makeEpisodes, Simulator } from "../src/control/task.ts";
import { validateManifest } from "../src/model/manifest.ts";
import { loadPipeline } from "../src/pipeline.ts";
import { loadDiT } from "../src/runtime/dit.ts";
import { WholeModelEvaluator } from "../src/runtime/whole-model.ts";
import { denoise } from "../src/sampling/denoise.ts";
import { createSampler } from "../src/sampling/samplers.ts";
import { assertRejectsWith, maxAbsDiff } from "./helpers.ts";

const POLICY = resolve(import.meta.dirname, "../models/reach-policy");
const FIXTURES = resolve(import.meta.dirname, "fixtures");

const f32 = (b64: string): Float32Array => {
  const buf = Buffer.from(b64, "base64");
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
};

interface Trajectory {
  kind: string;
  episode: Episode;
  actions: [number, number][];
  positions: [number, number][];
  status: string;
  steps: number;
}

describe("diffusion policy: the shipped reach-policy model", () => {
  it("discovery finds 4 blocks × 3 ungated branches (self-attention, cross-attention, MLP) by scope", async () => {
    const model = await loadDiT(POLICY);
    const s = model.structure;
    assert.equal(s.groupedBy, "scopes");
    assert.equal(s.blocks.length, 4);
    for (const block of s.blocks) {
      assert.deepEqual(
        block.atoms.map((a) => s.atoms[a].kind),
        ["attn", "xattn", "mlp"],
      );
      for (const a of block.atoms) {
        assert.equal(s.atoms[a].gate, undefined, "DP-T has no adaLN gates");
        assert.notEqual(s.atoms[a].value, s.atoms[a].streamOut, "the branch output is exposed");
      }
    }
    await model.release();
  });

  it("DDIM-20 and DDPM-100 match the recipe's sampler (same observations, initial and per-step noise)", async () => {
    const fx = JSON.parse(readFileSync(join(FIXTURES, "policy-sampler.json"), "utf8"));
    const pipeline = await loadPipeline(POLICY);
    const whole = await WholeModelEvaluator.create(pipeline.model);
    const obs = f32(fx.obs);
    const noise = f32(fx.noise);
    const stepNoise = f32(fx.stepNoise);
    // The network alone, at two timesteps.
    const eps = await whole.evaluate({
      sample: new Tensor("float32", noise, [2, 16, 2]),
      time: Float64Array.from(fx.epsAt.t),
      observation: obs,
    });
    assert.ok(maxAbsDiff(eps, f32(fx.epsAt.eps)) < 1e-5, `ε differs by ${maxAbsDiff(eps, f32(fx.epsAt.eps))}`);
    for (const [kind, steps, expected] of [
      ["ddim", 20, f32(fx.ddim20)],
      ["ddpm", 100, f32(fx.ddpm100)],
    ] as const) {
      const sampler = createSampler(pipeline.manifest, { kind, steps });
      let x: Float32Array = noise;
      for await (const r of denoise(
        {
          noise,
          dims: [2, 16, 2],
          observations: obs,
          cfgScale: 1,
          sampler,
          stepNoise: (i) => stepNoise.subarray(i * 64, (i + 1) * 64),
        },
        whole,
      ))
        x = r.x;
      const d = maxAbsDiff(x, expected);
      assert.ok(d < 2e-4, `${kind}-${steps} differs from the recipe by ${d}`);
    }
    await assertRejectsWith(
      async () => {
        for await (const _ of denoise(
          {
            noise,
            dims: [2, 16, 2],
            observations: obs,
            cfgScale: 1,
            sampler: createSampler(pipeline.manifest, { kind: "ddpm", steps: 100 }),
          },
          whole,
        ));
      },
      "OPTION_INVALID",
      /stepNoise/,
    );
    await whole.release();
    await pipeline.release();
  });

  it("a per-unit schedule table runs as BAC's runtime does (the recipe's reference, DDIM-20 and DDPM-100)", async () => {
    const fx = JSON.parse(readFileSync(join(FIXTURES, "policy-sampler.json"), "utf8"));
    const pipeline = await loadPipeline(POLICY);
    const noise = f32(fx.noise);
    const stepNoise = f32(fx.stepNoise);
    for (const [kind, steps] of [
      ["ddim", 20],
      ["ddpm", 100],
    ] as const) {
      const { table, x: expected } = fx.scheduled[`${kind}${steps}`];
      const engine = await pipeline.engine(tablePolicy(table));
      let x: Float32Array = noise;
      for await (const r of engine.generate({
        noise,
        dims: [2, 16, 2],
        observations: f32(fx.obs),
        cfgScale: 1,
        sampler: createSampler(pipeline.manifest, { kind, steps }),
        stepNoise: (i) => stepNoise.subarray(i * 64, (i + 1) * 64),
      }))
        x = r.x;
      const report = engine.report();
      assert.ok(report.unitsSkipped > 0, "the table reuses units");
      const d = maxAbsDiff(x, f32(expected));
      assert.ok(d < 2e-4, `${kind}-${steps} under the table differs from the recipe's reference by ${d}`);
      const plain = f32(kind === "ddim" ? fx.ddim20 : fx.ddpm100);
      assert.ok(maxAbsDiff(x, plain) > 10 * d, "the reference differs from the uncached output");
    }
    await pipeline.release();
  });
});

describe("policy manifests", () => {
  const shipped = JSON.parse(readFileSync(join(POLICY, "manifest.json"), "utf8"));

  it("accepts the shipped action-sequence / observation manifest, without an image field", () => {
    const m = validateManifest(shipped, "manifest.json");
    assert.equal(m.inputs.sample.kind, "action-sequence");
    assert.equal(m.inputs.condition?.kind, "observation");
    assert.equal(m.image, undefined);
  });

  it("names the field that is wrong", async () => {
    const broken = (edit: (m: typeof shipped) => void) => {
      const m = structuredClone(shipped);
      edit(m);
      return () => validateManifest(m, "manifest.json");
    };
    await assertRejectsWith(
      broken((m) => delete m.action),
      "MANIFEST_INVALID",
      /action must give/,
    );
    await assertRejectsWith(
      broken((m) => delete m.inputs.condition.dim),
      "MANIFEST_INVALID",
      /inputs.condition.dim/,
    );
    await assertRejectsWith(
      broken((m) => {
        m.inputs.condition.kind = "text";
      }),
      "MANIFEST_INVALID",
      /"class" or "observation"/,
    );
    await assertRejectsWith(
      broken((m) => {
        m.inputs.sample.kind = "video";
      }),
      "MANIFEST_INVALID",
      /inputs.sample.kind/,
    );
    await assertRejectsWith(
      broken((m) => {
        m.objective.schedule.betaSchedule = "linear";
      }),
      "MANIFEST_INVALID",
      /objective.schedule.betaStart must be a number/,
    );
  });
});

describe("reach-around-the-obstacle simulator", () => {
  const fx = JSON.parse(readFileSync(join(FIXTURES, "policy-trajectories.json"), "utf8"));

  it("draws the recipe's episode sets bit for bit", () => {
    for (const set of fx.episodeSets) {
      const episodes = makeEpisodes(set.seed, set.episodes.length);
      assert.deepEqual(episodes, set.episodes);
    }
  });

  it("replays recorded Python trajectories bit for bit (success, collision, time-out)", () => {
    const statuses = new Set<string>();
    for (const t of fx.trajectories as Trajectory[]) {
      const sim = new Simulator(t.episode);
      t.actions.forEach(([ax, ay], k) => {
        sim.step(ax, ay);
        assert.deepEqual([sim.x, sim.y], t.positions[k], `${t.kind}: step ${k}`);
      });
      assert.equal(sim.status, t.status, t.kind);
      assert.equal(sim.steps, t.steps, t.kind);
      statuses.add(sim.status);
    }
    assert.deepEqual([...statuses].sort(), ["collision", "success", "timeout"]);
  });

  it("Wilson interval: sensible at the edges and in the middle", () => {
    const r = wilson(200, 200);
    assert.ok(r.interval[1] > 1 - 1e-12);
    assert.ok(r.interval[0] > 0.98 && r.interval[0] < 0.985);
    const h = wilson(50, 100);
    assert.ok(Math.abs(h.interval[0] - 0.4038) < 1e-3 && Math.abs(h.interval[1] - 0.5962) < 1e-3);
  });
});

describe("ditto rollout", () => {
  it("is deterministic for a seed, and a cached run reports MSE and speedups against uncached", async () => {
    const pipeline = await loadPipeline(POLICY);
    const options = { episodes: 6, sampler: "ddim" as const, steps: 10, seed: 3 };
    const a = await rollout(pipeline, { ...options, cache: "fora:interval=2" });
    const b = await rollout(pipeline, { ...options, cache: "fora:interval=2" });
    assert.deepEqual(
      a.outcomes.map((o) => o.path),
      b.outcomes.map((o) => o.path),
    );
    assert.equal(a.episodeSeed, EVAL_SEED);
    assert.ok(a.actionMse !== null && a.actionMse > 0 && a.actionMse === b.actionMse);
    assert.ok(a.idealSpeedup > 1.5 && a.computedFraction < 0.7);
    const plain = await rollout(pipeline, { ...options, cache: "none" });
    assert.equal(plain.actionMse, null);
    assert.equal(plain.idealSpeedup, 1);
    const other = await rollout(pipeline, { ...options, seed: 4, cache: "none" });
    assert.notDeepEqual(
      other.outcomes.map((o) => o.path),
      plain.outcomes.map((o) => o.path),
    );
    await pipeline.release();
  });

  it("the CLI prints the JSON contract, and explains bad input", async () => {
    const cli = (args: string[]) =>
      promisify(execFile)(process.execPath, [join(import.meta.dirname, "../bin/ditto.js"), "rollout", ...args]).then(
        (r) => ({ code: 0, ...r }),
        (e) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }),
      );
    const ok = await cli(
      ["--model", POLICY, "--episodes", "3", "--sampler", "ddim", "--steps", "5"].concat([
        "--cache",
        "fora:interval=2",
        "--json",
        "--quiet",
      ]),
    );
    assert.equal(ok.code, 0, ok.stderr);
    const r = JSON.parse(ok.stdout);
    for (const key of ["success", "collision", "timeout", "actionMse", "msPerChunk", "measuredSpeedup", "idealSpeedup"])
      assert.ok(key in r, key);
    assert.equal(r.success.interval95.length, 2);
    assert.equal(r.outcomes.length, 3);
    const missing = await cli(["--episodes", "3"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--model is required/);
    const sampler = await cli(["--model", POLICY, "--sampler", "euler"]);
    assert.equal(sampler.code, 2);
    assert.match(sampler.stderr, /--sampler must be ddpm or ddim/);
  });

  it("refuses an image model with a clear error", async () => {
    const pipeline = await loadPipeline();
    await assertRejectsWith(() => rollout(pipeline, { episodes: 2 }), "OPTION_INVALID", /not a diffusion policy/);
    await pipeline.release();
  });
});
