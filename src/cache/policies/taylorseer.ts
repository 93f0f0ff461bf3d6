/**
 * TaylorSeer (Liu et al., ICCV 2025, arXiv 2503.06923): on full steps every branch runs and its pre-gate output
 * updates finite-difference estimates of its first O derivatives in the step number; on the steps between, each
 * branch is forecast by a Taylor polynomial and added with the current gate. With O = 0 this is FORA's static
 * interval reuse (Selvaraju et al., arXiv 2407.01425), which shares this code path.
 * Spec: shared/specs/taylorseer.md ("code form": actual spacing d, expansion in the step index).
 */
import type { Tensor } from "onnxruntime-common";
import { float32, floatData } from "../../runtime/tensor-ops.ts";
import { formatSpec, type OptionSchema, resolveOptions } from "../options.ts";
import { atomUnits, type CachePolicy, type PolicyState, type RunContext, type StepView } from "../policy.ts";

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
    units: atomUnits,
    createState: () => new TaylorState(opts),
    describe: (ctx: RunContext) => ({
      method: name,
      N: opts.interval,
      O: opts.order,
      W: opts.warmup,
      fullSteps: fullSteps(ctx.steps, opts.interval, opts.warmup),
    }),
  };
}

/** Finite-difference factors D_0 … D_n per unit, refreshed at full steps. */
export class TaylorState implements PolicyState {
  private readonly factors = new Map<number, Float32Array[]>();
  private readonly lastFull = new Map<number, number>();
  private dims: readonly number[] = [];
  private readonly opts: Required<TaylorSeerOptions>;

  constructor(opts: Required<TaylorSeerOptions>) {
    this.opts = opts;
  }

  decide(_unit: number, view: StepView) {
    if (isFullStep(view.step, this.opts.interval, this.opts.warmup)) return "compute" as const;
    return this.opts.order === 0 ? ("reuse" as const) : ("forecast" as const);
  }

  update(unit: number, computed: { value(): Tensor }, view: StepView): void {
    const value = computed.value();
    this.dims = value.dims;
    const f = floatData(value);
    const x = this.position(view);
    const old = this.factors.get(unit);
    const prev = this.lastFull.get(unit);
    if (view.step < this.opts.warmup - 1 || !old || prev === undefined) {
      this.factors.set(unit, [f]); // warm-up guard: early steps keep only the value
    } else {
      // D'_0 = F; D'_{i+1} = (D'_i − D_i) / d, with d the actual spacing (spec, "code form").
      const d = x - prev;
      const next = [f];
      for (let i = 0; i < this.opts.order && i < old.length; i++) {
        const diff = new Float32Array(f.length);
        const a = next[i];
        const b = old[i];
        for (let j = 0; j < f.length; j++) diff[j] = Math.fround(a[j] - b[j]) / d;
        next.push(diff);
      }
      this.factors.set(unit, next);
    }
    this.lastFull.set(unit, x);
  }

  approximate(unit: number, _decision: string, view: StepView): Tensor | undefined {
    const factors = this.factors.get(unit);
    const last = this.lastFull.get(unit);
    if (!factors || last === undefined) return undefined;
    if (factors.length === 1) return float32(factors[0], this.dims);
    // F̂ = Σ_i D_i · k^i / i!, k = offset from the last full step.
    const k = this.position(view) - last;
    const out = new Float32Array(factors[0]);
    let coef = 1;
    for (let i = 1; i < factors.length; i++) {
      coef *= k / i;
      const d = factors[i];
      for (let j = 0; j < out.length; j++) out[j] += coef * d[j];
    }
    return float32(out, this.dims);
  }

  bytes(): number {
    let total = 0;
    for (const list of this.factors.values()) for (const f of list) total += f.byteLength;
    return total;
  }

  private position(view: StepView): number {
    return this.opts.variable === "time" ? view.time : view.step;
  }
}
