/** Shared pieces of offline calibration: the calibration set, and uncached recording runs. */
import type { EngineObserver } from "../cache/engine.ts";
import { modelInfo } from "../cache/engine.ts";
import { none } from "../cache/policies/none.ts";
import type { CachePolicy, RunContext } from "../cache/policy.ts";
import { InputError } from "../errors.ts";
import { classCondition, observationSpec } from "../model/manifest.ts";
import type { Pipeline } from "../pipeline.ts";
import type { CfgMode } from "../sampling/denoise.ts";
import { createSampler, type SamplerKind } from "../sampling/samplers.ts";

export interface CalibrationOptions {
  steps?: number;
  cfg?: number;
  cfgMode?: CfgMode;
  shift?: number;
  /** Number of calibration items (seed, class) (P in the specs). */
  items?: number;
  /** First seed; calibration seeds default to 1000+ so they stay apart from evaluation seeds 0… */
  seed?: number;
  /** Sampler to calibrate for (default: the manifest's recommended one). */
  sampler?: SamplerKind;
  /** Observation-conditioned policies: the calibration observations, [P, dim] (one item each). */
  observations?: Float32Array;
  onProgress?: (done: number, total: number) => void;
}

export interface CalibrationSet {
  seeds: number[];
  classes?: number[];
  steps: number;
  cfg: number;
  cfgMode: CfgMode;
  shift?: number;
  sampler?: SamplerKind;
  observations?: Float32Array;
}

/** The generate request that runs a calibration set for `steps` steps, all items in one batch. */
export function calibrationRequest(set: CalibrationSet, steps: number) {
  return {
    seeds: set.seeds,
    classes: set.classes,
    steps,
    cfg: set.cfg,
    cfgMode: set.cfgMode,
    shift: set.shift,
    sampler: set.sampler,
    observations: set.observations,
    batch: set.seeds.length,
  };
}

export function calibrationSet(pipeline: Pipeline, options: CalibrationOptions, defaultItems: number): CalibrationSet {
  const m = pipeline.manifest;
  const obs = observationSpec(m);
  if (obs && !options.observations) {
    throw new InputError(
      "OPTION_INVALID",
      `${m.name} is a policy conditioned on observations: calibration needs observations (\`ditto profile\` draws them from the task's calibration episodes)`,
    );
  }
  const n = obs && options.observations ? options.observations.length / obs.dim : (options.items ?? defaultItems);
  const seeds = Array.from({ length: n }, (_, i) => (options.seed ?? 1000) + i);
  const numClasses = classCondition(m)?.numClasses;
  return {
    seeds,
    classes: numClasses ? seeds.map((_, i) => i % numClasses) : undefined,
    steps: options.steps ?? m.recommended?.steps ?? 50,
    cfg: options.cfg ?? m.recommended?.cfgScale ?? 1,
    cfgMode: options.cfgMode ?? "batched",
    shift: options.shift,
    sampler: options.sampler,
    observations: options.observations,
  };
}

/** The run context a policy would see for this calibration set (artifact headers are made from it). */
export async function calibrationContext(
  pipeline: Pipeline,
  set: CalibrationSet,
  policy: CachePolicy = none(),
): Promise<Omit<RunContext, "pass">> {
  const info = modelInfo(pipeline.model, await pipeline.model.flopsBreakdown());
  const sampler = createSampler(pipeline.manifest, { steps: set.steps, shift: set.shift, kind: set.sampler });
  return {
    model: info,
    units: policy.units(info),
    steps: set.steps,
    sampler: sampler.describe,
    cfgScale: set.classes ? set.cfg : 1,
    cfgMode: set.cfgMode,
  };
}

/** Generates the calibration set with `policy` (default uncached) in one batch, calling `observer` every evaluation. */
export async function record(
  pipeline: Pipeline,
  set: CalibrationSet,
  observer: EngineObserver,
  options: CalibrationOptions = {},
  policy: CachePolicy = none(),
) {
  return pipeline.generate({
    seeds: set.seeds,
    classes: set.classes,
    steps: set.steps,
    cfg: set.cfg,
    cfgMode: set.cfgMode,
    shift: set.shift,
    sampler: set.sampler,
    observations: set.observations,
    cache: policy,
    batch: set.seeds.length,
    observer,
    onStep: (p) => options.onProgress?.(p.step + 1, p.steps),
  });
}
