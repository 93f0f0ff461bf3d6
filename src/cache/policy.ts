/**
 * The contract between the cache engine and a caching method. A policy partitions the model's atoms (branches)
 * into units and, per step and unit, answers compute, reuse or forecast. It never runs the denoising loop: the
 * engine runs the units it must, asks the policy for the rest, and applies the current step's gate.
 */
import type { Tensor } from "onnxruntime-common";
import type { AtomKind } from "../model/discover.ts";
import type { CfgMode, Pass, StepHooks } from "../sampling/denoise.ts";
import type { SamplerKind } from "../sampling/samplers.ts";

export type Decision = "compute" | "reuse" | "forecast";

/**
 * A cacheable unit: atoms [start, end). `value` caches the pre-gate branch output (one atom; the engine applies the
 * current gate on reuse), `delta` caches the residual delta h_out − h_in of the whole range, `stacked` caches every
 * atom's pre-gate value side by side (one tensor [B, D, T', U]) and applies each atom's current gate on reuse: the
 * same per-branch semantics as `value` units, for branches that are always computed together (TaylorSeer, FORA).
 */
export interface UnitSpec {
  start: number;
  end: number;
  cache: "value" | "delta" | "stacked";
  /** Extra tensors the unit's session exposes to observers (profilers: attention probabilities). */
  taps?: string[];
}

export interface AtomInfo {
  index: number;
  block: number;
  kind: AtomKind;
  gated: boolean;
  /** Whether the atom exposes its branch output (pre-gate, or ungated) apart from the stream; opaque atoms do not. */
  hasValue: boolean;
  /** FLOPs per sample of one evaluation. */
  flops: number;
}

export interface ModelInfo {
  atoms: AtomInfo[];
  blocks: { index: number; atoms: number[] }[];
  /** SHA-256 of the ONNX file (artifacts are tied to it). */
  sha256: string;
  /** The image layout [C, H, W]; absent for an action-sequence policy. */
  image?: { channels: number; height: number; width: number };
  /** The per-item sample shape ([C, H, W], or [horizon, dim] for a policy). */
  sample: number[];
  /** Tokens and hidden width of the residual stream (h is [B, tokens, hidden]). */
  tokens: number;
  hidden: number;
  /** Whether every atom is gated with stream-shaped values, so `stacked` units are possible. */
  canStack: boolean;
  /** FLOPs per sample of the embed (with all modulation) and the head. */
  embedFlops: number;
  headFlops: number;
}

export interface RunContext {
  model: ModelInfo;
  /** The policy's own unit partition for this model. */
  units: UnitSpec[];
  steps: number;
  sampler: { kind: SamplerKind; steps: number; shift: number };
  cfgScale: number;
  cfgMode: CfgMode;
  /** Which CFG branch(es) this state serves. */
  pass: Pass;
}

/** Signals a policy can ask for at a step (computed lazily, once per step). */
/** `block0-modulated`: block 0's modulated input (TeaCache); `input`: the sample x fed to the model (EasyCache). */
export type TapName = "block0-modulated" | "input";

export interface StepView {
  step: number;
  steps: number;
  time: number;
  grid: Float64Array;
  tap(name: TapName): Promise<Tensor>;
}

/** What a policy sees of a unit it let the engine compute. */
export interface ComputedUnit {
  /** The value the unit caches: pre-gate output (`value` units) or residual delta (`delta` units). */
  value(): Tensor;
}

/** A cached unit's value as a linear combination Σ coef·tensor (reuse: one term with coef 1; Taylor: several). */
export interface Approximation {
  terms: { tensor: Tensor; coef: number }[];
}

/** Per-generation, per-CFG-branch state (the forecaster: reset by construction, beginStep, update, approximate). */
export interface PolicyState {
  beginStep?(view: StepView): void | Promise<void>;
  /**
   * Every unit's decision for this step, decided before any unit runs. Policies whose decisions do not depend on
   * what this step computes provide it, which lets the engine run a full step as one session.
   */
  plan?(view: StepView): Decision[];
  /** One unit's decision, asked in forward order after the earlier units ran (used when there is no plan). */
  decide(unit: number, view: StepView): Decision;
  /**
   * Whether the policy will read what this unit computes at this step (default: yes). A policy that knows the value
   * is replaced before any step reuses it (FORA with N = 1, a table whose next row computes the unit) says no: the
   * engine then runs the unit in a session that hands nothing out and does not call `update` for it.
   */
  keeps?(unit: number, view: StepView): boolean;
  /**
   * The later steps whose `approximate` will read the value this unit computes now, when the policy knows them in
   * advance (a superset is fine). For a stacked unit the engine then hands out, instead of every branch's value,
   * one gated sum per such step under that step's gates, far less to copy and to read back; the policy stores and
   * combines what `update` gives it as it would the stacked values. Likewise when every unit is one branch, all
   * compute at this step and all give the same steps: the engine hands out their joint projection (unit 0 gets it,
   * the others an empty share), which serves a step that approximates every unit with the same weights. So a policy
   * with readsAt uses what `update` gives it only through `approximate`. A read at a step not listed, or of a share
   * at a step that does not approximate every unit alike, computes the unit.
   */
  readsAt?(unit: number, view: StepView): number[];
  /** A computed unit's value, for the units the policy keeps. */
  update(unit: number, computed: ComputedUnit, view: StepView): void;
  /** The value to use for a unit that is not computed; undefined when nothing is cached yet. */
  approximate(unit: number, decision: Decision, view: StepView): Approximation | undefined;
  /** Bytes held by cached tensors now. */
  bytes(): number;
}

export interface CachePolicy {
  /** Registry name, e.g. "taylorseer". */
  readonly name: string;
  /** Canonical spec string, e.g. "taylorseer:interval=4,order=1,warmup=2". */
  readonly spec: string;
  units(model: ModelInfo): UnitSpec[];
  createState(ctx: RunContext): PolicyState;
  /** Sampler-level hooks for one generation (shared by its CFG branches). */
  createHooks?(ctx: RunContext): StepHooks;
  /** A short description of the trace this policy adds to run reports (e.g. the full-step list). */
  describe?(ctx: RunContext): Record<string, unknown>;
}

/** Every atom as its own `value` unit (branch granularity: FORA, TaylorSeer, BAC, HarmoniCa). */
export function atomUnits(model: ModelInfo): UnitSpec[] {
  return model.atoms.map((a) => ({ start: a.index, end: a.index + 1, cache: a.hasValue ? "value" : "delta" }));
}

/** The whole stack as one `stacked` unit where the model allows it, else one `value` unit per atom. */
export function synchronousUnits(model: ModelInfo): UnitSpec[] {
  return model.canStack ? [{ start: 0, end: model.atoms.length, cache: "stacked" }] : atomUnits(model);
}

/** Every block as one `delta` unit. */
export function blockUnits(model: ModelInfo): UnitSpec[] {
  return model.blocks.map((b) => ({ start: b.atoms[0], end: (b.atoms.at(-1) as number) + 1, cache: "delta" }));
}

/** The whole stack as one `delta` unit (step-level methods: TeaCache, MagCache, ERTACache). */
export function stackUnit(model: ModelInfo): UnitSpec[] {
  return [{ start: 0, end: model.atoms.length, cache: "delta" }];
}
