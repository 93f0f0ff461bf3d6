/**
 * TaylorSeer (Liu et al., ICCV 2025, arXiv 2503.06923): on full steps every branch runs and its pre-gate output
 * updates finite-difference estimates of its first O derivatives in the step number; on the steps between, each
 * branch is forecast by a Taylor polynomial and added with the current gate. With O = 0 this is FORA's static
 * interval reuse (Selvaraju et al., arXiv 2407.01425), which shares this code path.
 * Spec: shared/specs/taylorseer.md ("code form": actual spacing d, expansion in the step index).
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
}

export const TAYLORSEER_OPTIONS: readonly OptionSchema[] = [
  { name: "interval", type: "int", default: 4, min: 1, help: "N: one full step every N steps after warm-up" },
  { name: "order", type: "int", default: 1, min: 0, max: 4, help: "O: Taylor order (0 = reuse, FORA)" },
  { name: "warmup", type: "int", default: 2, min: 0, help: "W: initial steps that always compute" },
  { name: "variable", type: "string", default: "step", choices: ["step", "time"], help: "expansion variable" },
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
  });
}

function taylorPolicy(name: string, spec: string, opts: Required<TaylorSeerOptions>): CachePolicy {
  return {
    name,
    spec,
    units: synchronousUnits,
    createState: (ctx: RunContext) => new TaylorState(opts, ctx.units.length),
    describe: (ctx: RunContext) => ({
      method: name,
      N: opts.interval,
      O: opts.order,
      W: opts.warmup,
      fullSteps: fullSteps(ctx.steps, opts.interval, opts.warmup),
    }),
  };
}

/**
 * Per unit, the last O + 1 full-step values V_0 (newest) … V_O and the finite-difference factors as coefficient
 * rows over them: D_i = Σ_j A[i][j]·V_j. The recursion D'_0 = F, D'_{i+1} = (D'_i − D_i)/d (spec, "code form",
 * with d the actual spacing) then runs on the small rows instead of on tensors, so a full step does no tensor
 * arithmetic at all, and a forecast Σ_i D_i·k^i/i! becomes one weighted sum of stored values that the engine
 * evaluates in ONNX Runtime together with every other unit.
 */
export class TaylorState implements PolicyState {
  private readonly history = new Map<number, { values: Tensor[]; factors: number[][]; at: number }>();
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
    return this.opts.order === 0 ? "reuse" : "forecast";
  }

  update(unit: number, computed: ComputedUnit, view: StepView): void {
    const value = computed.value();
    const x = this.position(view);
    const old = this.history.get(unit);
    if (view.step < this.opts.warmup - 1 || !old) {
      this.history.set(unit, { values: [value], factors: [[1]], at: x }); // warm-up guard: keep only the value
      return;
    }
    const d = x - old.at;
    const shifted = old.factors.map((row) => [0, ...row]); // old V_j is now V_{j+1}
    const factors = [[1]];
    for (let i = 0; i < this.opts.order && i < shifted.length; i++) {
      const a = factors[i];
      const b = shifted[i];
      factors.push(Array.from({ length: Math.max(a.length, b.length) }, (_, j) => ((a[j] ?? 0) - (b[j] ?? 0)) / d));
    }
    const kept = Math.max(...factors.map((row) => row.length));
    this.history.set(unit, { values: [value, ...old.values].slice(0, kept), factors, at: x });
  }

  /** Number of factors D_0 … D_n held for a unit (for tests and traces). */
  factorCount(unit: number): number {
    return this.history.get(unit)?.factors.length ?? 0;
  }

  /** F̂ = Σ_i D_i · k^i / i!, k = offset from the last full step, as a weighted sum of the stored values. */
  approximate(unit: number, _decision: Decision, view: StepView): Approximation | undefined {
    const h = this.history.get(unit);
    if (!h) return undefined;
    const k = this.position(view) - h.at;
    const weights = new Array(h.values.length).fill(0);
    let coef = 1;
    h.factors.forEach((row, i) => {
      if (i > 0) coef *= k / i;
      for (let j = 0; j < row.length; j++) weights[j] += coef * row[j];
    });
    return { terms: h.values.map((tensor, j) => ({ tensor, coef: weights[j] })) };
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
