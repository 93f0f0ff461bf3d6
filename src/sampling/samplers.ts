/**
 * Samplers: flow-matching Euler for velocity models and DDIM (η = 0) for ε-prediction models. A sampler owns the
 * time grid and the update rule; the denoising loop (denoise.ts) is written once and calls it.
 */
import { InputError } from "../errors.ts";
import type { DdpmSchedule, ModelManifest } from "../model/manifest.ts";

export type SamplerKind = "euler" | "ddim";

export interface Sampler {
  readonly kind: SamplerKind;
  readonly steps: number;
  /** Model times t_0 … t_S (t_0 = noise, t_S = data). */
  readonly times: Float64Array;
  /** Parameters that make a calibration artifact specific to this sampler. */
  readonly describe: { kind: SamplerKind; steps: number; shift: number };
  /** x_next from x at time t with model output `out`, moving to time tNext. */
  update(x: Float32Array, out: Float32Array, t: number, tNext: number): Float32Array;
  /** The clean-sample estimate x̂0 at time t. */
  predictX0(x: Float32Array, out: Float32Array, t: number): Float32Array;
}

export interface SamplerOptions {
  steps: number;
  /** SD3/FLUX-style time shift for flow models: σ' = s·σ / (1 + (s − 1)·σ); 1 = none. */
  shift?: number;
  kind?: SamplerKind;
}

export function createSampler(manifest: ModelManifest, options: SamplerOptions): Sampler {
  const steps = options.steps;
  if (!Number.isInteger(steps) || steps < 1 || steps > 10000) {
    throw new InputError("OPTION_INVALID", `--steps must be an integer from 1 to 10000 (got ${steps})`);
  }
  const shift = options.shift ?? manifest.recommended?.shift ?? 1;
  if (!(shift > 0)) throw new InputError("OPTION_INVALID", `shift must be positive (got ${shift})`);
  const objective = manifest.objective;
  const kind = options.kind ?? (objective.kind === "epsilon" ? "ddim" : "euler");
  if (kind === "euler" && objective.kind !== "flow-velocity") {
    throw new InputError(
      "OPTION_INVALID",
      "the Euler flow sampler needs a flow-velocity model; this one predicts ε: use --sampler ddim",
    );
  }
  if (kind === "ddim" && objective.kind !== "epsilon") {
    throw new InputError(
      "OPTION_INVALID",
      "DDIM needs an ε-prediction model; this one predicts velocity: use --sampler euler",
    );
  }
  if (kind === "euler") return eulerSampler(steps, shift, objective.timeAtNoise ?? 1, objective.timeAtData ?? 0);
  return ddimSampler(steps, objective.schedule as DdpmSchedule);
}

/** Grid of noise levels σ from 1 to 0, shifted, mapped onto the model's own time axis. */
export function flowTimes(steps: number, shift: number, timeAtNoise = 1, timeAtData = 0): Float64Array {
  const times = new Float64Array(steps + 1);
  for (let i = 0; i <= steps; i++) {
    const sigma = 1 - i / steps;
    const shifted = (shift * sigma) / (1 + (shift - 1) * sigma);
    times[i] = timeAtData + shifted * (timeAtNoise - timeAtData);
  }
  return times;
}

function eulerSampler(steps: number, shift: number, timeAtNoise: number, timeAtData: number): Sampler {
  return {
    kind: "euler",
    steps,
    times: flowTimes(steps, shift, timeAtNoise, timeAtData),
    describe: { kind: "euler", steps, shift },
    // v = dx/dt in the model's time, so one Euler step is x + (t_next − t)·v in either time direction.
    update(x, v, t, tNext) {
      const out = new Float32Array(x.length);
      const dt = tNext - t;
      for (let i = 0; i < x.length; i++) out[i] = x[i] + dt * v[i];
      return out;
    },
    predictX0(x, v, t) {
      return this.update(x, v, t, timeAtData);
    },
  };
}

/** ᾱ_t for each train step of a DDPM schedule (betas linear in β, or linear in √β: "scaled-linear"). */
export function alphasCumprod(schedule: DdpmSchedule): Float64Array {
  const n = schedule.trainSteps;
  const out = new Float64Array(n);
  let prod = 1;
  for (let i = 0; i < n; i++) {
    const f = n === 1 ? 0 : i / (n - 1);
    const beta =
      schedule.betaSchedule === "linear"
        ? schedule.betaStart + f * (schedule.betaEnd - schedule.betaStart)
        : (Math.sqrt(schedule.betaStart) + f * (Math.sqrt(schedule.betaEnd) - Math.sqrt(schedule.betaStart))) ** 2;
    prod *= 1 - beta;
    out[i] = prod;
  }
  return out;
}

/** DDIM with "leading" spacing; time −1 stands for clean data (ᾱ = 1). Fractional times interpolate ᾱ. */
function ddimSampler(steps: number, schedule: DdpmSchedule): Sampler {
  const abar = alphasCumprod(schedule);
  const n = schedule.trainSteps;
  const times = new Float64Array(steps + 1);
  const stride = Math.floor(n / steps) || 1;
  for (let i = 0; i < steps; i++) times[i] = Math.min(n - 1, (steps - 1 - i) * stride);
  times[steps] = -1;
  const alphaAt = (t: number): number => {
    if (t < 0) return 1;
    const lo = Math.floor(t);
    const hi = Math.min(n - 1, lo + 1);
    const f = t - lo;
    return abar[lo] * (1 - f) + abar[hi] * f;
  };
  const predictX0 = (x: Float32Array, eps: Float32Array, t: number): Float32Array => {
    const a = alphaAt(t);
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = (x[i] - Math.sqrt(1 - a) * eps[i]) / Math.sqrt(a);
    return out;
  };
  return {
    kind: "ddim",
    steps,
    times,
    describe: { kind: "ddim", steps, shift: 1 },
    update(x, eps, t, tNext) {
      const x0 = predictX0(x, eps, t);
      const a = alphaAt(tNext);
      const out = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) out[i] = Math.sqrt(a) * x0[i] + Math.sqrt(1 - a) * eps[i];
      return out;
    },
    predictX0,
  };
}
