/**
 * MagCache calibration (arXiv 2506.09045 §3.2): one uncached-quality run that computes the whole stack every step
 * and records γ_s = mean_token ‖r_s‖ / ‖r_{s−1}‖ of the stack residual r = h_L − h_0 (γ_0 = 1). With several
 * calibration items (and both CFG halves, batched) the token mean runs over all of them: one curve per model.
 */
import type { Tensor } from "onnxruntime-common";
import { type MagCacheArtifact, magnitudeRatio } from "../cache/policies/magcache.ts";
import type { CachePolicy, Decision, PolicyState } from "../cache/policy.ts";
import { stackUnit } from "../cache/policy.ts";
import type { Pipeline } from "../pipeline.ts";
import { makeHeader } from "./artifact.ts";
import { type CalibrationOptions, calibrationContext, calibrationSet, record } from "./calibration.ts";

/** A policy that computes every step as one stack unit and hands each residual to `onResidual`. */
function residualRecorder(onResidual: (step: number, residual: Tensor) => void): CachePolicy {
  return {
    name: "magcache-calibration",
    spec: "magcache-calibration",
    units: stackUnit,
    createState: (): PolicyState => ({
      plan: (): Decision[] => ["compute"],
      decide: () => "compute",
      update: (_unit, computed, view) => onResidual(view.step, computed.value()),
      approximate: () => undefined,
      bytes: () => 0,
    }),
  };
}

export async function profileMagCache(pipeline: Pipeline, options: CalibrationOptions = {}): Promise<MagCacheArtifact> {
  const set = calibrationSet(pipeline, options, 1);
  const ratios = new Array(set.steps).fill(1);
  let previous: Tensor | undefined;
  const recorder = residualRecorder((step, residual) => {
    if (previous && step > 0) ratios[step] = magnitudeRatio(residual, previous);
    previous = residual;
  });
  await record(pipeline, set, () => {}, options, recorder);
  const ctx = await calibrationContext(pipeline, set, recorder);
  return {
    ...makeHeader(
      "magcache",
      ctx,
      "stack",
      { seeds: set.seeds, conditions: set.classes ?? [], batch: set.seeds.length },
      "profile --method magcache",
    ),
    ratios: ratios.map((g) => Math.round(g * 1e6) / 1e6),
  };
}

/** `ditto profile --method magcache`. */
export const magcacheMethod = {
  summary: "measure MagCache's residual-magnitude ratio curve",
  run: (pipeline: Pipeline, options: CalibrationOptions) => profileMagCache(pipeline, options),
  summarize: (a: unknown) => {
    const r = (a as MagCacheArtifact).ratios;
    return `γ over ${r.length} steps: first ${r[1]?.toFixed(3)}, min ${Math.min(...r).toFixed(3)}, max ${Math.max(...r).toFixed(3)}, last ${r.at(-1)?.toFixed(3)}`;
  },
};
