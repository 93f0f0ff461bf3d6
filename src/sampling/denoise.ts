/**
 * The denoising loop, written once: an async generator yielding one result per step, so progress bars, previews
 * and benchmarks all consume the same loop. Classifier-free guidance and the time controller are wrappers around
 * the network evaluation, not branches of it.
 */

import { Tensor } from "onnxruntime-common";
import { InputError } from "../errors.ts";
import type { ModelCall } from "../runtime/model-inputs.ts";
import { concatFloat32 } from "../runtime/tensor-ops.ts";
import type { Sampler } from "./samplers.ts";

/** Which CFG branches one network pass holds. */
export type Pass = "both" | "cond" | "uncond" | "single";
/** `batched`: cond and uncond in one pass of batch 2B, one cache state; `separate`: two passes, a state each. */
export type CfgMode = "batched" | "separate";

export interface StepContext {
  step: number;
  steps: number;
  /** The model time this step is evaluated at (the grid time unless a time controller moved it). */
  time: number;
  grid: Float64Array;
}

export interface NetworkEvaluator {
  evaluate(call: ModelCall, ctx: StepContext, pass: Pass): Promise<Float32Array>;
}

/** Optional sampler-level hooks a cache policy may supply (ERTACache's rectification and timestep adjustment). */
export interface StepHooks {
  transformOutput?(output: Float32Array, ctx: StepContext): Float32Array;
  /**
   * The time of the next step, from the step context and its own earlier calls only (never the model's output or
   * transformOutput), so the times a run visits are known before it starts (plannedTimes; the engine checks).
   */
  nextTime?(ctx: StepContext): number;
}

/**
 * The time of each of `steps` steps the loop will evaluate: the sampler's grid, or where `hooks` moves them (a fresh
 * instance: it is walked through the whole loop here).
 */
export function plannedTimes(grid: Float64Array, steps: number, hooks: StepHooks): Float64Array {
  const times = grid.slice(0, steps);
  if (!hooks.nextTime) return times;
  for (let step = 0; step + 1 < steps; step++) {
    times[step + 1] = hooks.nextTime({ step, steps, time: times[step], grid });
  }
  return times;
}

export interface DenoiseRequest {
  /** Initial noise, [B, C, H, W] (or [B, horizon, dim] for an action-sequence policy). */
  noise: Float32Array;
  dims: readonly number[];
  classes?: Int32Array;
  /** Observation-conditioned policies: [B, dim] row-major. */
  observations?: Float32Array;
  /**
   * Noise an ancestral sampler (DDPM) adds at a step, shaped like the sample: step → values. Given by the caller
   * so that a sample's noise is seeded and independent of the batch it runs in (see noise.ts).
   */
  stepNoise?: (step: number) => Float32Array;
  nullClass?: number;
  cfgScale: number;
  cfgMode?: CfgMode;
  sampler: Sampler;
}

export interface StepResult {
  step: number;
  time: number;
  nextTime: number;
  /** The sample after this step. */
  x: Float32Array;
  /** The (guided) model output used for the update. */
  output: Float32Array;
}

export async function* denoise(
  request: DenoiseRequest,
  evaluator: NetworkEvaluator,
  hooks: StepHooks = {},
): AsyncGenerator<StepResult> {
  const { sampler, dims } = request;
  const batch = dims[0];
  const guided = usesGuidance(request);
  if (guided && request.nullClass === undefined) {
    throw new InputError(
      "OPTION_INVALID",
      "classifier-free guidance needs a null class; set inputs.condition.nullClass in the manifest, or use --cfg 1",
    );
  }
  let x = request.noise;
  let time = sampler.times[0];
  for (let step = 0; step < sampler.steps; step++) {
    const ctx: StepContext = { step, steps: sampler.steps, time, grid: sampler.times };
    let output = guided
      ? await guidedOutput(request, evaluator, x, ctx, batch)
      : await evaluator.evaluate(modelCall(x, dims, time, request.classes, request.observations), ctx, "single");
    if (hooks.transformOutput) output = hooks.transformOutput(output, ctx);
    const nextTime = hooks.nextTime ? hooks.nextTime(ctx) : sampler.times[step + 1];
    x = sampler.update(x, output, time, nextTime, sampler.stochastic ? stepNoiseFor(request, step) : undefined);
    yield { step, time, nextTime, x, output };
    time = nextTime;
  }
}

/** Whether the loop runs classifier-free guidance (a conditional and an unconditional pass per step). */
export function usesGuidance(request: { cfgScale: number; classes?: ArrayLike<number> }): boolean {
  return request.cfgScale !== 1 && request.classes !== undefined;
}

/** v = v_u + w·(v_c − v_u) (Ho & Salimans, 2022). */
async function guidedOutput(
  request: DenoiseRequest,
  evaluator: NetworkEvaluator,
  x: Float32Array,
  ctx: StepContext,
  batch: number,
): Promise<Float32Array> {
  const classes = request.classes as Int32Array;
  const nulls = new Int32Array(batch).fill(request.nullClass as number);
  const w = request.cfgScale;
  const itemDims = request.dims.slice(1);
  let cond: Float32Array;
  let uncond: Float32Array;
  if ((request.cfgMode ?? "batched") === "batched") {
    const doubled = concatFloat32(x, x);
    const both = new Int32Array(batch * 2);
    both.set(classes);
    both.set(nulls, batch);
    const out = await evaluator.evaluate(modelCall(doubled, [batch * 2, ...itemDims], ctx.time, both), ctx, "both");
    cond = out.subarray(0, x.length);
    uncond = out.subarray(x.length);
  } else {
    cond = await evaluator.evaluate(modelCall(x, request.dims, ctx.time, classes), ctx, "cond");
    uncond = await evaluator.evaluate(modelCall(x, request.dims, ctx.time, nulls), ctx, "uncond");
  }
  return combineGuidance(cond, uncond, w);
}

/** v = v_u + w·(v_c − v_u) (Ho & Salimans, 2022). */
export function combineGuidance(cond: Float32Array, uncond: Float32Array, w: number): Float32Array {
  const out = new Float32Array(cond.length);
  for (let i = 0; i < out.length; i++) out[i] = uncond[i] + w * (cond[i] - uncond[i]);
  return out;
}

/** Guidance on one batched output laid out [cond; uncond], as the batched CFG mode evaluates it. */
export function guideBatched(out: Float32Array, w: number): Float32Array {
  const half = out.length / 2;
  return combineGuidance(out.subarray(0, half), out.subarray(half), w);
}

function modelCall(
  x: Float32Array,
  dims: readonly number[],
  time: number,
  classes?: Int32Array,
  observations?: Float32Array,
): ModelCall {
  return {
    sample: new Tensor("float32", x, dims),
    time: new Float64Array(dims[0]).fill(time),
    condition: classes,
    observation: observations,
  };
}

function stepNoiseFor(request: DenoiseRequest, step: number): Float32Array {
  const z = request.stepNoise?.(step);
  if (!z || z.length !== request.noise.length) {
    throw new InputError(
      "OPTION_INVALID",
      `the ${request.sampler.kind} sampler adds noise at every step: give stepNoise(step) with ${request.noise.length} values (got ${z?.length ?? "none"})`,
    );
  }
  return z;
}
