/**
 * Samplers: flow-matching Euler for velocity models; DDIM (η = 0) and DDPM ancestral for ε-prediction models. A sampler owns the
 * time grid and the update rule; the denoising loop (denoise.ts) is written once and calls it.
 */
import { InputError } from "../errors.ts";
import type { DdpmSchedule, ModelManifest } from "../model/manifest.ts";

export type SamplerKind = "euler" | "ddim" | "ddpm";

export interface Sampler {
  readonly kind: SamplerKind;
  readonly steps: number;
  /** Model times t_0 … t_S (t_0 = noise, t_S = data). */
  readonly times: Float64Array;
  /** Parameters that make a calibration artifact specific to this sampler. */
  readonly describe: { kind: SamplerKind; steps: number; shift: number };
  /** Whether update() adds fresh noise (DDPM ancestral): the loop then passes the request's step noise. */
  readonly stochastic: boolean;
  /** x_next from x at time t with model output `out`, moving to time tNext (`noise`: stochastic samplers only). */
  update(x: Float32Array, out: Float32Array, t: number, tNext: number, noise?: Float32Array): Float32Array;
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
  const recommended = manifest.recommended?.sampler;
  const kind = options.kind ?? recommended ?? (objective.kind === "epsilon" ? "ddim" : "euler");
  if (kind === "euler" && objective.kind !== "flow-velocity") {
    throw new InputError(
      "OPTION_INVALID",
      "the Euler flow sampler needs a flow-velocity model; this one predicts ε: use --sampler ddim",
    );
  }
  if ((kind === "ddim" || kind === "ddpm") && objective.kind !== "epsilon") {
    throw new InputError(
      "OPTION_INVALID",
      `${kind.toUpperCase()} needs an ε-prediction model; this one predicts velocity: use --sampler euler`,
    );
  }
  if (kind === "euler") return eulerSampler(steps, shift, objective.timeAtNoise ?? 1, objective.timeAtData ?? 0);
  const schedule = objective.schedule as DdpmSchedule;
  if (kind === "ddpm") {
    if (steps > schedule.trainSteps) {
      throw new InputError(
        "OPTION_INVALID",
        `DDPM runs at most the ${schedule.trainSteps} train steps (got --steps ${steps})`,
      );
    }
    return ddpmSampler(steps, schedule);
  }
  return ddimSampler(steps, schedule);
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
    stochastic: false,
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

/**
 * ᾱ_t for each train step of a DDPM schedule: betas linear in β, linear in √β ("scaled-linear"), or the cosine ᾱ
 * of Nichol & Dhariwal (2021, eq. 17) with β capped at 0.999 ("squaredcos-cap-v2").
 */
export function alphasCumprod(schedule: DdpmSchedule): Float64Array {
  const n = schedule.trainSteps;
  const out = new Float64Array(n);
  const start = schedule.betaStart ?? 0;
  const end = schedule.betaEnd ?? 0;
  const cosine = (s: number) => Math.cos(((s + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  let prod = 1;
  for (let i = 0; i < n; i++) {
    const f = n === 1 ? 0 : i / (n - 1);
    let beta: number;
    if (schedule.betaSchedule === "squaredcos-cap-v2") beta = Math.min(1 - cosine((i + 1) / n) / cosine(i / n), 0.999);
    else if (schedule.betaSchedule === "linear") beta = start + f * (end - start);
    else beta = (Math.sqrt(start) + f * (Math.sqrt(end) - Math.sqrt(start))) ** 2;
    prod *= 1 - beta;
    out[i] = prod;
  }
  return out;
}

/** Train-step times with "leading" spacing (t = (S−1−i)·⌊T/S⌋), then −1 for clean data (ᾱ = 1). */
function leadingTimes(steps: number, trainSteps: number): Float64Array {
  const times = new Float64Array(steps + 1);
  const stride = Math.floor(trainSteps / steps) || 1;
  for (let i = 0; i < steps; i++) times[i] = Math.min(trainSteps - 1, (steps - 1 - i) * stride);
  times[steps] = -1;
  return times;
}

/** ᾱ at a (possibly fractional) train-step time; time −1 is clean data. */
function alphaLookup(schedule: DdpmSchedule): (t: number) => number {
  const abar = alphasCumprod(schedule);
  const n = schedule.trainSteps;
  return (t) => {
    if (t < 0) return 1;
    const lo = Math.floor(t);
    const hi = Math.min(n - 1, lo + 1);
    const f = t - lo;
    return abar[lo] * (1 - f) + abar[hi] * f;
  };
}

/** x̂0 = (x − √(1−ᾱ)·ε)/√ᾱ, clipped to [−c, c] when the schedule says so (diffusers' clip_sample). */
function x0Estimator(schedule: DdpmSchedule, alphaAt: (t: number) => number) {
  const clip = schedule.clipSample;
  return (x: Float32Array, eps: Float32Array, t: number): Float32Array => {
    const a = alphaAt(t);
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const v = (x[i] - Math.sqrt(1 - a) * eps[i]) / Math.sqrt(a);
      out[i] = clip === undefined ? v : Math.min(clip, Math.max(-clip, v));
    }
    return out;
  };
}

/** DDIM, η = 0 (Song et al., 2021, eq. 12) with "leading" spacing; ε is the model's, x̂0 possibly clipped. */
function ddimSampler(steps: number, schedule: DdpmSchedule): Sampler {
  const alphaAt = alphaLookup(schedule);
  const predictX0 = x0Estimator(schedule, alphaAt);
  return {
    kind: "ddim",
    steps,
    times: leadingTimes(steps, schedule.trainSteps),
    describe: { kind: "ddim", steps, shift: 1 },
    stochastic: false,
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

/**
 * DDPM ancestral sampling (Ho et al., 2020, eq. 6–7): x_{t'} = posterior mean from x̂0 and x_t, plus σ·z with the
 * "fixed small" variance β̃ = (1−ᾱ_{t'})/(1−ᾱ_t)·(1 − ᾱ_t/ᾱ_{t'}); no noise on the last step. With S < T steps the
 * same formulas run on the leading-spaced grid (as diffusers' DDPMScheduler does).
 */
function ddpmSampler(steps: number, schedule: DdpmSchedule): Sampler {
  const alphaAt = alphaLookup(schedule);
  const predictX0 = x0Estimator(schedule, alphaAt);
  return {
    kind: "ddpm",
    steps,
    times: leadingTimes(steps, schedule.trainSteps),
    describe: { kind: "ddpm", steps, shift: 1 },
    stochastic: true,
    update(x, eps, t, tNext, noise) {
      const x0 = predictX0(x, eps, t);
      const aT = alphaAt(t);
      const aPrev = alphaAt(tNext);
      const beta = 1 - aT / aPrev;
      const c0 = (Math.sqrt(aPrev) * beta) / (1 - aT);
      const ct = (Math.sqrt(1 - beta) * (1 - aPrev)) / (1 - aT);
      const sigma = tNext >= 0 ? Math.sqrt(Math.max(((1 - aPrev) / (1 - aT)) * beta, 1e-20)) : 0;
      if (sigma > 0 && (!noise || noise.length !== x.length)) {
        throw new InputError("OPTION_INVALID", "the DDPM sampler needs fresh noise at every step but one");
      }
      const out = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) {
        out[i] = c0 * x0[i] + ct * x[i] + (sigma > 0 ? sigma * (noise as Float32Array)[i] : 0);
      }
      return out;
    },
    predictX0,
  };
}
