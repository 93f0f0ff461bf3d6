/**
 * ProfilingDiT ("Model Reveals What to Cache", arXiv 2504.03140): blocks whose attention favours the background
 * are cached, foreground-focused blocks always run. After a warm-up s0, cached blocks — each maximal run of
 * consecutive cached blocks as one unit — refresh their residual delta on compute steps (a decreasing-interval
 * schedule) and add it unchanged in between. Spec: shared/specs/profilingdit.md. Profile with
 * `ditto profile --method profilingdit`.
 */

import type { Tensor } from "onnxruntime-common";
import { InputError } from "../../errors.ts";
import { type ArtifactHeader, checkArtifact, readArtifact } from "../../profiling/artifact.ts";
import { byteSize } from "../../runtime/tensor-ops.ts";
import { formatSpec, type OptionSchema, resolveOptions } from "../options.ts";
import type {
  Approximation,
  CachePolicy,
  ComputedUnit,
  Decision,
  ModelInfo,
  PolicyState,
  StepView,
  UnitSpec,
} from "../policy.ts";

export interface ProfilingDitArtifact extends ArtifactHeader {
  blocks: { cached: number[]; computed: number[]; runs: { start: number; end: number }[]; isolated: number[] };
  s0: number;
  computeSteps: number[];
  profile: {
    R: number[];
    theta: number;
    maskSource: string;
    conditions: number[];
    stepsUsed: [number, number];
    /** R per step and block (the heat map). */
    heat: number[][];
    foregroundFraction: number;
  };
}

export const PROFILINGDIT_OPTIONS: readonly OptionSchema[] = [
  { name: "artifact", type: "string", required: true, help: "artifact from ditto profile --method profilingdit" },
  {
    name: "variant",
    type: "string",
    default: "background",
    choices: ["background", "foreground"],
    help: "which blocks to cache (ablation)",
  },
  {
    name: "count",
    type: "int",
    default: -1,
    min: -1,
    help: "number of blocks to cache, lowest R first (−1: the artifact's split)",
  },
  {
    name: "interval",
    type: "int",
    default: 0,
    min: 0,
    help: "uniform refresh interval after s0 (0: the artifact's decreasing schedule)",
  },
  { name: "s0", type: "int", default: -1, min: -1, help: "warm-up steps (−1: the artifact's)" },
];

export interface ProfilingDitOptions {
  artifact?: string;
  variant?: "background" | "foreground";
  count?: number;
  interval?: number;
  s0?: number;
}

/** Maximal runs of consecutive cached blocks (length ≥ 2) and isolated ones; rejects blocks outside 0 … L−1. */
export function splitRuns(
  cached: number[],
  blocks: number,
): { runs: { start: number; end: number }[]; isolated: number[] } {
  const sorted = [...new Set(cached)].sort((a, b) => a - b);
  for (const b of sorted) {
    if (!Number.isInteger(b) || b < 0 || b >= blocks) {
      throw new InputError("OPTION_INVALID", `cached block ${b} does not exist: this model has blocks 0–${blocks - 1}`);
    }
  }
  const runs: { start: number; end: number }[] = [];
  const isolated: number[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    if (j > i) runs.push({ start: sorted[i], end: sorted[j] });
    else isolated.push(sorted[i]);
    i = j + 1;
  }
  return { runs, isolated };
}

/** { s0 + kT } below S. */
export function uniformSchedule(steps: number, s0: number, interval: number): number[] {
  const out: number[] = [];
  for (let s = s0; s < steps; s += interval) out.push(s);
  return out;
}

/** Start at s0 and add gap(s) = round(Tmax − (Tmax − Tmin)·(s − s0)/(S − s0)), at least 1 (the spec's reading). */
export function decreasingSchedule(steps: number, s0: number, tMax: number, tMin: number): number[] {
  const out: number[] = [];
  for (let s = s0; s < steps; ) {
    out.push(s);
    s += Math.max(1, Math.round(tMax - ((tMax - tMin) * (s - s0)) / Math.max(1, steps - s0)));
  }
  return out;
}

/** HunyuanVideo's 50-step list, rescaled to S steps by s' = round(s·S/50). */
export function hunyuan50(steps: number): number[] {
  return [...new Set([6, 18, 26, 32, 38, 42, 46, 48].map((s) => Math.round((s * steps) / 50)))];
}

export function profilingdit(options: ProfilingDitOptions = {}): CachePolicy {
  const o = resolveOptions("profilingdit", PROFILINGDIT_OPTIONS, { ...options });
  if (!o.artifact) {
    throw new InputError(
      "OPTION_INVALID",
      "profilingdit needs artifact=FILE.json; make one with `ditto profile --method profilingdit`",
      { policy: "profilingdit" },
    );
  }
  const path = o.artifact as string;
  const artifact = readArtifact<ProfilingDitArtifact>(path, "profilingdit");
  const cachedBlocks = (model: ModelInfo): number[] => {
    const L = model.blocks.length;
    const byR = artifact.profile.R.map((r, b) => ({ r, b })).sort((x, y) => x.r - y.r || x.b - y.b);
    const count = (o.count as number) >= 0 ? (o.count as number) : artifact.blocks.cached.length;
    const ordered = o.variant === "foreground" ? [...byR].reverse() : byR;
    const cached = ordered.slice(0, Math.min(count, L)).map((x) => x.b);
    splitRuns(cached, L);
    return cached;
  };
  const units = (model: ModelInfo): UnitSpec[] => blockRunUnits(model, new Set(cachedBlocks(model)));
  return {
    name: "profilingdit",
    spec: formatSpec("profilingdit", PROFILINGDIT_OPTIONS, o),
    units,
    createState: (ctx) => {
      checkArtifact(artifact, ctx, "profilingdit", path);
      const s0 = (o.s0 as number) >= 0 ? (o.s0 as number) : artifact.s0;
      const computeSteps =
        (o.interval as number) > 0 ? uniformSchedule(ctx.steps, s0, o.interval as number) : artifact.computeSteps;
      const cached = new Set(cachedBlocks(ctx.model));
      const cachedUnits = ctx.units.map((u) => cached.has(ctx.model.atoms[u.start].block));
      return new ProfilingDitState(s0, new Set(computeSteps), cachedUnits);
    },
    describe: (ctx) => ({
      method: "profilingdit",
      variant: o.variant,
      cachedBlocks: cachedBlocks(ctx.model),
      s0: artifact.s0,
    }),
  };
}

/** Consecutive blocks of the same kind (cached / computed) form one delta unit: a run [p..q] reuses h_q − h_p. */
function blockRunUnits(model: ModelInfo, cached: Set<number>): UnitSpec[] {
  const units: UnitSpec[] = [];
  for (const block of model.blocks) {
    const start = block.atoms[0];
    const end = (block.atoms.at(-1) as number) + 1;
    const previous = units.at(-1);
    const prevCached = previous ? cached.has(model.atoms[previous.start].block) : undefined;
    if (previous && prevCached === cached.has(block.index)) previous.end = end;
    else units.push({ start, end, cache: "delta" });
  }
  return units;
}

class ProfilingDitState implements PolicyState {
  private readonly deltas = new Map<number, Tensor>();

  constructor(
    private readonly s0: number,
    private readonly computeSteps: Set<number>,
    private readonly cachedUnits: boolean[],
  ) {}

  plan(view: StepView): Decision[] {
    return this.cachedUnits.map((_, u) => this.decide(u, view));
  }

  decide(unit: number, view: StepView): Decision {
    if (!this.cachedUnits[unit] || view.step < this.s0 || this.computeSteps.has(view.step)) return "compute";
    return "reuse";
  }

  /** Only the background (cached) units' deltas are ever reused. */
  keeps(unit: number): boolean {
    return this.cachedUnits[unit];
  }

  update(unit: number, computed: ComputedUnit): void {
    if (this.cachedUnits[unit]) this.deltas.set(unit, computed.value()); // overwritten at every compute step
  }

  approximate(unit: number): Approximation | undefined {
    const d = this.deltas.get(unit);
    return d ? { terms: [{ tensor: d, coef: 1 }] } : undefined;
  }

  bytes(): number {
    let total = 0;
    for (const d of this.deltas.values()) total += byteSize(d);
    return total;
  }
}
