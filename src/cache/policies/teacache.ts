/**
 * TeaCache (Liu et al., CVPR 2025, arXiv 2411.19108): every step, the relative L1 change of block 0's
 * timestep-modulated input is rescaled by a polynomial fitted on calibration runs and accumulated; while the
 * accumulator stays under δ the whole block stack is skipped and its last residual h_L − h_0 reused.
 * Spec: shared/specs/baselines.md §2. Fit the polynomial with `ditto profile --method teacache`.
 */
import type { Tensor } from "onnxruntime-common";
import { type ArtifactHeader, checkArtifact, readArtifact } from "../../profiling/artifact.ts";
import { byteSize } from "../../runtime/tensor-ops.ts";
import { formatSpec, type OptionSchema, resolveOptions } from "../options.ts";
import { type CachePolicy, type Decision, type StepView, stackUnit } from "../policy.ts";
import { polyval, relativeL1 } from "../signals.ts";
import { StackReuseState } from "../stack-reuse.ts";

export interface TeaCacheOptions {
  /** δ: skip while the accumulated rescaled change stays below it (default 0.3). 0 never skips. */
  threshold?: number;
  /** Calibration artifact from `ditto profile --method teacache` (the fitted polynomial). */
  calibration?: string;
  /** Polynomial coefficients, highest degree first, instead of an artifact. Without either, poly(x) = x. */
  coefficients?: number[];
  /** Steps s < retSteps always compute (default 1: step 0). */
  retSteps?: number;
  /** Always compute the last step (default true). */
  forceLast?: boolean;
}

export interface TeaCacheArtifact extends ArtifactHeader {
  signal: "block0-modulated";
  coefficients: number[];
  fit: { r2: number; pairs: number; xRange: [number, number] };
  /** The calibration pairs [x, y] (for plots). */
  samples: [number, number][];
}

export const TEACACHE_OPTIONS: readonly OptionSchema[] = [
  {
    name: "threshold",
    type: "number",
    default: 0.3,
    min: 0,
    help: "δ: accumulated change below which a step is skipped",
  },
  { name: "calibration", type: "string", help: "artifact from ditto profile --method teacache" },
  { name: "coefficients", type: "number-list", help: "polynomial, highest degree first (a;b;c)" },
  { name: "retSteps", type: "int", default: 1, min: 1, help: "initial steps that always compute" },
  { name: "forceLast", type: "bool", default: true, help: "always compute the last step" },
];

export function teacache(options: TeaCacheOptions = {}): CachePolicy {
  const o = resolveOptions("teacache", TEACACHE_OPTIONS, { ...options });
  const artifact = o.calibration ? readArtifact<TeaCacheArtifact>(o.calibration as string, "teacache") : undefined;
  const coefficients = (o.coefficients as number[] | undefined) ?? artifact?.coefficients ?? [1, 0];
  return {
    name: "teacache",
    spec: formatSpec("teacache", TEACACHE_OPTIONS, o),
    units: stackUnit,
    createState: (ctx) => {
      if (artifact) checkArtifact(artifact, ctx, "teacache", o.calibration as string);
      return new TeaCacheState(
        o.threshold as number,
        rescaler(coefficients, artifact?.fit.xRange),
        o.retSteps as number,
        o.forceLast as boolean,
      );
    },
    describe: () => ({
      method: "teacache",
      threshold: o.threshold,
      polynomial: artifact ? "calibrated" : o.coefficients ? "given" : "identity (uncalibrated: poly(x) = x)",
      coefficients,
    }),
  };
}

/**
 * poly(x), held inside the calibrated range: a degree-4 fit can swing far negative just outside the x it saw,
 * which would turn a large change into "skip". Beyond the range it grows linearly from the last fitted value.
 */
export function rescaler(coefficients: number[], xRange?: [number, number]): (x: number) => number {
  return (x) => {
    if (!xRange) return Math.max(0, polyval(coefficients, x));
    const [lo, hi] = xRange;
    if (x > hi) return Math.max(0, polyval(coefficients, hi)) * (x / hi);
    return Math.max(0, polyval(coefficients, Math.max(lo, x)));
  };
}

export class TeaCacheState extends StackReuseState {
  private previous?: Tensor;
  private accumulated = 0;
  /** The rescaled change added at each step, for traces and tests. */
  readonly history: number[] = [];

  constructor(
    private readonly threshold: number,
    private readonly rescale: (x: number) => number,
    private readonly retSteps: number,
    private readonly forceLast: boolean,
  ) {
    super();
  }

  async beginStep(view: StepView): Promise<void> {
    const signal = await view.tap("block0-modulated");
    const rel = this.previous ? relativeL1(signal, this.previous) : Number.POSITIVE_INFINITY;
    this.previous = signal;
    this.decision = this.decideFromChange(view.step, view.steps, rel);
  }

  /** The decision rule on its own (spec step 3–4), so it can be tested on hand-made sequences. */
  decideFromChange(step: number, steps: number, rel: number): Decision {
    const forced = step < this.retSteps || (this.forceLast && step === steps - 1) || !this.residual;
    if (forced) {
      this.accumulated = 0;
      this.history.push(0);
      return "compute";
    }
    // A rescaled change cannot be negative; the clamp also keeps δ = 0 from ever skipping.
    const change = this.rescale(rel);
    this.history.push(change);
    this.accumulated += change;
    if (this.accumulated < this.threshold) return "reuse";
    this.accumulated = 0;
    return "compute";
  }

  override bytes(): number {
    return super.bytes() + (this.previous ? byteSize(this.previous) : 0);
  }
}
