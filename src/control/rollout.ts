/**
 * Closed-loop evaluation of a diffusion policy (shared/specs/diffusion-policy.md, "Closed-loop evaluation"): all
 * episodes advance together; at each re-plan every running episode's observation goes into one denoiser batch, a
 * chunk of `horizon` actions comes back, and the first `execute` of them are applied. With a cache policy, the
 * uncached chunk is sampled too from the same observations and the same noise, for the action MSE and a speedup
 * measured side by side (the two runs alternate which goes first).
 */
import type { CacheEngine } from "../cache/engine.ts";
import { none } from "../cache/policies/none.ts";
import type { CachePolicy } from "../cache/policy.ts";
import { parseCacheSpec } from "../cache/registry.ts";
import { InputError } from "../errors.ts";
import { type ModelManifest, observationSpec } from "../model/manifest.ts";
import type { Pipeline } from "../pipeline.ts";
import { gaussianNoise } from "../sampling/noise.ts";
import { createSampler, type SamplerKind } from "../sampling/samplers.ts";
import { type Rate, wilson } from "./stats.ts";
import {
  type Episode,
  type EpisodeStatus,
  EVAL_SEED,
  makeEpisodes,
  REACH_TASK,
  Simulator,
  type TaskSettings,
} from "./task.ts";

export interface RolloutOptions {
  episodes: number;
  /** Seed of the episode set (default: the manifest's task.evalSeed, else the recipe's evaluation seed 7). */
  episodeSeed?: number;
  /** Seed of the denoiser noise (default 0). */
  seed?: number;
  steps?: number;
  sampler?: SamplerKind;
  cache?: CachePolicy | string;
  /** Also sample the uncached chunk from the same state and noise (default: true unless the policy is none). */
  compare?: boolean;
  /**
   * Compare on every n-th re-plan only (default 1: all), starting with the first (the full batch). The speedup is
   * then measured on exactly those batches, side by side; the MSE is over their chunks.
   */
  compareEvery?: number;
  onReplan?: (progress: { replan: number; live: number; finished: number; episodes: number }) => void;
  /** Sees each re-plan's observation batch [live, dim] (calibration draws its observations from here). */
  onObservations?: (observations: Float32Array) => void;
}

export interface EpisodeOutcome {
  index: number;
  episode: Episode;
  status: Exclude<EpisodeStatus, "running">;
  steps: number;
  path: [number, number][];
}

export interface RolloutResult {
  policy: string;
  sampler: { kind: SamplerKind; steps: number };
  episodes: number;
  episodeSeed: number;
  seed: number;
  success: Rate;
  collision: Rate;
  timeout: Rate;
  /** Denoiser batches run (one per re-plan) and chunks sampled (one per running episode per re-plan). */
  replans: number;
  chunks: number;
  /** Chunks also sampled uncached (the MSE and measured speedup are over these). */
  comparedChunks: number;
  /** Mean squared difference of the cached and uncached chunks (normalised action units), null without compare. */
  actionMse: number | null;
  /** Wall time of the cached sampling, per chunk and per re-plan batch (ms); the uncached run's beside it. */
  msPerChunk: number;
  msPerReplan: number;
  uncachedMsPerChunk: number | null;
  /** Uncached ÷ cached sampling time over the compared batches (null without compare). */
  measuredSpeedup: number | null;
  /** FLOPs of uncached ÷ cached sampling, from the engine's run reports. */
  idealSpeedup: number;
  /** Fraction of unit evaluations computed (the rest reused or forecast). */
  computedFraction: number;
  outcomes: EpisodeOutcome[];
}

/** Reads the action layout from a policy manifest, or explains why this model cannot be rolled out. */
export function policyLayout(m: ModelManifest): {
  horizon: number;
  dim: number;
  scale: number;
  execute: number;
  obsDim: number;
} {
  const obs = observationSpec(m);
  if (m.inputs.sample.kind !== "action-sequence" || !m.action || !obs) {
    throw new InputError(
      "OPTION_INVALID",
      `${m.name} is not a diffusion policy: rollout needs a manifest with inputs.sample.kind "action-sequence", an action field and an observation condition`,
    );
  }
  return { ...m.action, obsDim: obs.dim };
}

/** A 32-bit seed per (run, episode, re-plan), so an episode's noise does not depend on which others still run. */
export function chunkSeed(seed: number, episode: number, replan: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (episode + 0x632be5ab), 0xc2b2ae35) >>> 0;
  h = Math.imul(h ^ (replan + 0x27d4eb2f), 0x165667b1) >>> 0;
  return (h ^ (h >>> 16)) | 0;
}

export async function rollout(pipeline: Pipeline, options: RolloutOptions): Promise<RolloutResult> {
  const m = pipeline.manifest;
  const layout = policyLayout(m);
  if (!Number.isInteger(options.episodes) || options.episodes < 1) {
    throw new InputError("OPTION_INVALID", `--episodes must be a positive integer (got ${options.episodes})`);
  }
  const policy = typeof options.cache === "string" ? parseCacheSpec(options.cache) : (options.cache ?? none());
  const compare = options.compare ?? policy.name !== "none";
  const sampler = createSampler(m, { steps: options.steps ?? m.recommended?.steps ?? 100, kind: options.sampler });
  const task = taskSettings(m);
  const episodeSeed = options.episodeSeed ?? (m.task as { evalSeed?: number } | undefined)?.evalSeed ?? EVAL_SEED;
  const seed = options.seed ?? 0;
  const sims = makeEpisodes(episodeSeed, options.episodes).map((e) => new Simulator(e, task));
  const engine = await pipeline.engine(policy);
  const reference = compare ? await pipeline.engine(none()) : undefined;
  const perSample = layout.horizon * layout.dim;

  // Untimed warm-up on two episodes over every step: sessions, accumulators and first-run allocations.
  await warmUp(engine, reference, sims.slice(0, 2), layout, sampler);

  let replans = 0;
  let chunks = 0;
  let sqErr = 0;
  let cachedMs = 0;
  let uncachedMs = 0;
  let pairedCachedMs = 0;
  let compared = 0;
  const compareEvery = options.compareEvery ?? 1;
  if (!Number.isInteger(compareEvery) || compareEvery < 1) {
    throw new InputError("OPTION_INVALID", `compareEvery must be a positive integer (got ${compareEvery})`);
  }
  let flopsFull = 0;
  let flopsDone = 0;
  let computed = 0;
  let skipped = 0;
  for (;;) {
    const live = sims.map((s, i) => [s, i] as const).filter(([s]) => s.status === "running");
    if (live.length === 0) break;
    options.onReplan?.({
      replan: replans,
      live: live.length,
      finished: sims.length - live.length,
      episodes: sims.length,
    });
    const observations = new Float32Array(live.length * layout.obsDim);
    live.forEach(([s], k) => {
      observations.set(s.observation(), k * layout.obsDim);
    });
    options.onObservations?.(observations);
    const noiseCount = perSample * (sampler.stochastic ? sampler.steps + 1 : 1);
    const draws = live.map(([, i]) => gaussianNoise(chunkSeed(seed, i, replans), noiseCount));
    const batchAt = (offset: number) => {
      const out = new Float32Array(live.length * perSample);
      draws.forEach((d, k) => {
        out.set(d.subarray(offset, offset + perSample), k * perSample);
      });
      return out;
    };
    const request = {
      noise: batchAt(0),
      dims: [live.length, layout.horizon, layout.dim],
      observations,
      cfgScale: 1,
      sampler,
      stepNoise: (step: number) => batchAt((step + 1) * perSample),
    };
    let cached: Float32Array = new Float32Array(0);
    let plain: Float32Array | undefined;
    const pairs = reference !== undefined && replans % compareEvery === 0;
    const runCached = async () => {
      const t0 = performance.now();
      cached = await sample(engine, request);
      const ms = performance.now() - t0;
      cachedMs += ms;
      if (pairs) pairedCachedMs += ms;
      const report = engine.report();
      flopsFull += report.flopsFull;
      flopsDone += report.flopsDone;
      computed += report.unitsComputed;
      skipped += report.unitsSkipped;
    };
    const runPlain = async () => {
      if (!reference || !pairs) return;
      const t0 = performance.now();
      plain = await sample(reference, request);
      uncachedMs += performance.now() - t0;
    };
    if (replans % 2 === 0) {
      await runCached();
      await runPlain();
    } else {
      await runPlain();
      await runCached();
    }
    if (plain) {
      for (let i = 0; i < cached.length; i++) sqErr += (cached[i] - plain[i]) ** 2;
      compared += live.length;
    }
    live.forEach(([s], k) => {
      for (let j = 0; j < layout.execute && s.status === "running"; j++) {
        const o = (k * layout.horizon + j) * layout.dim;
        s.step(cached[o] * layout.scale, cached[o + 1] * layout.scale);
      }
    });
    replans++;
    chunks += live.length;
  }
  const count = (status: EpisodeStatus) => sims.filter((s) => s.status === status).length;
  const n = sims.length;
  return {
    policy: policy.spec,
    sampler: { kind: sampler.kind, steps: sampler.steps },
    episodes: n,
    episodeSeed,
    seed,
    success: wilson(count("success"), n),
    collision: wilson(count("collision"), n),
    timeout: wilson(count("timeout"), n),
    replans,
    chunks,
    comparedChunks: compared,
    actionMse: compare ? sqErr / (compared * perSample) : null,
    msPerChunk: cachedMs / chunks,
    msPerReplan: cachedMs / replans,
    uncachedMsPerChunk: compare ? uncachedMs / compared : null,
    measuredSpeedup: compare ? uncachedMs / pairedCachedMs : null,
    idealSpeedup: flopsFull / flopsDone,
    computedFraction: computed / (computed + skipped),
    outcomes: sims.map((s, index) => ({
      index,
      episode: s.episode,
      status: s.status as EpisodeOutcome["status"],
      steps: s.steps,
      path: s.path,
    })),
  };
}

async function warmUp(
  engine: CacheEngine,
  reference: CacheEngine | undefined,
  sims: Simulator[],
  layout: ReturnType<typeof policyLayout>,
  sampler: ReturnType<typeof createSampler>,
): Promise<void> {
  const n = sims.length;
  const observations = new Float32Array(n * layout.obsDim);
  sims.forEach((s, k) => {
    observations.set(s.observation(), k * layout.obsDim);
  });
  const size = n * layout.horizon * layout.dim;
  const request = {
    noise: gaussianNoise(-1, size),
    dims: [n, layout.horizon, layout.dim],
    observations,
    cfgScale: 1,
    sampler,
    stepNoise: (step: number) => gaussianNoise(-2 - step, size),
  };
  await sample(engine, request);
  if (reference) await sample(reference, request);
}

async function sample(engine: CacheEngine, request: Parameters<CacheEngine["generate"]>[0]): Promise<Float32Array> {
  let x = request.noise;
  for await (const r of engine.generate(request)) x = r.x;
  return x;
}

function taskSettings(m: ModelManifest): TaskSettings {
  const t = m.task as Partial<TaskSettings> | undefined;
  return {
    maxStep: t?.maxStep ?? REACH_TASK.maxStep,
    maxSteps: t?.maxSteps ?? REACH_TASK.maxSteps,
    goalTolerance: t?.goalTolerance ?? REACH_TASK.goalTolerance,
  };
}
