/**
 * The cache engine: evaluates the network one unit at a time for the denoising loop, asking the policy, per step
 * and unit, whether to compute, reuse or forecast. It applies the current step's gate to cached pre-gate values,
 * falls back to computing when a cached tensor holds NaN/Inf, and records what ran for the run report.
 */
import { Tensor as OrtTensor, type Tensor } from "onnxruntime-common";
import { DittoError, GraphError } from "../errors.ts";
import { observationSpec, sampleShape } from "../model/manifest.ts";
import { planPatch, planRange } from "../model/plan.ts";
import { PROJECTED_OUTPUT, PROJECTION_GATES, STACK_OUTPUT } from "../onnx/rewrite.ts";
import { switchNames } from "../onnx/switch.ts";
import { ConditionedStore, ConditioningTable } from "../runtime/conditioning.ts";
import type { DiT } from "../runtime/dit.ts";
import { feedsFor, type ModelCall } from "../runtime/model-inputs.ts";
import type { Segment, TensorStore } from "../runtime/segment.ts";
import { isAllFinite, residualAdd, subtract } from "../runtime/tensor-ops.ts";
import {
  type DenoiseRequest,
  denoise,
  type NetworkEvaluator,
  type Pass,
  plannedTimes,
  type StepContext,
  type StepResult,
  usesGuidance,
} from "../sampling/denoise.ts";
import { Accumulator, accumulatePiece, materialize, stackedPiece } from "./accumulate.ts";
import type {
  Approximation,
  CachePolicy,
  Decision,
  ModelInfo,
  PolicyState,
  RunContext,
  StepView,
  TapName,
  UnitSpec,
} from "./policy.ts";

export interface StepTrace {
  step: number;
  pass: Pass;
  time: number;
  /** One letter per unit: C computed, R reused, F forecast, N non-finite cached value recomputed. */
  decisions: string;
  /** FLOPs per sample done in this evaluation. */
  flops: number;
}

export interface RunReport {
  policy: string;
  spec: string;
  units: { start: number; end: number; cache: UnitSpec["cache"]; name: string; flops: number }[];
  trace: StepTrace[];
  unitsComputed: number;
  unitsSkipped: number;
  /** FLOPs per sample an uncached run would do, and those done (embed and head always run). */
  flopsFull: number;
  flopsDone: number;
  /** flopsFull ÷ flopsDone: the speedup if time followed the skipped units' FLOPs. */
  idealSpeedup: number;
  cachePeakBytes: number;
  nonFiniteFallbacks: number;
  /** Session runs per segment. */
  sessionCalls: Record<string, number>;
  policyTrace?: Record<string, unknown>;
}

/** Weights the sessions of runs of computed units may hold per engine, in copies of the block stack's weights. */
const GROUP_WEIGHT_BUDGET = 2;

const DECISION_LETTER: Record<Decision, string> = { compute: "C", reuse: "R", forecast: "F" };

interface ActiveRun {
  ctx: Omit<RunContext, "pass">;
  report: RunReport;
  callsAtStart: Map<Segment, number>;
  sideCache: Map<Pass, Map<string, Tensor>>;
  observer?: EngineObserver;
}

/** What an observer sees after each network evaluation: every tensor computed this step, and taps. */
export interface EvaluationEvent {
  /** Index of the pipeline batch (set by Pipeline.generate). */
  batch?: number;
  step: number;
  pass: Pass;
  time: number;
  store: ReadonlyMap<string, Tensor>;
  view: StepView;
}

/** Called after every network evaluation (profilers and calibration record from here). */
export type EngineObserver = (event: EvaluationEvent) => void | Promise<void>;

/** Runs the patch embed if it has not run yet this step, with `withTap`, a tensor of block 0, in the same session. */
type PatchRunner = (withTap?: string) => Promise<void>;

/** One network evaluation in progress. */
interface StepWork {
  call: ModelCall;
  store: TensorStore;
  view: StepView;
  state: PolicyState;
  sideCache: Map<string, Tensor>;
  letters: string[];
  flops: number;
  pending: { unit: number; approximation: Approximation; decision: Decision }[];
}

export function modelInfo(model: DiT, flops: { embed: number; head: number; atoms: number[] }): ModelInfo {
  const { structure } = model;
  const h = model.probeDims(structure.atoms[0].streamIn) ?? [];
  return {
    image: model.manifest.image,
    sample: sampleShape(model.manifest),
    tokens: h.length > 2 ? h.slice(1, -1).reduce((a, b) => a * b, 1) : 1,
    hidden: h.at(-1) ?? 0,
    canStack: model.canStack(),
    atoms: structure.atoms.map((a) => ({
      index: a.index,
      block: a.block,
      kind: a.kind,
      gated: a.gate !== undefined,
      hasValue: a.value !== a.streamOut,
      flops: flops.atoms[a.index],
    })),
    blocks: structure.blocks.map((b) => ({ index: b.index, atoms: b.atoms })),
    sha256: model.onnx.sha256,
    embedFlops: flops.embed,
    headFlops: flops.head,
  };
}

export class CacheEngine implements NetworkEvaluator {
  readonly model: DiT;
  readonly policy: CachePolicy;
  readonly info: ModelInfo;
  readonly units: UnitSpec[];
  private readonly embed: Segment;
  /** The embed in two parts, when it has a timestep/condition-only part: see runtime/conditioning.ts. */
  private readonly split?: { conditioning: Segment; patch: Segment };
  private readonly head: Segment;
  private readonly unitSegments: Segment[];
  private readonly unitFlops: number[];
  private readonly sideOutputs: string[][];
  /**
   * The session that runs a step mixing computed and skipped units (DiT.switched), when the units allow it
   * (single-branch values or deltas, no taps, nothing shared across units); false once the model refused it.
   */
  private readonly switched = new Map<boolean, Promise<Segment | false>>();
  private readonly canSwitch: boolean;
  private readonly accumulator: Accumulator;
  /** Sessions the engine made besides the units' own (the full-step session), counted in reports. */
  private readonly extraSegments = new Set<Segment>();
  /** How often each run of computed units was asked for, those given a session, and the parameters they hold. */
  private readonly groups = { requests: new Map<string, number>(), shapes: new Set<string>(), params: 0 };
  /** Gate projections handed to policies (computeProjected): the later steps each one holds, in order. */
  private readonly projections = new WeakMap<Tensor, number[]>();
  /** Each unit's share of a joint projection made by runWindow → that projection. */
  private readonly windowShares = new WeakMap<Tensor, Tensor>();
  private projectionForm?: "direct" | "stacked";
  /** The patch embed + tap sessions by tapped tensor (patchWithTap). */
  private readonly patchTaps = new Map<string, Promise<Segment>>();
  private states = new Map<Pass, PolicyState>();
  private run?: ActiveRun;
  private table?: ConditioningTable;
  /** The time of each step of the generation in progress (the grid, or where a time controller moves it). */
  private times: Float64Array = new Float64Array(0);
  /** Whether the last step that computed units ran the switched session (see runUnits). */
  private lastComputedSwitched = false;

  private constructor(
    model: DiT,
    policy: CachePolicy,
    info: ModelInfo,
    units: UnitSpec[],
    segments: { embed: Segment; split?: { conditioning: Segment; patch: Segment }; head: Segment },
    unitSegments: Segment[],
  ) {
    this.model = model;
    this.policy = policy;
    this.info = info;
    this.units = units;
    this.embed = segments.embed;
    this.split = segments.split;
    this.head = segments.head;
    this.unitSegments = unitSegments;
    this.accumulator = Accumulator.for(model.backend, model.sessionOptions);
    this.unitFlops = units.map((u) => info.atoms.slice(u.start, u.end).reduce((sum, a) => sum + a.flops, 0));
    const { atoms } = model.structure;
    this.sideOutputs = unitSegments.map((seg, i) => {
      const u = units[i];
      const own = new Set([atoms[u.end - 1].streamOut, atoms[u.start].value, STACK_OUTPUT, ...(u.taps ?? [])]);
      return seg.plan.outputs.filter((t) => !own.has(t));
    });
    this.canSwitch = units.every(
      (u, i) =>
        u.taps === undefined &&
        this.sideOutputs[i].length === 0 &&
        (u.cache === "delta" || (u.cache === "value" && u.end - u.start === 1)),
    );
  }

  static async create(model: DiT, policy: CachePolicy): Promise<CacheEngine> {
    const info = modelInfo(model, await model.flopsBreakdown());
    const units = policy.units(info);
    checkUnits(units, info, policy.name);
    const [embed, head, conditioning, patch, ...unitSegments] = await Promise.all([
      model.embed(),
      model.head(),
      model.conditioning(),
      model.patch(),
      ...units.map((u) =>
        u.cache === "stacked" ? model.stackedRange(u.start, u.end) : model.range(u.start, u.end, u.taps),
      ),
    ]);
    const split = conditioning ? { conditioning, patch } : undefined;
    return new CacheEngine(model, policy, info, units, { embed, split, head }, unitSegments);
  }

  /** One generation: the denoising loop with this engine as the network; state is fresh for every call. */
  async *generate(request: DenoiseRequest, observer?: EngineObserver): AsyncGenerator<StepResult> {
    const ctx = {
      model: this.info,
      units: this.units,
      steps: request.sampler.steps,
      sampler: request.sampler.describe,
      cfgScale: request.cfgScale,
      cfgMode: request.cfgMode ?? "batched",
    };
    this.states = new Map();
    this.lastComputedSwitched = false;
    const segments = [this.embed, this.head, ...this.unitSegments];
    if (this.split) segments.push(this.split.conditioning, this.split.patch);
    this.run = {
      ctx,
      report: this.emptyReport(ctx),
      callsAtStart: new Map(segments.map((s) => [s, s.calls])),
      sideCache: new Map(),
      observer,
    };
    const hooks = this.policy.createHooks?.({ ...ctx, pass: "both" }) ?? {};
    for (const s of this.extraSegments) this.run.callsAtStart.set(s, s.calls);
    // A time controller moves steps off the grid: the table holds the times it will visit (a second instance of the
    // hooks walks the loop ahead), else every moved step would run the conditioning itself (ERTACache: 2.6 ms a step).
    const planner = hooks.nextTime ? this.policy.createHooks?.({ ...ctx, pass: "both" }) : undefined;
    this.times = plannedTimes(request.sampler.times, request.sampler.steps, planner ?? {});
    this.table = await this.conditioningTable(request, this.times);
    yield* denoise(request, this, hooks);
    const report = this.run.report;
    for (const s of [...segments, ...this.extraSegments]) {
      const calls = s.calls - (this.run.callsAtStart.get(s) ?? 0);
      if (calls > 0 || segments.includes(s)) report.sessionCalls[s.name] = (report.sessionCalls[s.name] ?? 0) + calls;
    }
  }

  /** The report of the last generation. */
  report(): RunReport {
    if (!this.run) throw new Error("no generation has run yet");
    return this.run.report;
  }

  async evaluate(call: ModelCall, ctx: StepContext, pass: Pass): Promise<Float32Array> {
    const run = this.run;
    if (!run) throw new Error("evaluate() called outside generate()");
    const state = this.stateFor(pass);
    if (ctx.time !== this.times[ctx.step]) {
      // Gate projections and table rows were made for the planned times (plannedTimes): stop rather than misuse them.
      throw new DittoError(
        "RUNTIME_FAILED",
        `step ${ctx.step} runs at t = ${ctx.time}, not at the planned ${this.times[ctx.step]}: a time controller's ` +
          "nextTime must depend on the step context only",
      );
    }
    const feeds = Object.entries(feedsFor(this.model.manifest, call));
    // With the conditioning tabled, each tensor is gathered when a session first reads it, and the patch embed runs
    // when first needed: a step that computes no unit runs it inside its one session instead.
    const gather = this.split && this.table?.gatherer(call.time, call.condition);
    const store: TensorStore = gather ? new ConditionedStore(feeds, gather) : new Map(feeds);
    let patched = !gather;
    if (patched) await this.embed.run(store);
    const ready = async (withTap?: string) => {
      if (patched) return;
      patched = true;
      if (withTap) {
        const segment = await this.patchWithTap(withTap);
        this.track(segment);
        await segment.run(store);
      } else await (this.split as NonNullable<typeof this.split>).patch.run(store);
    };
    const view = this.view(ctx, store, ready);
    await state.beginStep?.(view);
    const sideCache = run.sideCache.get(pass) ?? new Map<string, Tensor>();
    run.sideCache.set(pass, sideCache);
    const step: StepWork = {
      call,
      store,
      view,
      state,
      sideCache,
      letters: [],
      flops: this.info.embedFlops + this.info.headFlops,
      pending: [],
    };
    await this.runUnits(step, ready, !patched);
    await run.observer?.({ step: ctx.step, pass, time: ctx.time, store, view });
    run.report.trace.push({
      step: ctx.step,
      pass,
      time: ctx.time,
      decisions: step.letters.join(""),
      flops: step.flops,
    });
    this.updateTotals(run.report);
    return this.need(store, this.model.manifest.output.name).data as Float32Array;
  }

  /** Runs the units and the head; `ready` runs the patch embed, which has not run yet when `patchPending`. */
  private async runUnits(step: StepWork, ready: PatchRunner, patchPending: boolean): Promise<void> {
    const { state, view } = step;
    const planned = state.plan?.(view);
    if (!planned) {
      await ready();
      await this.runSequential(step);
      return this.finishStep(step);
    }
    const plan = [...planned];
    const approximations = plan.map((d, u) => (d === "compute" ? undefined : state.approximate(u, d, view)));
    this.computeStrayShares(plan, approximations);
    if (patchPending && approximations.every((a) => a !== undefined)) {
      // A step that computes nothing runs as one session: patch embed → accumulate → head.
      step.pending = approximations.map((a, u) => ({ unit: u, approximation: a as Approximation, decision: plan[u] }));
      if (await this.runTail(step, true)) return;
      step.pending = [];
    }
    const kept = approximations.map((a, u) => a === undefined && this.keeps(step, u));
    const computed = approximations.filter((a) => a === undefined).length;
    if (computed === plan.length && !this.run?.observer && (await this.runWindow(step, ready, kept))) {
      this.lastComputedSwitched = false;
      return;
    }
    // Mixed steps, and full steps that keep only some values (a group session would be made per such pattern),
    // run switched; a full step keeping all or none runs the plain stack session — unless the last computing step
    // (of either pass, under separate guidance) ran switched: each session holds its own weights and buffers, and
    // the stack session run now and then among switched steps was slower than the switched one (at network batch
    // 12 on the shipped model, timed side by side in a scratch script on 2026-12-03: 50.6 ms after 3 switched
    // steps and 59.9 ms after 40, against 45.5 ms after itself and 50.2 ms for the switched step).
    const plain =
      computed === plan.length && (kept.every((k) => k) || kept.every((k) => !k)) && !this.lastComputedSwitched;
    if (computed > 0 && !plain && !this.run?.observer) {
      if (await this.runSwitched(step, { plan, approximations, kept, withPatch: patchPending })) {
        this.lastComputedSwitched = true;
        return;
      }
    }
    if (computed > 0) this.lastComputedSwitched = false;
    await ready();
    await this.runPlanned(step, plan, approximations);
    await this.finishStep(step);
  }

  /**
   * A step that mixes computed and skipped units as one session with the head (DiT.switched): a per-unit table
   * then costs one session run per step whatever its pattern. False, having changed nothing that counts, when the
   * model cannot be switched or the output is not finite (the unit-by-unit path then finds the value at fault).
   */
  private async runSwitched(
    step: StepWork,
    how: { plan: Decision[]; approximations: (Approximation | undefined)[]; kept: boolean[]; withPatch: boolean },
  ): Promise<boolean> {
    const { plan, approximations, kept } = how;
    const segment = await this.switchedSegment(how.withPatch);
    if (!segment) return false;
    const { store } = step;
    approximations.forEach((a, u) => {
      const names = switchNames(u);
      store.set(names.flag, a ? FALSE : TRUE);
      store.set(names.keep, kept[u] ? TRUE : FALSE);
      store.set(names.cached, a ? single(a) : NOTHING);
    });
    await segment.run(store);
    const output = this.model.manifest.output.name;
    if (!isAllFinite(this.need(store, output))) {
      store.delete(output);
      return false;
    }
    approximations.forEach((a, u) => {
      if (a) this.markSkipped(step, u, DECISION_LETTER[plan[u]]);
      else this.afterCompute(step, u, "C", kept[u], this.need(store, switchNames(u).fresh));
    });
    return true;
  }

  private switchedSegment(withPatch: boolean): Promise<Segment | false> {
    if (!this.canSwitch) return Promise.resolve(false);
    const units = this.units.map((u) => ({ start: u.start, end: u.end, cache: u.cache as "value" | "delta" }));
    let segment = this.switched.get(withPatch);
    if (!segment) {
      // A model whose branches share tensors with the rest of the graph is refused (GraphError): it keeps the
      // unit-by-unit path. Anything else is a real failure.
      segment = this.model.switched(units, withPatch).catch((err) => {
        if (err instanceof GraphError) return false as const;
        throw err;
      });
      this.switched.set(withPatch, segment);
    }
    // Tracked per generation: the run report counts its calls.
    return segment.then((s) => {
      if (s) this.track(s);
      return s;
    });
  }

  /** A step decided unit by unit, in forward order, each decision seeing what the earlier units computed. */
  private async runSequential(step: StepWork): Promise<void> {
    const { state, view } = step;
    for (let u = 0; u < this.units.length; u++) {
      const decision = state.decide(u, view);
      if (decision !== "compute") {
        const approximation = state.approximate(u, decision, view);
        if (approximation) {
          step.pending.push({ unit: u, approximation, decision });
          continue;
        }
      }
      await this.flush(step);
      await this.compute(step, u, "C");
    }
  }

  /** Adds the trailing run of skipped units and runs the head: in one session when it can (see runTail). */
  private async finishStep(step: StepWork): Promise<void> {
    if (await this.runTail(step, false)) return;
    await this.flush(step);
    await this.head.run(step.store);
  }

  /**
   * The conditioning at each step's time for every class this generation uses (and the null class under guidance),
   * in one run; a step at another time runs the whole embed instead.
   */
  private async conditioningTable(
    request: DenoiseRequest,
    times: Float64Array,
  ): Promise<ConditioningTable | undefined> {
    // A continuous observation is different at every re-plan: nothing to table.
    if (!this.split || observationSpec(this.model.manifest)) return undefined;
    const { conditioning } = this.split;
    const { classes, nullClass } = request;
    // The calls denoise() makes: the classes, and the null class for the unconditional pass or when there are none.
    const usesNull = classes === undefined || usesGuidance(request);
    const conditions = [...(classes ?? []), ...(usesNull && nullClass !== undefined ? [nullClass] : [])];
    const rowBytes = (name: string) => 4 * (this.model.probeDims(name) ?? []).slice(1).reduce((a, b) => a * b, 1);
    const bytesPerRow = conditioning.plan.outputs.reduce((sum, name) => sum + rowBytes(name), 0);
    // The last tables per model serve the next generations on the same times and conditions (every batch of a run,
    // every repeat of a benchmark; two, for a benchmark alternating the grid with a time controller's times):
    // building one costs a few percent of a heavily cached generation.
    const key = JSON.stringify([Array.from(times), [...new Set(conditions)].sort((a, b) => a - b)]);
    const recent = LAST_TABLES.get(this.model) ?? [];
    const found = recent.find((t) => t.key === key);
    if (found) return found.table;
    const table = ConditioningTable.build(conditioning, this.model.manifest, times, conditions, bytesPerRow);
    const entry = { key, table };
    LAST_TABLES.set(this.model, [entry, ...recent].slice(0, KEPT_TABLES));
    table.catch(() =>
      LAST_TABLES.set(
        this.model,
        (LAST_TABLES.get(this.model) ?? []).filter((t) => t !== entry),
      ),
    );
    return table;
  }

  /** Runs one unit's session and hands its value to the policy. */
  private async compute(step: StepWork, u: number, letter: string): Promise<void> {
    const kept = this.keeps(step, u);
    if (kept && this.units[u].cache === "stacked" && (await this.computeProjected(step, u, letter))) return;
    await this.unitSegments[u].run(step.store);
    this.afterCompute(step, u, letter, kept);
  }

  private keeps(step: StepWork, u: number): boolean {
    if (step.state.readsAt?.(u, step.view).length === 0) return false;
    return step.state.keeps?.(u, step.view) ?? true;
  }

  /**
   * Counts a computed unit and, when the policy keeps it, caches its side outputs and hands it its value (`value`:
   * already handed out by the session, else read from the store).
   */
  private afterCompute(step: StepWork, u: number, letter: string, kept: boolean, value?: Tensor): void {
    const run = this.run as ActiveRun;
    const unit = this.units[u];
    const { atoms } = this.model.structure;
    step.flops += this.unitFlops[u];
    step.letters[u] = letter;
    run.report.unitsComputed++;
    if (!kept) return;
    for (const t of this.sideOutputs[u]) step.sideCache.set(t, this.need(step.store, t));
    const streamIn = atoms[unit.start].streamIn;
    const streamOut = atoms[unit.end - 1].streamOut;
    step.state.update(
      u,
      {
        value: () => {
          if (value) return value;
          if (unit.cache === "value") return this.need(step.store, atoms[unit.start].value);
          if (unit.cache === "stacked") return this.need(step.store, STACK_OUTPUT);
          return subtract(this.need(step.store, streamOut), this.need(step.store, streamIn));
        },
      },
      step.view,
    );
  }

  /**
   * A step whose decisions are known before it runs. Skipped units accumulate as in the sequential path; each run of
   * consecutive computed units is one session that hands out only what the policy keeps, so a step that computes
   * everything and keeps nothing costs what the uncached step costs (issue 14: no per-unit tax).
   */
  private async runPlanned(
    step: StepWork,
    plan: Decision[],
    approximations: (Approximation | undefined)[],
  ): Promise<void> {
    const kept = plan.map((_, u) => !approximations[u] && this.keeps(step, u));
    // Units with taps (profilers) and kept stacked units have sessions of their own shape: they run alone.
    const alone = (u: number) => this.units[u].taps !== undefined || (kept[u] && this.units[u].cache === "stacked");
    for (let u = 0; u < this.units.length; ) {
      const approximation = approximations[u];
      if (approximation) {
        step.pending.push({ unit: u, approximation, decision: plan[u] });
        u++;
        continue;
      }
      let end = u + 1;
      while (end < this.units.length && !approximations[end] && !alone(u) && !alone(end)) end++;
      await this.flush(step);
      if (kept[u] && this.units[u].cache === "stacked" && (await this.computeProjected(step, u))) {
        u = end;
        continue;
      }
      const group = await this.groupSegment(u, end, kept);
      if (group) await group.run(step.store);
      else for (let v = u; v < end; v++) await this.unitSegments[v].run(step.store);
      for (let v = u; v < end; v++) this.afterCompute(step, v, "C", kept[v]);
      u = end;
    }
  }

  /**
   * Computes a kept stacked unit handing out, instead of its stacked values, their gated sum under the gates of each
   * later step that will read them (PolicyState.readsAt; gates from the conditioning table). False, having run
   * nothing, when the policy does not say which steps, or a step's gates are not tabled.
   */
  private async computeProjected(step: StepWork, u: number, letter = "C"): Promise<boolean> {
    const steps = step.state.readsAt?.(u, step.view);
    const unit = this.units[u];
    const gates = steps?.length ? this.projectionGates(step, unit.start, unit.end, steps) : undefined;
    if (!steps || !gates) return false;
    const projected = await this.project(step, unit.start, unit.end, steps, gates);
    this.afterCompute(step, u, letter, true, projected);
    return true;
  }

  /**
   * A full step of single-branch units that are all next read at the same later steps — which then reuse or forecast
   * every unit, as in the synchronous stretches of a learned table (L2C) — computed as one session handing out their
   * joint gate projection for those steps, as a stacked unit does (computeProjected): each of those steps then adds
   * one tensor instead of gating and adding every unit's value, and this step hands out one tensor, not one per unit.
   * Unit 0 is handed the projection, the others an empty share of it (windowShares). False, having run nothing, when
   * the step is not such a step.
   */
  private async runWindow(step: StepWork, ready: PatchRunner, kept: boolean[]): Promise<boolean> {
    const { atoms } = this.info;
    const single = this.units.every(
      (u, i) =>
        u.cache === "value" &&
        u.end - u.start === 1 &&
        atoms[u.start].gated &&
        u.taps === undefined &&
        this.sideOutputs[i].length === 0,
    );
    // Shares are checked against the plan (computeStrayShares): a policy deciding unit by unit gets none.
    if (this.units.length < 2 || !single || !this.info.canStack || !step.state.plan || !kept.every((k) => k))
      return false;
    const reads = this.units.map((_, u) => step.state.readsAt?.(u, step.view) ?? []);
    const steps = reads[0];
    if (steps.length === 0 || reads.some((r) => r.join() !== steps.join())) return false;
    const gates = this.projectionGates(step, 0, atoms.length, steps);
    if (!gates) return false;
    await ready();
    const projected = await this.project(step, 0, atoms.length, steps, gates);
    this.units.forEach((_, u) => {
      const share = u === 0 ? projected : new OrtTensor("float32", new Float32Array(0), [0]);
      this.windowShares.set(share, projected);
      this.afterCompute(step, u, "C", true, share);
    });
    await this.finishStep(step);
    return true;
  }

  /**
   * A window's shares serve only a step that approximates every unit alike (runWindow): where a policy's readsAt
   * promised more than its plan keeps, the units still holding a share are computed instead.
   */
  private computeStrayShares(plan: Decision[], approximations: (Approximation | undefined)[]): void {
    if (this.windowOf(approximations.filter((a) => a !== undefined))) return;
    approximations.forEach((a, u) => {
      if (a?.terms.some((t) => this.windowShares.has(t.tensor))) {
        approximations[u] = undefined;
        plan[u] = "compute";
      }
    });
  }

  /**
   * The whole stack's approximation when `approximations` (in unit order) cover every unit from shares of the same
   * joint projections with the same weights (runWindow): unit 0's, whose terms hold the projections themselves.
   */
  private windowOf(approximations: Approximation[]): Approximation | undefined {
    if (approximations.length !== this.units.length) return undefined;
    const joint = approximations[0].terms;
    const shared = approximations.every(({ terms }) => {
      if (terms.length !== joint.length) return false;
      return terms.every((t, i) => t.coef === joint[i].coef && this.windowShares.get(t.tensor) === joint[i].tensor);
    });
    return shared && joint.length > 0 ? approximations[0] : undefined;
  }

  /**
   * The gates of atoms [start, end) at each of `steps`, as one [K, U, B, 1…, D] tensor (step-major, from the
   * conditioning table); undefined when a step's gates are not tabled.
   */
  private projectionGates(step: StepWork, start: number, end: number, steps: number[]): Tensor | undefined {
    if (!this.table) return undefined;
    const gates = this.model.structure.atoms.slice(start, end).map((a) => a.gate as string);
    const { call } = step;
    let stacked: Float32Array | undefined;
    let dims: readonly number[] = [];
    for (const [k, s] of steps.entries()) {
      const rows = this.table.lookup(new Float64Array(call.time.length).fill(this.times[s]), call.condition, gates);
      if (!rows) return undefined;
      const first = this.need(rows, gates[0]);
      const data = first.data as Float32Array;
      const perStep = data.length * gates.length;
      stacked ??= new Float32Array(steps.length * perStep);
      dims = first.dims;
      stacked.set(new Float32Array(data.buffer, data.byteOffset, perStep), k * perStep);
    }
    return new OrtTensor("float32", stacked as Float32Array, [steps.length, gates.length, ...dims]);
  }

  /** Runs atoms [start, end) handing out their gate projections for `steps` (appendGateProjections). */
  private async project(step: StepWork, start: number, end: number, steps: number[], gates: Tensor): Promise<Tensor> {
    step.store.set(PROJECTION_GATES, gates);
    // One session per engine: the form suits the number of steps it first serves (rewrite.ts says why).
    this.projectionForm ??= steps.length <= 2 ? "direct" : "stacked";
    const segment = await this.model.projectedRange(start, end, this.projectionForm);
    this.track(segment);
    await segment.run(step.store);
    const projected = this.need(step.store, PROJECTED_OUTPUT);
    this.projections.set(projected, steps);
    return projected;
  }

  /**
   * A stacked unit's approximation over gate projections, as the terms this step adds to the stream (ungated: the
   * gates are in them); undefined when it holds none, "missing" when one does not cover this step.
   */
  private projectedTerms(step: StepWork, a: Approximation): Approximation | "missing" | undefined {
    if (!a.terms.some((t) => this.projections.has(t.tensor))) return undefined;
    const terms: Approximation["terms"] = [];
    for (const { tensor, coef } of a.terms) {
      const index = this.projections.get(tensor)?.indexOf(step.view.step) ?? -1;
      if (index < 0) return "missing";
      const data = tensor.data as Float32Array;
      const size = data.length / (tensor.dims[0] as number);
      const row = new OrtTensor("float32", data.subarray(index * size, (index + 1) * size), tensor.dims.slice(1));
      terms.push({ tensor: row, coef });
    }
    return { terms };
  }

  /**
   * The pending run of skipped units, when it ends the stack, accumulated and followed by the head in one session
   * (DiT.tail) — with the patch embed too (`withPatch`) when the step computes nothing. This saves session runs and
   * the stream's round trips through JavaScript. False, having changed nothing that counts, when there is no such
   * run, or the output is not finite (the unit-by-unit path then finds the value at fault).
   */
  private async runTail(step: StepWork, withPatch: boolean): Promise<boolean> {
    const pending = step.pending;
    const last = pending.at(-1);
    if (!last || last.unit !== this.units.length - 1) return false;
    const window = this.windowOf(pending.map((p) => p.approximation));
    const stacked = pending.findIndex((p) => this.units[p.unit].cache === "stacked");
    if (!window && stacked >= 0 && pending.length > 1) return false;
    const joint = window ?? (stacked === 0 ? last.approximation : undefined);
    const projected = joint && this.projectedTerms(step, joint);
    if (projected === "missing") return false;
    const piece = projected
      ? accumulatePiece([{ approximation: projected }])
      : stacked === 0
        ? stackedPiece(this.gatesOf(step, last.unit), last.approximation)
        : accumulatePiece(pending.map((p) => ({ approximation: p.approximation, gate: this.gateOf(step, p.unit) })));
    const rename = (name: string) => `ditto_tail_${name}`;
    const segment = await this.model.tail(
      this.units[pending[0].unit].start,
      withPatch,
      piece.signature,
      piece.model,
      rename,
    );
    this.track(segment);
    for (const [name, t] of Object.entries(piece.feeds(rename))) step.store.set(name, t);
    for (const p of pending) for (const t of this.sideOutputs[p.unit]) step.store.set(t, this.need(step.sideCache, t));
    await segment.run(step.store);
    const output = this.model.manifest.output.name;
    if (!isAllFinite(this.need(step.store, output))) {
      step.store.delete(output);
      return false;
    }
    step.pending = [];
    for (const p of pending) this.markSkipped(step, p.unit, DECISION_LETTER[p.decision]);
    return true;
  }

  /** The current gate a `value` unit's cached value is scaled by, if it has one. */
  private gateOf(step: StepWork, u: number): Tensor | undefined {
    const unit = this.units[u];
    const gate = unit.cache === "value" ? this.model.structure.atoms[unit.start].gate : undefined;
    return gate ? this.need(step.store, gate) : undefined;
  }

  /** Every atom's current gate of a stacked unit. */
  private gatesOf(step: StepWork, u: number): Tensor[] {
    const unit = this.units[u];
    return this.model.structure.atoms.slice(unit.start, unit.end).map((a) => this.need(step.store, a.gate as string));
  }

  /** Parameters of atoms [start, end). */
  private paramsOf(start: number, end: number): number {
    let total = 0;
    for (let i = start; i < end; i++) total += this.model.atomParams(i);
    return total;
  }

  /** Counts a session the engine made besides the units' own in the run report. */
  private track(segment: Segment): void {
    const run = this.run as ActiveRun;
    if (!run.callsAtStart.has(segment)) run.callsAtStart.set(segment, segment.calls);
    this.extraSegments.add(segment);
  }

  /** The session computing units [a, b) and handing out the kept units' cached tensors and side outputs. */
  private async groupSegment(a: number, b: number, kept: boolean[]): Promise<Segment | undefined> {
    const units = this.units;
    const first = units[a];
    if (b - a === 1 && (kept[a] || first.cache !== "stacked")) return this.unitSegments[a];
    // Each distinct run is an ONNX session of its own, holding its weights: a table that scatters computed units
    // (BAC) would make dozens. A run gets one when its shape recurs (a whole-stack run at once), while the weights
    // these sessions hold stay under a budget; otherwise it runs unit by unit.
    if (b - a > 1) {
      const groups = this.groups;
      const shape = units
        .slice(a, b)
        .map((u, i) => `${u.start}-${u.end}${kept[a + i] ? u.cache : ""}`)
        .join();
      if (!groups.shapes.has(shape)) {
        const seen = (groups.requests.get(shape) ?? 0) + 1;
        groups.requests.set(shape, seen);
        const params = this.paramsOf(first.start, units[b - 1].end);
        const wholeStack = a === 0 && b === units.length; // a full step: always worth its session
        if (
          (seen < 2 && !wholeStack) ||
          groups.params + params > GROUP_WEIGHT_BUDGET * this.paramsOf(0, this.model.atomCount)
        )
          return undefined;
        groups.shapes.add(shape);
        groups.params += params;
      }
    }
    const { atoms } = this.model.structure;
    const extras = new Set<string>();
    for (let u = a; u < b; u++) {
      if (!kept[u]) continue;
      const unit = this.units[u];
      const cached =
        unit.cache === "value"
          ? [atoms[unit.start].value]
          : [atoms[unit.start].streamIn, atoms[unit.end - 1].streamOut];
      for (const t of [...cached, ...this.sideOutputs[u]]) extras.add(t);
    }
    extras.delete(atoms[first.start].streamIn);
    const segment = await this.model.range(first.start, this.units[b - 1].end, [...extras]);
    this.track(segment);
    return segment;
  }

  /**
   * Adds the pending run of reused/forecast units into the stream with one accumulate session. If the result is
   * not finite, finds the units whose cached values hold NaN/Inf and computes those instead (counted).
   */
  private async flush(step: StepWork): Promise<void> {
    const pending = step.pending;
    if (pending.length === 0) return;
    step.pending = [];
    const run = this.run as ActiveRun;
    const { atoms } = this.model.structure;
    const window = this.windowOf(pending.map((p) => p.approximation));
    if (window) return this.flushJoint(step, pending, window);
    const stacked = pending.findIndex((p) => this.units[p.unit].cache === "stacked");
    if (stacked >= 0) {
      // A stacked unit is accumulated on its own; the units around it go through the general path.
      step.pending = pending.slice(0, stacked);
      await this.flush(step);
      await this.flushJoint(step, [pending[stacked]], pending[stacked].approximation);
      step.pending = pending.slice(stacked + 1);
      return this.flush(step);
    }
    const gateOf = (u: number) => this.gateOf(step, u);
    const first = this.units[pending[0].unit];
    const last = this.units[pending[pending.length - 1].unit];
    const h = this.need(step.store, atoms[first.start].streamIn);
    const out = await this.accumulator.run(
      h,
      pending.map((p) => ({ approximation: p.approximation, gate: gateOf(p.unit) })),
    );
    if (isAllFinite(out)) {
      step.store.set(atoms[last.end - 1].streamOut, out);
      for (const p of pending) this.markSkipped(step, p.unit, DECISION_LETTER[p.decision]);
      return;
    }
    for (const p of pending) {
      const unit = this.units[p.unit];
      const value = materialize(p.approximation);
      if (isAllFinite(value)) {
        const streamIn = this.need(step.store, atoms[unit.start].streamIn);
        step.store.set(atoms[unit.end - 1].streamOut, residualAdd(streamIn, value, gateOf(p.unit)));
        this.markSkipped(step, p.unit, DECISION_LETTER[p.decision]);
      } else {
        run.report.nonFiniteFallbacks++;
        await this.compute(step, p.unit, "N");
      }
    }
  }

  /**
   * Adds one approximation covering the consecutive units of `group`: a stacked unit's, or a window's joint
   * projection (runWindow). Computes the units instead when a projection does not cover this step, or the sum is not
   * finite (counted once for the group: which unit's value is at fault is not known).
   */
  private async flushJoint(step: StepWork, group: StepWork["pending"], approximation: Approximation): Promise<void> {
    const run = this.run as ActiveRun;
    const { atoms } = this.model.structure;
    const first = this.units[group[0].unit];
    const last = this.units[(group.at(-1) as (typeof group)[number]).unit];
    const h = this.need(step.store, atoms[first.start].streamIn);
    const projected = this.projectedTerms(step, approximation);
    // A projection made for other steps cannot serve this one: the units are computed instead.
    if (projected === "missing") {
      for (const p of group) await this.compute(step, p.unit, "C");
      return;
    }
    const out = projected
      ? await this.accumulator.run(h, [{ approximation: projected }])
      : await this.accumulator.runStacked(h, this.gatesOf(step, group[0].unit), approximation);
    if (isAllFinite(out)) {
      step.store.set(atoms[last.end - 1].streamOut, out);
      for (const p of group) this.markSkipped(step, p.unit, DECISION_LETTER[p.decision]);
      return;
    }
    run.report.nonFiniteFallbacks++;
    for (const p of group) await this.compute(step, p.unit, "N");
  }

  private markSkipped(step: StepWork, u: number, letter: string): void {
    const run = this.run as ActiveRun;
    for (const t of this.sideOutputs[u]) step.store.set(t, this.need(step.sideCache, t));
    step.letters[u] = letter;
    run.report.unitsSkipped++;
  }

  private stateFor(pass: Pass): PolicyState {
    let state = this.states.get(pass);
    if (!state) {
      const run = this.run as NonNullable<typeof this.run>;
      state = this.policy.createState({ ...run.ctx, pass });
      this.states.set(pass, state);
      run.report.policyTrace = this.policy.describe?.({ ...run.ctx, pass });
    }
    return state;
  }

  private view(ctx: StepContext, store: TensorStore, ready: PatchRunner): StepView {
    const taps = new Map<TapName, Promise<Tensor>>();
    return {
      step: ctx.step,
      steps: ctx.steps,
      time: ctx.time,
      grid: ctx.grid,
      tap: (name) => {
        let t = taps.get(name);
        if (!t) {
          t = this.computeTap(name, store, ready);
          taps.set(name, t);
        }
        return t;
      },
    };
  }

  private async computeTap(name: TapName, store: TensorStore, ready: PatchRunner): Promise<Tensor> {
    if (name === "input") return this.need(store, this.model.manifest.inputs.sample.name);
    const { graph, structure } = this.model;
    const target = structure.atoms[0].modulatedInput;
    if (name !== "block0-modulated" || !target) {
      throw new DittoError(
        "STRUCTURE_NOT_FOUND",
        `this model exposes no '${name}' signal (no matmul found in block 0's first branch)`,
      );
    }
    await ready(target);
    if (!store.has(target)) await (await this.model.tap(planRange(graph, structure, 0, 1).inputs, [target])).run(store);
    return this.need(store, target);
  }

  /**
   * The patch embed and a tensor of block 0 as one session: a step that reads block 0's modulated input before it
   * decides (TeaCache) then runs one session before the decision instead of two.
   */
  private patchWithTap(target: string): Promise<Segment> {
    // Asked every step: the plan walk that names the session's inputs is done once.
    let segment = this.patchTaps.get(target);
    if (!segment) {
      const { graph, structure } = this.model;
      const h0 = structure.atoms[0].streamIn;
      const block0 = planRange(graph, structure, 0, 1).inputs.filter((n) => n !== h0);
      segment = this.model.tap([...new Set([...planPatch(graph, structure).inputs, ...block0])], [h0, target]);
      this.patchTaps.set(target, segment);
    }
    return segment;
  }

  private need(store: Map<string, Tensor>, name: string): Tensor {
    const t = store.get(name);
    if (!t) throw new DittoError("RUNTIME_FAILED", `tensor '${name}' is missing: nothing computed or cached it`);
    return t;
  }

  private updateTotals(report: RunReport): void {
    const full = this.info.embedFlops + this.info.headFlops + this.unitFlops.reduce((a, b) => a + b, 0);
    report.flopsFull = full * report.trace.length;
    report.flopsDone = report.trace.reduce((a, t) => a + t.flops, 0);
    report.idealSpeedup = report.flopsFull / report.flopsDone;
    let bytes = 0;
    for (const s of this.states.values()) bytes += s.bytes();
    report.cachePeakBytes = Math.max(report.cachePeakBytes, bytes);
  }

  private emptyReport(ctx: Omit<RunContext, "pass">): RunReport {
    return {
      policy: this.policy.name,
      spec: this.policy.spec,
      units: this.units.map((u, i) => ({ ...u, name: this.unitSegments[i].name, flops: this.unitFlops[i] })),
      trace: [],
      unitsComputed: 0,
      unitsSkipped: 0,
      flopsFull: 0,
      flopsDone: 0,
      idealSpeedup: 1,
      cachePeakBytes: 0,
      nonFiniteFallbacks: 0,
      sessionCalls: {},
      policyTrace: this.policy.describe?.({ ...ctx, pass: "both" }),
    };
  }
}

/** The last conditioning tables built for each model, newest first (see conditioningTable). */
const LAST_TABLES = new WeakMap<DiT, { key: string; table: Promise<ConditioningTable | undefined> }[]>();
const KEPT_TABLES = 2;

const TRUE = new OrtTensor("bool", new Uint8Array([1]), [1]);
const FALSE = new OrtTensor("bool", new Uint8Array([0]), [1]);

/** The cached-value input of a computed unit in a switched step (never read). */
const NOTHING = new OrtTensor("float32", new Float32Array(0), [0]);

/** A reused value as one tensor: the cached one, or a forecast's weighted sum. */
function single(a: Approximation): Tensor {
  const [term] = a.terms;
  return a.terms.length === 1 && term.coef === 1 ? term.tensor : materialize(a);
}

function checkUnits(units: UnitSpec[], info: ModelInfo, policy: string): void {
  let next = 0;
  for (const u of units) {
    const ok =
      u.start === next &&
      u.end > u.start &&
      u.end <= info.atoms.length &&
      (u.cache === "delta" || u.end - u.start === 1 || (u.cache === "stacked" && info.canStack));
    if (!ok)
      throw new DittoError(
        "OPTION_INVALID",
        `policy ${policy} produced an invalid unit partition at [${u.start}, ${u.end})`,
      );
    next = u.end;
  }
  if (next !== info.atoms.length)
    throw new DittoError("OPTION_INVALID", `policy ${policy}'s units stop at atom ${next} of ${info.atoms.length}`);
}
