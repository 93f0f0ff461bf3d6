/**
 * MagCache (Ma et al., NeurIPS 2025, arXiv 2506.09045): the ratio of the stack residual's magnitude between
 * consecutive steps, γ_s = mean_token ‖r_s‖/‖r_{s−1}‖, follows one curve per model that a single calibration run
 * measures. While the accumulated deviation Σ|1 − Π γ| of the skipped steps stays under δ (and at most K steps in
 * a row), the whole stack is skipped and its last residual h_L − h_0 reused. Spec: shared/specs/baselines.md §4,
 * docs/magcache.md. Calibrate with `ditto profile --method magcache` (or let `ditto tune` do it).
 */
import type { Tensor } from "onnxruntime-common";
import { InputError } from "../../errors.ts";
import { type ArtifactHeader, checkArtifact, readArtifact } from "../../profiling/artifact.ts";
import { formatSpec, type OptionSchema, resolveOptions } from "../options.ts";
import { type CachePolicy, type Decision, type StepView, stackUnit } from "../policy.ts";
import { StackReuseState } from "../stack-reuse.ts";

export interface MagCacheOptions {
  /** δ: reuse while the accumulated |1 − ratio| stays below it (default 0.12). 0 never reuses. */
  threshold?: number;
  /** K: at most this many consecutive reused steps (default 3). */
  maxSkip?: number;
  /** ρ_ret: the first round(ρ·S) steps always compute (default 0.2). */
  retention?: number;
  /** Calibration artifact from `ditto profile --method magcache`. */
  calibration?: string;
  /** The magnitude-ratio curve γ_0 … γ_{S−1} given inline (resampled by nearest index when its length is not S). */
  ratios?: number[];
}

export interface MagCacheArtifact extends ArtifactHeader {
  /** γ_s for every step of the calibrated schedule (γ_0 = 1). */
  ratios: number[];
}

export const MAGCACHE_OPTIONS: readonly OptionSchema[] = [
  { name: "threshold", type: "number", default: 0.12, min: 0, help: "δ: accumulated magnitude-ratio error bound" },
  { name: "maxSkip", type: "int", default: 3, min: 0, help: "K: most consecutive reused steps" },
  { name: "retention", type: "number", default: 0.2, min: 0, max: 1, help: "ρ: fraction of initial steps computed" },
  { name: "calibration", type: "string", help: "artifact from ditto profile --method magcache" },
  { name: "ratios", type: "number-list", help: "the γ curve inline (a;b;c), instead of an artifact" },
];

export function magcache(options: MagCacheOptions = {}): CachePolicy {
  const o = resolveOptions("magcache", MAGCACHE_OPTIONS, { ...options });
  const artifact = o.calibration ? readArtifact<MagCacheArtifact>(o.calibration as string, "magcache") : undefined;
  const curve = (o.ratios as number[] | undefined) ?? artifact?.ratios;
  if (!curve || curve.length === 0) {
    throw new InputError(
      "OPTION_INVALID",
      "magcache needs its magnitude-ratio curve: make one with `ditto profile --method magcache --out mag.json` and " +
        "pass calibration=mag.json (or let `ditto tune` calibrate it)",
      { policy: "magcache", option: "calibration" },
    );
  }
  if (!curve.every((g) => Number.isFinite(g) && g > 0)) {
    throw new InputError("OPTION_INVALID", "magcache ratios must be positive finite numbers", {
      policy: "magcache",
      option: "ratios",
    });
  }
  return {
    name: "magcache",
    spec: formatSpec("magcache", MAGCACHE_OPTIONS, o),
    units: stackUnit,
    createState: (ctx) => {
      if (artifact) checkArtifact(artifact, ctx, "magcache", o.calibration as string);
      return new MagCacheState(resampleRatios(curve, ctx.steps), {
        threshold: o.threshold as number,
        maxSkip: o.maxSkip as number,
        retainSteps: Math.round((o.retention as number) * ctx.steps),
      });
    },
    describe: (ctx) => ({
      method: "magcache",
      threshold: o.threshold,
      K: o.maxSkip,
      retainSteps: Math.round((o.retention as number) * ctx.steps),
      curve: artifact ? "calibrated" : "given",
    }),
  };
}

/** Nearest-index mapping of a γ curve measured at another step count: γ′_i = γ[round(i·(len − 1)/(S − 1))]. */
export function resampleRatios(ratios: readonly number[], steps: number): number[] {
  if (ratios.length === steps) return [...ratios];
  if (steps <= 1) return [ratios[0]];
  return Array.from({ length: steps }, (_, i) => ratios[Math.round((i * (ratios.length - 1)) / (steps - 1))]);
}

/** Mean over tokens of ‖a[token]‖₂ / ‖b[token]‖₂, norms along the last (channel) axis of [B, T, D] tensors. */
export function magnitudeRatio(a: Tensor, b: Tensor): number {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  const channels = a.dims[a.dims.length - 1];
  let total = 0;
  let count = 0;
  for (let start = 0; start < x.length; start += channels) {
    let na = 0;
    let nb = 0;
    for (let c = start; c < start + channels; c++) {
      na += x[c] * x[c];
      nb += y[c] * y[c];
    }
    if (nb > 0) {
      total += Math.sqrt(na / nb);
      count++;
    }
  }
  return count ? total / count : 1;
}

export class MagCacheState extends StackReuseState {
  private ratio = 1;
  private skipped = 0;
  private error = 0;
  /** One letter per step, C or R, for traces and tests. */
  readonly decisions: string[] = [];

  constructor(
    private readonly gammas: readonly number[],
    private readonly opts: { threshold: number; maxSkip: number; retainSteps: number },
  ) {
    super();
  }

  beginStep(view: StepView): void {
    this.decision = this.decideAt(view.step);
    this.decisions.push(this.decision === "compute" ? "C" : "R");
  }

  /** The online rule (spec §4 "Online algorithm") on its own, so it can be tested on a hand-made γ list. */
  decideAt(step: number): Decision {
    if (step < this.opts.retainSteps || !this.residual) return this.computing();
    this.ratio *= this.gammas[step] ?? 1;
    this.skipped++;
    this.error += Math.abs(1 - this.ratio);
    // Strictly below δ (baselines convention), so δ = 0 never reuses.
    if (this.error < this.opts.threshold && this.skipped <= this.opts.maxSkip) return "reuse";
    return this.computing();
  }

  private computing(): Decision {
    this.ratio = 1;
    this.skipped = 0;
    this.error = 0;
    return "compute";
  }
}
