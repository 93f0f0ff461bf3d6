/**
 * FSC, TFMQ's per-step activation calibration (shared/specs/tfmq.md, Ditto form step 5): run the float model
 * uncached on P calibration items and record, at every sampler step, the range [min, max] of each quantized
 * linear's input. Ranges are tied to the step grid they were recorded on; `checkQuantizedGrid` refuses any other.
 */
import type { CachePolicy, ModelInfo } from "../cache/policy.ts";
import type { ModelManifest } from "../model/manifest.ts";
import type { Pipeline } from "../pipeline.ts";
import { type CalibrationOptions, calibrationSet, record } from "../profiling/calibration.ts";
import { timestepTensor } from "../runtime/model-inputs.ts";
import { floatData } from "../runtime/tensor-ops.ts";
import { createSampler, type SamplerKind } from "../sampling/samplers.ts";
import type { Linear } from "./linears.ts";
import type { StaticScales } from "./quantize-graph.ts";

export interface StepGrid {
  kind: SamplerKind;
  steps: number;
  shift: number;
}

export interface FscCalibration {
  scales: StaticScales;
  grid: StepGrid;
  seeds: number[];
  conditions: number[];
  cfg: number;
}

export async function calibrateStepRanges(
  pipeline: Pipeline,
  linears: Linear[],
  options: CalibrationOptions = {},
): Promise<FscCalibration> {
  const set = calibrationSet(pipeline, options, 8);
  const taps = [...new Set(linears.map((l) => l.input))];
  // An uncached run whose single unit also outputs every quantized linear's input.
  const tapping: CachePolicy = {
    name: "fsc-calibration",
    spec: "fsc-calibration",
    units: (info: ModelInfo) => [{ start: 0, end: info.atoms.length, cache: "delta", taps }],
    createState: () => ({ decide: () => "compute", update: () => {}, approximate: () => undefined, bytes: () => 0 }),
  };
  const ranges = new Map<string, [number, number][]>(taps.map((t) => [t, []]));
  await record(
    pipeline,
    set,
    (event) => {
      for (const name of taps) {
        const data = floatData(event.store.get(name) as never);
        let lo = Number.POSITIVE_INFINITY;
        let hi = Number.NEGATIVE_INFINITY;
        for (let i = 0; i < data.length; i++) {
          if (data[i] < lo) lo = data[i];
          if (data[i] > hi) hi = data[i];
        }
        const row = ranges.get(name) as [number, number][];
        const old = row[event.step];
        row[event.step] = old ? [Math.min(old[0], lo), Math.max(old[1], hi)] : [lo, hi];
      }
    },
    options,
    tapping,
  );
  const sampler = createSampler(pipeline.manifest, { steps: set.steps, shift: set.shift });
  return {
    scales: {
      grid: fedTimes(pipeline.manifest, sampler.times.subarray(0, sampler.steps)),
      ranges: Object.fromEntries(linears.map((l) => [l.name, ranges.get(l.input) as [number, number][]])),
    },
    grid: sampler.describe,
    seeds: set.seeds,
    conditions: set.classes ?? [],
    cfg: set.cfg,
  };
}

/** The timestep input's values for these model times, exactly as the engine feeds them. */
function fedTimes(manifest: ModelManifest, times: Float64Array): number[] {
  return Array.from(timestepTensor(manifest, times).data as ArrayLike<number | bigint>, Number);
}
