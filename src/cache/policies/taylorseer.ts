/**
 * TaylorSeer (Liu et al., ICCV 2025, arXiv 2503.06923): on full steps every branch runs and its pre-gate output
 * updates finite-difference estimates of its first O derivatives in the step number; on the steps between, each
 * branch is forecast by a Taylor polynomial and added with the current gate. With O = 0 this is FORA's static
 * interval reuse (Selvaraju et al., arXiv 2407.01425), which shares this code path.
 * Spec: shared/specs/taylorseer.md ("code form": actual spacing d, expansion in the step index).
 *
 * The same forecaster offers two refinements (docs/forecasters.md): `basis=hermite` weights the factors with
 * scaled Hermite polynomials σ^i·H_i(σk)/i! instead of k^i/i! (HiCache, arXiv 2508.16984), and `corrector=foca`
 * adds a share of the forecaster's own error at the newest full step, extrapolated to the forecast offset
 * (Ditto's reading of FoCa's "forecast, then calibrate", arXiv 2508.16211). `scope=stack` forecasts the stack
 * residual h_L − h_0 instead of every branch (the "Lite" variant: one tensor, step-level speed).
 */
import type { Tensor } from "onnxruntime-common";
import { byteSize } from "../../runtime/tensor-ops.ts";
import { formatSpec, type OptionSchema, resolveOptions } from "../options.ts";
import {
  type Approximation,
  type CachePolicy,
  type ComputedUnit,
  type Decision,
  type PolicyState,
  type RunContext,
  type StepView,
  stackUnit,
  synchronousUnits,
} from "../policy.ts";

export interface TaylorSeerOptions {
  /** N: steps between full steps (default 4). Larger is faster and less faithful. */
  interval?: number;
  /** O: Taylor order (default 1). 0 reuses the last value (FORA). */
  order?: number;
  /** W: warm-up steps that always compute (default 2; 0 is treated as 1, since step 0 must compute). */
  warmup?: number;
  /** Expansion variable: the step index (the paper's results) or the model time (experimental). */
  variable?: "step" | "time";
  /** Forecast basis: Taylor monomials k^i (default) or HiCache's scaled Hermite polynomials σ^i·H_i(σk). */
  basis?: "taylor" | "hermite";
  /** σ of the Hermite basis (default 1/√2, where H̃_1(k) = k, so order 1 equals Taylor). */
  sigma?: number;
  /** Corrector: none (default) or foca (add gain × the forecaster's error at the newest full step, extrapolated). */
  corrector?: "none" | "foca";
  /** λ: share of the extrapolated error added by the corrector (default 1: exact on one degree more). */
  gain?: number;
  /** What is forecast: every branch (default, the paper) or the stack residual h_L − h_0 (Lite, step level). */
  scope?: "branches" | "stack";
}

export const TAYLORSEER_OPTIONS: readonly OptionSchema[] = [
  { name: "interval", type: "int", default: 4, min: 1, help: "N: one full step every N steps after warm-up" },
  { name: "order", type: "int", default: 1, min: 0, max: 4, help: "O: Taylor order (0 = reuse, FORA)" },
  { name: "warmup", type: "int", default: 2, min: 0, help: "W: initial steps that always compute" },
  { name: "variable", type: "string", default: "step", choices: ["step", "time"], help: "expansion variable" },
  // The forecaster refinements have no spelled-out default, so plain TaylorSeer keeps its canonical spec string.
  { name: "basis", type: "string", choices: ["taylor", "hermite"], help: "forecast basis (default taylor)" },
  { name: "sigma", type: "number", min: 0.01, max: 2, help: "σ of the Hermite basis (default 1/√2)" },
  { name: "corrector", type: "string", choices: ["none", "foca"], help: "error corrector (default none)" },
  { name: "gain", type: "number", min: 0, max: 2, help: "λ: share of the corrector's error term (default 1)" },
  {
    name: "scope",
    type: "string",
    choices: ["branches", "stack"],
    help: "forecast every branch or the stack residual (default branches)",
  },
];

export const FORA_OPTIONS: readonly OptionSchema[] = [
  { name: "interval", type: "int", default: 3, min: 1, help: "N: one full step every N steps" },
  { name: "warmup", type: "int", default: 1, min: 0, help: "W: initial steps that always compute" },
];

/** Step s is full iff s < W or (s − (W − 1)) mod N = 0, with W ≥ 1. */
export function isFullStep(step: number, interval: number, warmup: number): boolean {
  const w = Math.max(1, warmup);
  return step < w || (step - (w - 1)) % interval === 0;
}

export function fullSteps(steps: number, interval: number, warmup: number): number[] {
  return Array.from({ length: steps }, (_, s) => s).filter((s) => isFullStep(s, interval, warmup));
}

export function taylorseer(options: TaylorSeerOptions = {}): CachePolicy {
  const o = resolveOptions("taylorseer", TAYLORSEER_OPTIONS, { ...options });
  return taylorPolicy("taylorseer", formatSpec("taylorseer", TAYLORSEER_OPTIONS, o), {
    interval: o.interval as number,
    order: o.order as number,
    warmup: o.warmup as number,
    variable: o.variable as "step" | "time",
    basis: (o.basis as "taylor" | "hermite" | undefined) ?? PLAIN_TAYLOR.basis,
    sigma: (o.sigma as number | undefined) ?? PLAIN_TAYLOR.sigma,
    corrector: (o.corrector as "none" | "foca" | undefined) ?? PLAIN_TAYLOR.corrector,
    gain: (o.gain as number | undefined) ?? PLAIN_TAYLOR.gain,
    scope: (o.scope as "branches" | "stack" | undefined) ?? PLAIN_TAYLOR.scope,
  });
}

/** FORA: static-interval reuse of every branch's pre-gate output, i.e. TaylorSeer with O = 0. */
export function fora(options: { interval?: number; warmup?: number } = {}): CachePolicy {
  const o = resolveOptions("fora", FORA_OPTIONS, { ...options });
  return taylorPolicy("fora", formatSpec("fora", FORA_OPTIONS, o), {
    interval: o.interval as number,
    order: 0,
    warmup: o.warmup as number,
    variable: "step",
    ...PLAIN_TAYLOR,
  });
}

/** The plain TaylorSeer forecaster: Taylor basis, no corrector, every branch. */
export const PLAIN_TAYLOR = {
  basis: "taylor",
  sigma: Math.SQRT1_2,
  corrector: "none",
  gain: 1,
  scope: "branches",
} as const;

function taylorPolicy(name: string, spec: string, opts: Required<TaylorSeerOptions>): CachePolicy {
  return {
    name,
    spec,
    units: opts.scope === "stack" ? stackUnit : synchronousUnits,
    createState: (ctx: RunContext) => new TaylorState(opts, ctx.units.length),
    describe: (ctx: RunContext) => ({
      method: name,
      N: opts.interval,
      O: opts.order,
      W: opts.warmup,
      basis: opts.basis,
      corrector: opts.corrector,
      scope: opts.scope,
      fullSteps: fullSteps(ctx.steps, opts.interval, opts.warmup),
    }),
  };
}

/** The weight of factor i at offset k: k^i/i! (Taylor) or σ^i·H_i(σk)/i! with physicists' H_i (HiCache eq. 6). */
export function basisWeights(basis: "taylor" | "hermite", sigma: number, count: number, k: number): number[] {
  const weights: number[] = [];
  let factorial = 1;
  // H_0 = 1, H_1(x) = 2x, H_{n+1}(x) = 2x·H_n(x) − 2n·H_{n−1}(x)
  let hPrev = 1;
  let h = 2 * sigma * k;
  for (let i = 0; i < count; i++) {
    if (i > 0) factorial *= i;
    if (basis === "taylor") weights.push(k ** i / factorial);
    else if (i === 0) weights.push(1);
    else {
      if (i > 1) [hPrev, h] = [h, 2 * sigma * k * h - 2 * (i - 1) * hPrev];
      weights.push((sigma ** i * h) / factorial);
    }
  }
  return weights;
}

interface History {
  /** Stored full-step values V_0 (newest) … and their positions (step or time). */
  values: Tensor[];
  positions: number[];
  /** Factor rows: D_i = Σ_j factors[i][j]·V_j. */
  factors: number[][];
  /** The forecaster's error at the newest full step as a row over the values (corrector), when defined. */
  error?: { row: number[]; nodes: number[]; at: number };
}

/**
 * Per unit, the last full-step values V_0 (newest) … and the finite-difference factors as coefficient rows over
 * them: D_i = Σ_j A[i][j]·V_j. The recursion D'_0 = F, D'_{i+1} = (D'_i − D_i)/d (spec, "code form", with d the
 * actual spacing) then runs on the small rows instead of on tensors, so a full step does no tensor arithmetic at
 * all, and a forecast Σ_i D_i·w_i(k) becomes one weighted sum of stored values that the engine evaluates in ONNX
 * Runtime together with every other unit. The basis and the corrector only change the weights: one code path.
 */
export class TaylorState implements PolicyState {
  private readonly history = new Map<number, History>();
  private readonly opts: Required<TaylorSeerOptions>;
  private readonly unitCount: number;

  constructor(opts: Required<TaylorSeerOptions>, unitCount: number) {
    this.opts = opts;
    this.unitCount = unitCount;
  }

  /** Every unit is full or forecast on the same steps (pitfall 6: partial forecasting hurts). */
  plan(view: StepView): Decision[] {
    return new Array(this.unitCount).fill(this.decide(0, view));
  }

  decide(_unit: number, view: StepView): Decision {
    if (isFullStep(view.step, this.opts.interval, this.opts.warmup)) return "compute";
    return this.opts.order === 0 && this.opts.corrector === "none" ? "reuse" : "forecast";
  }

  /** Full-step values are read only by the forecasts of later skipped steps: none follow, none to keep. */
  keeps(_unit: number, view: StepView): boolean {
    for (let s = view.step + 1; s < view.steps; s++)
      if (!isFullStep(s, this.opts.interval, this.opts.warmup)) return true;
    return false;
  }

  /**
   * A value stays in the history until as many newer full steps as a forecast combines (order + 1 values; one more
   * with the corrector, whose error row spans one more): the skipped steps of that many intervals read it.
   */
  readsAt(_unit: number, view: StepView): number[] {
    const intervals = this.opts.order + 1 + (this.opts.corrector === "foca" ? 1 : 0);
    const steps: number[] = [];
    let fullSteps = 0;
    for (let s = view.step + 1; s < view.steps && fullSteps < intervals; s++) {
      if (isFullStep(s, this.opts.interval, this.opts.warmup)) fullSteps++;
      else steps.push(s);
    }
    return steps;
  }

  update(unit: number, computed: ComputedUnit, view: StepView): void {
    this.record(unit, computed.value(), this.position(view), view.step);
  }

  /** Adds a full-step value at position x (the step index, or the time); `step` drives the warm-up guard. */
  record(unit: number, value: Tensor, x: number, step: number): void {
    const old = this.history.get(unit);
    if (step < this.opts.warmup - 1 || !old) {
      // warm-up guard: keep only the value
      this.history.set(unit, { values: [value], positions: [x], factors: [[1]] });
      return;
    }
    const d = x - old.positions[0];
    const shifted = old.factors.map((row) => [0, ...row]); // old V_j is now V_{j+1}
    const factors = [[1]];
    for (let i = 0; i < this.opts.order && i < shifted.length; i++) {
      const a = factors[i];
      const b = shifted[i];
      factors.push(Array.from({ length: Math.max(a.length, b.length) }, (_, j) => ((a[j] ?? 0) - (b[j] ?? 0)) / d));
    }
    const error = this.opts.corrector === "foca" ? this.forecastError(old, x, factors.length) : undefined;
    const kept = Math.max(...factors.map((row) => row.length), error?.row.length ?? 0);
    this.history.set(unit, {
      values: [value, ...old.values].slice(0, kept),
      positions: [x, ...old.positions].slice(0, kept),
      factors,
      error,
    });
  }

  /**
   * FoCa-style calibration term: e = F(x) − F̂_old(x), what the previous forecaster would have predicted for the
   * step just computed, as a row over the new values [F, old V_0, …]. Only when the old forecaster had as many
   * factors as the new one, so both interpolate the same number of nodes.
   */
  private forecastError(old: History, x: number, factorCount: number): History["error"] {
    if (old.factors.length !== factorCount) return undefined;
    const weights = this.weightsOver(old, x - old.positions[0], false);
    const nodes = old.positions.slice(0, factorCount);
    const row = [1, ...weights.map((w) => -w)];
    // Values beyond the old factors' reach weigh 0: dropping them keeps the history from growing by one per step.
    while (row.length > 1 && row[row.length - 1] === 0) row.pop();
    return { row, nodes, at: x };
  }

  /** Number of factors D_0 … D_n held for a unit (for tests and traces). */
  factorCount(unit: number): number {
    return this.history.get(unit)?.factors.length ?? 0;
  }

  /** F̂ = Σ_i D_i·w_i(k) (+ λ·ρ(k)·e with the corrector), k = offset from the last full step. */
  approximate(unit: number, _decision: Decision, view: StepView): Approximation | undefined {
    const h = this.history.get(unit);
    if (!h) return undefined;
    const weights = this.weightsOver(h, this.position(view) - h.positions[0], true);
    return { terms: h.values.map((tensor, j) => ({ tensor, coef: weights[j] })) };
  }

  /** The forecast at offset k as weights over the stored values. */
  weightsOver(h: History, k: number, corrected: boolean): number[] {
    const out = new Array(h.values.length).fill(0);
    const w = basisWeights(this.opts.basis, this.opts.sigma, h.factors.length, k);
    h.factors.forEach((row, i) => {
      for (let j = 0; j < row.length; j++) out[j] += w[i] * row[j];
    });
    const error = h.error;
    if (corrected && error) {
      // The error of an n-node interpolating forecast of a degree-n sequence is c·Π(x − node): scale e by the
      // ratio of that product at the forecast point to the product when e was measured.
      const x = h.positions[0] + k;
      const nodesNow = h.positions.slice(0, error.nodes.length);
      const ratio = product(nodesNow.map((p) => x - p)) / product(error.nodes.map((p) => error.at - p));
      const scale = this.opts.gain * ratio;
      error.row.forEach((c, j) => {
        out[j] += scale * c;
      });
    }
    return out;
  }

  bytes(): number {
    let total = 0;
    for (const h of this.history.values()) for (const v of h.values) total += byteSize(v);
    return total;
  }

  private position(view: StepView): number {
    return this.opts.variable === "time" ? view.time : view.step;
  }
}

function product(values: number[]): number {
  return values.reduce((a, b) => a * b, 1);
}
