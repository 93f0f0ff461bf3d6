/**
 * First-Block Cache and DBCache (ParaAttention; vipshop/cache-dit): always run the first Fn blocks and take their
 * residual R = h_Fn − h_0 as the signal; while R's relative change from R at the last *computed* step stays under
 * δ, skip the middle blocks by adding their cached residual; always run the last Bn blocks as correctors.
 * FBCache is Fn = 1, Bn = 0. Spec: shared/specs/baselines.md §3.
 */
import type { Tensor } from "onnxruntime-common";
import { byteSize } from "../../runtime/tensor-ops.ts";
import { formatSpec, type OptionSchema, type OptionValues, resolveOptions } from "../options.ts";
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
import { relativeL1 } from "../signals.ts";

export interface FBCacheOptions {
  /** δ: reuse while the front residual's relative L1 change is below it (FBCache default 0.05, DBCache 0.08). */
  threshold?: number;
  /** Fn: front blocks always computed (FBCache 1; DBCache 0 = auto, max(1, round(L/4))). */
  fn?: number;
  /** Bn: back blocks always computed (default 0). */
  bn?: number;
  /** Steps that always compute (FBCache 1; DBCache −1 = auto, round(0.16·S)). */
  warmup?: number;
  /** Cap on cached steps in a run (−1: none). */
  maxCached?: number;
  /** Cap on consecutive cached steps (−1: none). */
  maxConsecutive?: number;
}

const common = (threshold: number, fn: number, warmup: number): OptionSchema[] => [
  {
    name: "threshold",
    type: "number",
    default: threshold,
    min: 0,
    help: "δ on the front residual's relative L1 change",
  },
  { name: "fn", type: "int", default: fn, min: 0, help: "front blocks always computed (0 = max(1, round(L/4)))" },
  { name: "bn", type: "int", default: 0, min: 0, help: "back blocks always computed" },
  { name: "warmup", type: "int", default: warmup, min: -1, help: "steps that always compute (−1 = round(0.16·S))" },
  { name: "maxCached", type: "int", default: -1, min: -1, help: "cap on cached steps (−1 = none)" },
  { name: "maxConsecutive", type: "int", default: -1, min: -1, help: "cap on consecutive cached steps (−1 = none)" },
];

export const FBCACHE_OPTIONS: readonly OptionSchema[] = common(0.05, 1, 1);
export const DBCACHE_OPTIONS: readonly OptionSchema[] = common(0.08, 0, -1);

export function fbcache(options: FBCacheOptions = {}): CachePolicy {
  return firstBlockPolicy("fbcache", resolveOptions("fbcache", FBCACHE_OPTIONS, { ...options }));
}

export function dbcache(options: FBCacheOptions = {}): CachePolicy {
  return firstBlockPolicy("dbcache", resolveOptions("dbcache", DBCACHE_OPTIONS, { ...options }));
}

function frontBlocks(o: OptionValues, model: ModelInfo): number {
  const fn = o.fn as number;
  return Math.min(model.blocks.length, fn > 0 ? fn : Math.max(1, Math.round(model.blocks.length / 4)));
}

function firstBlockPolicy(name: string, o: OptionValues): CachePolicy {
  const units = (model: ModelInfo): UnitSpec[] => {
    const L = model.blocks.length;
    const fn = frontBlocks(o, model);
    const bn = Math.min(o.bn as number, L - fn);
    const atomAt = (b: number) => (b >= L ? model.atoms.length : model.blocks[b].atoms[0]);
    const ranges = [
      [0, atomAt(fn)],
      [atomAt(fn), atomAt(L - bn)],
      [atomAt(L - bn), model.atoms.length],
    ].filter(([a, b]) => b > a);
    return ranges.map(([start, end]) => ({ start, end, cache: "delta" }));
  };
  return {
    name,
    spec: formatSpec(name, name === "fbcache" ? FBCACHE_OPTIONS : DBCACHE_OPTIONS, o),
    units,
    createState: (ctx) => {
      const fn = frontBlocks(o, ctx.model);
      // δ = 0 is never undercut (a relative L1 change is ≥ 0): such a run computes every unit at every step.
      const hasMiddle =
        units(ctx.model).length > 1 && fn + (o.bn as number) < ctx.model.blocks.length && (o.threshold as number) > 0;
      const warmup = (o.warmup as number) < 0 ? Math.round(0.16 * ctx.steps) : (o.warmup as number);
      return new FirstBlockState(
        ctx.units.length,
        o.threshold as number,
        hasMiddle ? 1 : -1,
        warmup,
        o.maxCached as number,
        o.maxConsecutive as number,
      );
    },
    describe: (ctx) => ({ method: name, Fn: frontBlocks(o, ctx.model), Bn: o.bn, threshold: o.threshold }),
  };
}

export class FirstBlockState implements PolicyState {
  private signal?: Tensor;
  private reference?: Tensor;
  private middle?: Tensor;
  private cached = 0;
  private consecutive = 0;

  /** `middleUnit` is the index of the skippable unit (−1: none, every step computes everything). */
  constructor(
    unitCount: number,
    private readonly threshold: number,
    private readonly middleUnit: number,
    private readonly warmup: number,
    private readonly maxCached: number,
    private readonly maxConsecutive: number,
  ) {
    // With nothing to skip, every step is known to compute everything before it runs (one session per step).
    if (middleUnit < 0) this.plan = () => new Array(unitCount).fill("compute");
  }

  readonly plan?: () => Decision[];

  /** The front residual (the signal) and the middle residual are read later; nothing is when nothing is skipped. */
  keeps(unit: number): boolean {
    return this.middleUnit >= 0 && (unit === 0 || unit === this.middleUnit);
  }

  decide(unit: number, view: StepView): Decision {
    if (unit !== this.middleUnit) return "compute";
    if (view.step < Math.max(1, this.warmup) || !this.reference || !this.middle || !this.signal)
      return this.computing();
    const diff = relativeL1(this.signal, this.reference);
    const capped =
      (this.maxCached >= 0 && this.cached >= this.maxCached) ||
      (this.maxConsecutive >= 0 && this.consecutive >= this.maxConsecutive);
    if (diff < this.threshold && !capped) {
      this.cached++;
      this.consecutive++;
      return "reuse";
    }
    return this.computing();
  }

  update(unit: number, computed: ComputedUnit): void {
    if (unit === 0 && this.middleUnit > 0) this.signal = computed.value();
    if (unit === this.middleUnit) {
      this.middle = computed.value();
      this.reference = this.signal; // the reference is refreshed only on compute steps (spec pitfall 1)
    }
  }

  approximate(unit: number): Approximation | undefined {
    return unit === this.middleUnit && this.middle ? { terms: [{ tensor: this.middle, coef: 1 }] } : undefined;
  }

  bytes(): number {
    return [this.signal, this.reference, this.middle].reduce((a, t) => a + (t ? byteSize(t) : 0), 0);
  }

  private computing(): Decision {
    this.consecutive = 0;
    return "compute";
  }
}
