/**
 * ERTACache ("Error Rectification and Timesteps Adjustment", arXiv 2508.21091; reconstructed in
 * shared/specs/ertacache.md): an offline-chosen set of reuse steps on which the whole block stack is skipped and
 * its residual h_L − h_0 from the source step reused; on those steps the guided velocity is rectified by a
 * per-channel affine error model (v̂ = ṽ − (a ⊙ ṽ + b)) and the Euler step shrunk by φ, with the time saved spread
 * over the remaining steps so the trajectory still ends at t = 0. Each component can be switched off for ablation.
 * Calibrate with `ditto profile --method ertacache`.
 */

import type { Tensor } from "onnxruntime-common";
import { InputError } from "../../errors.ts";
import type { ArtifactHeader } from "../../profiling/artifact.ts";
import { checkArtifact, readArtifact } from "../../profiling/artifact.ts";
import { byteSize } from "../../runtime/tensor-ops.ts";
import type { StepContext, StepHooks } from "../../sampling/denoise.ts";
import { formatSpec, type OptionSchema, resolveOptions } from "../options.ts";
import type { Approximation, CachePolicy, ComputedUnit, Decision, PolicyState, RunContext } from "../policy.ts";
import { stackUnit } from "../policy.ts";

/**
 * How φ is estimated offline. "endpoint": the step length whose cached update lands closest to the true update
 * (Ditto's derivation from the paper's step-amplification error); "notes": 1 − ‖ṽ − v‖₁/‖v_i − v_{i−1}‖₁ (the
 * form two restatements print; ≈ 0 whenever the stale residual's error matches the step-to-step change of v);
 * "norm": 1 − ‖ṽ − v‖₁/‖v‖₁ (a third restatement).
 */
export type PhiMode = "endpoint" | "notes" | "norm";

export interface ErtaCacheArtifact extends ArtifactHeader {
  lambda: number;
  reuse: boolean[];
  src: number[];
  phi: number[];
  /** φ fitted on the rectified output (used when rectify=true); absent in artifacts from before it existed. */
  phiRect?: number[];
  /** How φ was estimated; absent = "notes" (artifacts from before the choice existed). */
  phiMode?: PhiMode;
  rect: { granularity: "channel" | "tensor"; a: number[][]; b: number[][] };
  E: number[][];
  calibration: ArtifactHeader["calibration"] & { P: number };
}

export interface ErtaCacheOptions {
  /** The calibration artifact (required). */
  artifact?: string;
  /** Use the artifact's offline reuse set; false: the same number of reuse steps spread uniformly (ablation). */
  policy?: boolean;
  /** Shrink reuse steps by φ and re-budget the rest (Euler only). */
  adjust?: boolean;
  /** Subtract the fitted affine error on reuse steps. */
  rectify?: boolean;
  /** Cap κ_max on the re-budget scale (default 2). */
  kappaMax?: number;
}

export const ERTACACHE_OPTIONS: readonly OptionSchema[] = [
  { name: "artifact", type: "string", required: true, help: "artifact from ditto profile --method ertacache" },
  { name: "policy", type: "bool", default: true, help: "offline reuse set (false: uniform, same count)" },
  { name: "adjust", type: "bool", default: true, help: "timestep adjustment φ with re-budgeting" },
  { name: "rectify", type: "bool", default: true, help: "closed-form residual rectification" },
  { name: "kappaMax", type: "number", default: 2, min: 1, help: "cap on the re-budget scale κ" },
];

/**
 * The rectification's channels: an image's C planes ([C, H, W], channel-major), or an action chunk's action
 * dimensions ([horizon, dim], the last axis).
 */
export function channelLayout(
  sample: number[],
  image: boolean,
): { channels: number; channelOf: (k: number) => number } {
  if (image) {
    const [channels, ...rest] = sample;
    const plane = rest.reduce((x, y) => x * y, 1);
    return { channels, channelOf: (k) => Math.floor(k / plane) % channels };
  }
  const channels = sample[sample.length - 1];
  return { channels, channelOf: (k) => k % channels };
}

/** The same number of reuse steps as `reuse`, spread evenly; step 0 and (if `reuse` keeps it) the last compute. */
export function uniformReuse(reuse: boolean[]): boolean[] {
  const steps = reuse.length;
  const computed = reuse.filter((r) => !r).length;
  const forced = reuse[steps - 1] === false;
  const out = new Array(steps).fill(true);
  const slots = computed - (forced ? 1 : 0);
  for (let k = 0; k < slots; k++) out[Math.round((k * (forced ? steps - 1 : steps)) / Math.max(1, slots))] = false;
  out[0] = false;
  if (forced) out[steps - 1] = false;
  return out;
}

export function ertacache(options: ErtaCacheOptions = {}): CachePolicy {
  const o = resolveOptions("ertacache", ERTACACHE_OPTIONS, { ...options });
  if (!o.artifact) {
    throw new InputError(
      "OPTION_INVALID",
      "ertacache needs artifact=FILE.json; make one with `ditto profile --method ertacache`",
      { policy: "ertacache" },
    );
  }
  const path = o.artifact as string;
  const artifact = readArtifact<ErtaCacheArtifact>(path, "ertacache");
  const reuse = o.policy ? artifact.reuse : uniformReuse(artifact.reuse);
  // φ shortens a step in the sampler's own time and re-budgets the rest (spec, "Online stage"). Euler and DDIM
  // (η = 0; ᾱ interpolated between train steps) take any time; DDPM's ancestral noise is drawn for the planned
  // grid, so there it is refused, not silently dropped while the option says on.
  const adjustable = (ctx: RunContext) => {
    if (o.adjust && ctx.sampler.kind === "ddpm") {
      throw new InputError(
        "OPTION_INVALID",
        `ertacache option adjust=true (timestep adjustment, on by default) needs a deterministic sampler (Euler or ` +
          `DDIM); this run samples with DDPM. Pass adjust=false, e.g. ertacache:artifact=${path},adjust=false`,
        { policy: "ertacache", option: "adjust", sampler: ctx.sampler.kind },
      );
    }
    return o.adjust as boolean;
  };
  return {
    name: "ertacache",
    spec: formatSpec("ertacache", ERTACACHE_OPTIONS, o),
    units: stackUnit,
    createState: (ctx) => {
      checkArtifact(artifact, ctx, "ertacache", path);
      adjustable(ctx);
      return new ErtaState(reuse);
    },
    createHooks: (ctx) => {
      checkArtifact(artifact, ctx, "ertacache", path);
      return ertaHooks(reuse, o.policy ? artifact : undefined, {
        adjust: adjustable(ctx),
        rectify: o.rectify as boolean,
        kappaMax: o.kappaMax as number,
        channelOf: channelLayout(ctx.model.sample, ctx.model.image !== undefined).channelOf,
      });
    },
    describe: () => ({
      method: "ertacache",
      lambda: artifact.lambda,
      reuseSteps: reuse.flatMap((r, s) => (r ? [s] : [])),
      policy: o.policy,
      phiMode: artifact.phiMode ?? "notes",
      adjust: o.adjust,
      rectify: o.rectify,
    }),
  };
}

class ErtaState implements PolicyState {
  private residual?: Tensor;

  constructor(private readonly reuse: boolean[]) {}

  plan(view: { step: number }): Decision[] {
    return [this.decide(0, view)];
  }

  decide(_unit: number, view: { step: number }): Decision {
    return this.reuse[view.step] && this.residual ? "reuse" : "compute";
  }

  update(_unit: number, computed: ComputedUnit): void {
    this.residual = computed.value();
  }

  approximate(): Approximation | undefined {
    return this.residual ? { terms: [{ tensor: this.residual, coef: 1 }] } : undefined;
  }

  bytes(): number {
    return this.residual ? byteSize(this.residual) : 0;
  }
}

/**
 * Rectification and the re-budgeted Euler time line (spec, "Online stage"). The uniform-reuse ablation passes no
 * artifact: its steps have no fitted φ or (a, b), so it runs with neither.
 */
export function ertaHooks(
  reuse: boolean[],
  artifact: Pick<ErtaCacheArtifact, "phi" | "phiRect" | "rect"> | undefined,
  opts: { adjust: boolean; rectify: boolean; kappaMax: number; channelOf: (k: number) => number },
): StepHooks {
  let kappa = 1;
  let onGrid = true;
  const hooks: StepHooks = {
    transformOutput(v: Float32Array, ctx: StepContext): Float32Array {
      if (!artifact || !opts.rectify || !reuse[ctx.step]) return v;
      const a = artifact.rect.a[ctx.step];
      const b = artifact.rect.b[ctx.step];
      const out = new Float32Array(v.length);
      for (let i = 0; i < v.length; i++) {
        const c = a.length === 1 ? 0 : opts.channelOf(i);
        out[i] = v[i] - (a[c] * v[i] + b[c]);
      }
      return out;
    },
  };
  if (!opts.adjust || !artifact) return hooks; // no time controller: every step stays on the grid
  // φ was fitted twice: on the raw reconstruction and on the rectified one; use the one this run integrates.
  const phi = opts.rectify && artifact.phiRect ? artifact.phiRect : artifact.phi;
  hooks.nextTime = (ctx: StepContext): number => {
    const { step, grid, time } = ctx;
    const end = grid[grid.length - 1];
    const isReuse = reuse[step];
    const last = step === grid.length - 2;
    if (onGrid && !(isReuse && phi[step] < 1)) return grid[step + 1]; // exactly the plain grid until the first shrink
    onGrid = false;
    const base = grid[step + 1] - grid[step];
    const dt = last ? end - time : (isReuse ? phi[step] : 1) * kappa * base;
    const next = time + dt;
    // κ ← remaining time ÷ remaining base deltas, clamped to [1, κ_max] (spec step 2.5).
    const remaining = grid[grid.length - 1] - grid[step + 1];
    kappa = remaining === 0 ? 1 : Math.min(opts.kappaMax, Math.max(1, (end - next) / remaining));
    return next;
  };
  return hooks;
}
