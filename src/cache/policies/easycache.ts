/**
 * EasyCache (Zhou et al., arXiv 2507.02860): no calibration. At run time it measures how strongly the cached
 * quantity reacts to a change of the model input, k = ‖Δ cached‖₁ / ‖Δ x‖₁ between the last two computed steps
 * (the paper's "transformation rate", found stable after the first steps), then predicts each later step's relative
 * change as k·‖x_s − x_{s−1}‖₁ / ‖cached‖₁ and accumulates it; while the sum stays under τ the step reuses the
 * cached quantity. Spec: docs/easycache.md.
 *
 * Ditto's one deviation: the official code caches the whole network's output minus its input (v − x); Ditto's
 * engine always runs the cheap embed and head, so the cached quantity — and the one k is measured on — is the
 * stack residual h_L − h_0, as in Ditto's TeaCache and MagCache.
 */
import type { Tensor } from "onnxruntime-common";
import { formatSpec, type OptionSchema, resolveOptions } from "../options.ts";
import { type CachePolicy, type ComputedUnit, type Decision, type StepView, stackUnit } from "../policy.ts";
import { StackReuseState } from "../stack-reuse.ts";

export interface EasyCacheOptions {
  /** τ: reuse while the accumulated predicted relative change stays below it (default 0.05). 0 never reuses. */
  threshold?: number;
  /** Initial steps that always compute (default −1: round(0.1·S)); at least 2, so k can be measured. */
  warmup?: number;
  /** Always compute the last step (default true, as the official code does). */
  forceLast?: boolean;
}

export const EASYCACHE_OPTIONS: readonly OptionSchema[] = [
  { name: "threshold", type: "number", default: 0.05, min: 0, help: "τ: accumulated predicted change bound" },
  { name: "warmup", type: "int", default: -1, min: -1, help: "initial steps computed (−1 = round(0.1·S), ≥ 2)" },
  { name: "forceLast", type: "bool", default: true, help: "always compute the last step" },
];

export function easycache(options: EasyCacheOptions = {}): CachePolicy {
  const o = resolveOptions("easycache", EASYCACHE_OPTIONS, { ...options });
  const warmupFor = (steps: number) =>
    Math.max(2, (o.warmup as number) < 0 ? Math.round(0.1 * steps) : (o.warmup as number));
  return {
    name: "easycache",
    spec: formatSpec("easycache", EASYCACHE_OPTIONS, o),
    units: stackUnit,
    createState: (ctx) => new EasyCacheState(o.threshold as number, warmupFor(ctx.steps), o.forceLast as boolean),
    describe: (ctx) => ({ method: "easycache", threshold: o.threshold, warmup: warmupFor(ctx.steps) }),
  };
}

/** mean|a − b| over two equal-length arrays. */
function meanAbsDiff(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

function meanAbs(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]);
  return s / a.length;
}

export class EasyCacheState extends StackReuseState {
  private previousInput?: Float32Array;
  /** Input and cached residual at the last computed step. */
  private computedInput?: Float32Array;
  private currentInput?: Float32Array;
  /** k: the transformation rate, undefined until two computed steps were seen. */
  private rate?: number;
  private accumulated = 0;
  /** The predicted change added at each step (0 on forced steps), for traces and tests. */
  readonly history: number[] = [];

  constructor(
    private readonly threshold: number,
    private readonly warmup: number,
    private readonly forceLast: boolean,
  ) {
    super();
  }

  async beginStep(view: StepView): Promise<void> {
    // A copy: the sampler may reuse the input buffer for the next step.
    const x = Float32Array.from((await view.tap("input")).data as Float32Array);
    const change = this.previousInput ? meanAbsDiff(x, this.previousInput) : Number.POSITIVE_INFINITY;
    this.previousInput = x;
    this.currentInput = x;
    this.decision = this.decideFromChange(view.step, view.steps, change);
  }

  /** The rule on its own (given the input change mean|x_s − x_{s−1}|), for tests on hand-made sequences. */
  decideFromChange(step: number, steps: number, inputChange: number): Decision {
    const { residual, rate } = this;
    const forced = step < this.warmup || (this.forceLast && step === steps - 1) || rate === undefined || !residual;
    if (forced) {
      this.history.push(0);
      this.accumulated = 0;
      return "compute";
    }
    const norm = meanAbs(residual.data as Float32Array);
    const predicted = norm > 0 ? (rate * inputChange) / norm : Number.POSITIVE_INFINITY;
    this.history.push(predicted);
    this.accumulated += predicted;
    if (this.accumulated < this.threshold) return "reuse";
    this.accumulated = 0;
    return "compute";
  }

  override update(_unit: number, computed: ComputedUnit): void {
    const value = computed.value();
    this.observe(value, this.currentInput as Float32Array);
  }

  /** Records a computed residual with its input: k = mean|r − r_c| / mean|x − x_c| against the last computed step. */
  observe(residual: Tensor, input: Float32Array): void {
    if (this.residual && this.computedInput) {
      const dx = meanAbsDiff(input, this.computedInput);
      if (dx > 0) this.rate = meanAbsDiff(residual.data as Float32Array, this.residual.data as Float32Array) / dx;
    }
    this.residual = residual;
    this.computedInput = input;
  }

  /** The transformation rate k (for tests and traces). */
  transformationRate(): number | undefined {
    return this.rate;
  }

  override bytes(): number {
    const inputs = [this.previousInput, this.computedInput].reduce((a, x) => a + (x ? x.byteLength : 0), 0);
    return super.bytes() + inputs;
  }
}
