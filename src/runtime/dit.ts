/**
 * A diffusion transformer ready to run one segment at a time: the manifest, the decoded graph, the discovered
 * structure, boundary tensor types (from one probe run of the whole model) and lazily created segment sessions.
 */
import { Tensor } from "onnxruntime-common";
import { ModelError } from "../errors.ts";
import { discoverStructure, type ModelStructure } from "../model/discover.ts";
import { countFlops, countParams } from "../model/flops.ts";
import { inferManifest } from "../model/infer-manifest.ts";
import { loadManifest, observationSpec, type ResolvedManifest, sampleShape } from "../model/manifest.ts";
import { planConditioning, planEmbed, planHead, planPatch, planRange, type SegmentPlan } from "../model/plan.ts";
import { extractSubModel, type TensorType } from "../onnx/extract.ts";
import { fuseAttention } from "../onnx/fuse-attention.ts";
import { fuseTanhGelu } from "../onnx/fuse-gelu.ts";
import { GraphIndex } from "../onnx/graph.ts";
import { type LoadedOnnx, loadOnnx } from "../onnx/load.ts";
import { elementTypeOf, graphOf, type ModelProto, onnx } from "../onnx/proto.ts";
import {
  appendGateProjections,
  appendStackedValues,
  PROJECTED_OUTPUT,
  PROJECTION_GATES,
  STACK_OUTPUT,
  spliceBetween,
} from "../onnx/rewrite.ts";
import { switchBranches, switchNames } from "../onnx/switch.ts";
import { platform } from "../platform.ts";
import type { Backend, Session, SessionOptions } from "./backend.ts";
import { emptyTimings, type GraphStore, packEntry, type StartupTimings, unpackEntry } from "./graph-store.ts";
import { feedsFor } from "./model-inputs.ts";
import { Segment } from "./segment.ts";

export interface LoadOptions {
  backend?: Backend;
  session?: SessionOptions;
  /** For a bare .onnx with no manifest.json beside it, guess one (used by `ditto inspect`; never for generation). */
  inferManifest?: boolean;
  /**
   * Where cut graphs and probe results are kept between runs (default: a FileGraphStore in the user's cache
   * folder, see node/graph-cache.ts); false cuts the model anew at every start.
   */
  graphCache?: GraphStore | false;
  /** Fuse the tanh-approximation GELU into ONNX Runtime's FastGelu in cut graphs (default true; see onnx/fuse-gelu.ts). */
  fuseGelu?: boolean;
  /** Fuse exported self-attention into ONNX Runtime's Attention in cut graphs (default true; onnx/fuse-attention.ts). */
  fuseAttention?: boolean;
}

/** A segment whose extracted graph is edited before use (e.g. the stacked-values output). */
interface SegmentVariant {
  /** Names the rewrite in graph-cache keys. */
  id: string;
  outputs: string[];
  /** Inputs the rewrite adds (fed by the caller besides the plan's). */
  inputs?: string[];
  /** The segment's name (default: the plan's, "+stacked"). */
  name?: string;
  /** Tensors kept as outputs during extraction (so their nodes stay) but dropped from the final outputs. */
  internal: string[];
  rewrite(model: ModelProto): void;
}

/** A cut sub-model: which source nodes it holds, its outputs, and its encoded bytes (read on demand). */
interface CutGraph {
  nodeIndices: number[];
  outputs: string[];
  bytes(): Promise<Uint8Array>;
}

/** Batch size of the probe run; an odd size so the batch axis is told apart from other dims. */
const PROBE_BATCH = 3;
/**
 * Sessions doing less than this share of a step's matrix FLOPs (patch embed, head, taps, a skipped step's
 * accumulate) run on one thread: waking a pool for about a millisecond of work costs more than it saves (network
 * batch 12, per call, 2 threads → 1: patch embed 1.15 → 0.61 ms, head with accumulate 0.82 → 0.48 ms). A block's
 * session does 4–8 % of a step.
 */
const LIGHT_SESSION_SHARE = 0.01;

export class DiT {
  readonly manifest: ResolvedManifest;
  readonly onnx: LoadedOnnx;
  readonly graph: GraphIndex;
  readonly structure: ModelStructure;
  readonly backend: Backend;
  readonly sessionOptions: SessionOptions;
  /** What this model's start-up cost so far (loading, probing, cutting, session creation). */
  readonly startup: StartupTimings = emptyTimings();
  readonly graphCache?: GraphStore;
  readonly fuseGelu: boolean;
  readonly fuseAttention: boolean;
  private readonly types: Map<string, TensorType>;
  private readonly dims: Map<string, number[]>;
  private readonly segments = new Map<string, Promise<Segment>>();
  private creating: Promise<unknown> = Promise.resolve();
  /** Matrix FLOPs per sample of one whole forward pass. */
  private stepFlops?: number;

  constructor(init: {
    manifest: ResolvedManifest;
    onnx: LoadedOnnx;
    graph: GraphIndex;
    structure: ModelStructure;
    backend: Backend;
    sessionOptions: SessionOptions;
    types: Map<string, TensorType>;
    dims: Map<string, number[]>;
    graphCache?: GraphStore;
    fuseGelu?: boolean;
    fuseAttention?: boolean;
  }) {
    this.manifest = init.manifest;
    this.onnx = init.onnx;
    this.graph = init.graph;
    this.structure = init.structure;
    this.backend = init.backend;
    this.sessionOptions = init.sessionOptions;
    this.types = init.types;
    this.dims = init.dims;
    this.graphCache = init.graphCache;
    this.fuseGelu = init.fuseGelu ?? true;
    this.fuseAttention = init.fuseAttention ?? true;
  }

  get atomCount(): number {
    return this.structure.atoms.length;
  }

  embed(): Promise<Segment> {
    return this.segment("embed", () => planEmbed(this.graph, this.structure));
  }

  /** The embed's timestep/condition-only part, or undefined when it has none (see planConditioning). */
  async conditioning(): Promise<Segment | undefined> {
    const plan = planConditioning(this.graph, this.structure);
    if (plan.nodes.length === 0 || plan.inputs.includes(this.structure.sample)) return undefined;
    return this.segment("conditioning", () => plan);
  }

  /** The embed's sample-reading part; with `conditioning()` it computes what `embed()` does. */
  patch(): Promise<Segment> {
    return this.segment("patch", () => planPatch(this.graph, this.structure));
  }

  head(): Promise<Segment> {
    return this.segment("head", () => planHead(this.graph, this.structure));
  }

  /** Atoms [start, end) as one session; extra outputs (taps) make a separate session. */
  range(start: number, end: number, extraOutputs: string[] = []): Promise<Segment> {
    if (!(start >= 0 && end <= this.atomCount && start < end)) {
      throw new RangeError(`atom range [${start}, ${end}) is outside 0..${this.atomCount}`);
    }
    const key = `range:${start}:${end}:${extraOutputs.join(",")}`;
    return this.segment(key, () => planRange(this.graph, this.structure, start, end, extraOutputs), {
      runsAlone: this.spansStack(start, end),
    });
  }

  /**
   * Atoms [start, end) as one session that also outputs every atom's pre-gate value stacked units-innermost
   * ([B, D, T', U], output STACK_OUTPUT) for the stacked accumulate. Needs every atom gated (see `canStack`).
   */
  stackedRange(start: number, end: number): Promise<Segment> {
    return this.segment(`stacked:${start}:${end}`, () => planRange(this.graph, this.structure, start, end), {
      runsAlone: this.spansStack(start, end),
      variant: (plan) => {
        const values = this.structure.atoms.slice(start, end).map((a) => a.value);
        const rank = this.dims.get(values[0])?.length ?? 3;
        return {
          id: `stacked-values:${rank}`,
          outputs: [...plan.outputs, STACK_OUTPUT],
          internal: values,
          rewrite: (m) => appendStackedValues(m, values, rank),
        };
      },
    });
  }

  /**
   * Atoms [start, end) as one session that also outputs, for K later steps, the gated sum of every atom's pre-gate
   * value under that step's gates (input PROJECTION_GATES [K, U, B, 1…, D], output PROJECTED_OUTPUT [K, B, T…, D]):
   * what those steps add to the stream when they reuse or forecast from this step's values (onnx/rewrite.ts,
   * appendGateProjections, which says when each form pays). Needs every atom gated (see `canStack`).
   */
  projectedRange(start: number, end: number, form: "direct" | "stacked"): Promise<Segment> {
    return this.segment(`projected:${start}:${end}:${form}`, () => planRange(this.graph, this.structure, start, end), {
      runsAlone: this.spansStack(start, end),
      variant: (plan) => {
        const values = this.structure.atoms.slice(start, end).map((a) => a.value);
        const rank = this.dims.get(values[0])?.length ?? 3;
        return {
          id: `gate-projections:${rank}:${form}`,
          name: `${plan.name}+projected`,
          inputs: [PROJECTION_GATES],
          outputs: [...plan.outputs, PROJECTED_OUTPUT],
          internal: values,
          rewrite: (m) => appendGateProjections(m, values, rank, form),
        };
      },
    });
  }

  /**
   * The block stack and the head as one session whose cacheable units are switched (onnx/switch.ts): per unit, a
   * boolean input picks computing it or using a cached value fed in (a pre-gate value; for a `delta` unit, the
   * residual delta), and an output hands out what was computed when a second boolean asks for it (names:
   * `switchNames`). One session then serves every step of a per-unit schedule table; `withPatch` puts the patch
   * embed in it too (for conditioning read from a table). Rejects (GraphError) a model whose branches share tensors
   * with the rest of the graph.
   */
  switched(units: { start: number; end: number; cache: "value" | "delta" }[], withPatch: boolean): Promise<Segment> {
    const key = `switched:${withPatch}:${units.map((u) => `${u.start}-${u.end}${u.cache[0]}`).join(",")}`;
    return this.segment(
      key,
      () => {
        const parts = [
          ...(withPatch ? [planPatch(this.graph, this.structure)] : []),
          planRange(this.graph, this.structure, 0, this.atomCount),
          planHead(this.graph, this.structure),
        ];
        const nodes = parts.flatMap((p) => p.nodes);
        const produced = new Set(nodes.flatMap((n) => this.graph.nodes[n].output));
        const inputs = [...new Set(parts.flatMap((p) => p.inputs))].filter((t) => !produced.has(t));
        const name = withPatch ? "switched-step+patch" : "switched-step";
        return { name, inputs, outputs: (parts.at(-1) as SegmentPlan).outputs, nodes };
      },
      {
        runsAlone: true,
        variant: (plan) => {
          const { atoms } = this.structure;
          const branches = units.map((u, i) => {
            const last = atoms[u.end - 1];
            const result = u.cache === "value" ? atoms[u.start].value : last.streamOut;
            const members = new Set(
              atoms.slice(u.start, u.end).flatMap((a) => a.nodes.flatMap((n) => this.graph.nodes[n].output)),
            );
            return {
              result,
              members,
              base: u.cache === "delta" ? atoms[u.start].streamIn : undefined,
              rank: this.dims.get(result)?.length ?? 3,
              ...switchNames(i),
            };
          });
          return {
            id: key,
            name: plan.name,
            inputs: branches.flatMap((b) => [b.flag, b.keep, b.cached]),
            outputs: [...plan.outputs, ...branches.map((b) => b.fresh)],
            internal: [],
            rewrite: (m) => {
              // Fused first: the patterns are matched in the main graph only, before they move into subgraphs.
              this.fuseKernels(m);
              switchBranches(m, branches);
            },
          };
        },
      },
    );
  }

  /** ONNX Runtime's fused kernels for what its CPU optimizer leaves apart (onnx/fuse-gelu.ts, fuse-attention.ts). */
  private fuseKernels(model: ModelProto): void {
    if (this.fuseGelu) fuseTanhGelu(model);
    if (this.fuseAttention) fuseAttention(model, (name) => this.dims.get(name));
  }

  /** A session over the whole block stack does most of a step's work alone; smaller ones run among many. */
  private spansStack(start: number, end: number): boolean {
    return start === 0 && end === this.atomCount;
  }

  /**
   * Whether every atom caches a gated pre-gate value shaped like the stream, with a gate [B, 1…, D]: then a
   * synchronous policy (all branches computed on the same steps) can cache the whole stack as one stacked unit.
   */
  canStack(): boolean {
    const h = this.dims.get(this.structure.atoms[0]?.streamIn ?? "");
    if (!h) return false;
    return this.structure.atoms.every((a) => {
      const v = this.dims.get(a.value);
      const g = a.gate ? this.dims.get(a.gate) : undefined;
      if (!v || !g || v.join() !== h.join() || g.length !== h.length) return false;
      return g[0] === h[0] && g[g.length - 1] === h[h.length - 1] && g.slice(1, -1).every((d) => d === 1);
    });
  }

  /**
   * The end of a step as one session: `between` (a graph from input "h", the stream entering atom `fromAtom`, to
   * output "out", the stream leaving the stack; its other names pass through `rename`), then the head — and with
   * `withPatch` (fromAtom 0) the patch embed before it, for a step that computes no unit. `id` names `between`'s
   * shape; each session is made once. The patch embed and head read conditioning rows from the store, as alone.
   */
  tail(
    fromAtom: number,
    withPatch: boolean,
    id: string,
    between: () => ModelProto,
    rename: (name: string) => string,
  ): Promise<Segment> {
    return this.queue(`tail:${fromAtom}:${withPatch}:${id}`, async () => {
      const { atoms } = this.structure;
      const from = atoms[fromAtom].streamIn;
      const to = (atoms.at(-1) as (typeof atoms)[number]).streamOut;
      const head = planHead(this.graph, this.structure);
      const patch = withPatch ? planPatch(this.graph, this.structure) : undefined;
      const start = performance.now();
      const { model, nodeIndices } = extractSubModel(
        this.onnx.proto,
        {
          inputs: [...new Set([...(patch?.inputs ?? []), ...head.inputs])],
          outputs: [...(patch ? [from] : []), ...head.outputs],
          types: this.types,
          name: withPatch ? "skip-step" : `tail${fromAtom}`,
        },
        this.graph,
      );
      spliceBetween(model, between(), from, to, rename);
      const bytes = onnx.ModelProto.encode(model).finish();
      const created = performance.now();
      this.startup.cutMs += created - start;
      const flops = countFlops(this.graph, nodeIndices, this.dims, PROBE_BATCH);
      const session = await this.backend.createSession(bytes, this.threadsFor(flops, this.sessionOptions));
      this.startup.sessionMs += performance.now() - created;
      this.startup.sessions++;
      const plan = {
        name: withPatch ? "skip-step" : `accumulate+head`,
        inputs: graphOf(model).input.map((i) => i.name ?? ""),
        outputs: head.outputs,
        nodes: nodeIndices,
      };
      return new Segment(plan, session, flops, countParams(this.graph, nodeIndices));
    });
  }

  /** A session computing arbitrary tensors from arbitrary inputs (e.g. TeaCache's signal from h_0). */
  tap(inputs: string[], outputs: string[]): Promise<Segment> {
    const key = `tap:${inputs.join(",")}->${outputs.join(",")}`;
    return this.segment(key, () => {
      const { nodeIndices } = extractSubModel(this.onnx.proto, { inputs, outputs, types: this.types }, this.graph);
      return { name: `tap(${outputs.join(",")})`, inputs, outputs, nodes: nodeIndices };
    });
  }

  /**
   * The unsplit model in one session, the reference for parity checks; `fused`: with the same kernel fusions as the
   * cut graphs, the fair reference for what splitting costs.
   */
  async wholeModel({ fused = false } = {}): Promise<Session> {
    if (!fused) return this.backend.createSession(this.onnx.bytes, this.sessionOptions);
    const model = onnx.ModelProto.decode(this.onnx.bytes);
    this.fuseKernels(model);
    return this.backend.createSession(onnx.ModelProto.encode(model).finish(), this.sessionOptions);
  }

  /** FLOPs per sample of the whole model, by part. */
  async flopsBreakdown(): Promise<{ embed: number; head: number; atoms: number[] }> {
    const atoms = this.structure.atoms.map((a) => countFlops(this.graph, a.nodes, this.dims, PROBE_BATCH));
    return {
      embed: countFlops(this.graph, this.structure.embedNodes, this.dims, PROBE_BATCH),
      head: countFlops(this.graph, this.structure.headNodes, this.dims, PROBE_BATCH),
      atoms,
    };
  }

  atomParams(index: number): number {
    return countParams(this.graph, this.structure.atoms[index].nodes);
  }

  partParams(part: "embed" | "head"): number {
    return countParams(this.graph, part === "embed" ? this.structure.embedNodes : this.structure.headNodes);
  }

  /** Recorded dims of a tensor at the probe batch (3). */
  probeDims(name: string): number[] | undefined {
    return this.dims.get(name);
  }

  async release(): Promise<void> {
    for (const s of this.segments.values()) await (await s).release();
    this.segments.clear();
  }

  private segment(
    key: string,
    plan: () => SegmentPlan,
    how: { runsAlone?: boolean; variant?: (plan: SegmentPlan) => SegmentVariant } = {},
  ): Promise<Segment> {
    return this.queue(key, () => this.createSegment(plan(), how.runsAlone ?? false, how.variant));
  }

  /** The segment made once per key. */
  private queue(key: string, create: () => Promise<Segment>): Promise<Segment> {
    let s = this.segments.get(key);
    if (!s) {
      // One at a time: onnxruntime-node builds sessions synchronously on the main thread anyway, and in a queue
      // each creation's timing is its own.
      s = this.creating.then(create);
      this.creating = s.catch(() => undefined);
      this.segments.set(key, s);
    }
    return s;
  }

  private async createSegment(
    plan: SegmentPlan,
    runsAlone: boolean,
    variant?: (plan: SegmentPlan) => SegmentVariant,
  ): Promise<Segment> {
    const v = variant?.(plan);
    const key = JSON.stringify({
      kind: "segment",
      inputs: plan.inputs,
      outputs: plan.outputs,
      nodes: plan.nodes,
      variant: v ? { id: v.id, outputs: v.outputs, internal: v.internal } : null,
      fuseGelu: this.fuseGelu,
      fuseAttention: this.fuseAttention,
    });
    const cut = await this.cutGraph(key, plan, v);
    if (v)
      plan = {
        ...plan,
        name: v.name ?? `${plan.name}+stacked`,
        inputs: [...plan.inputs, ...(v.inputs ?? [])],
        outputs: cut.outputs,
      };
    // Sessions that share a step with many others do better on the hot process heap than in arenas of their own.
    const options = runsAlone ? this.sessionOptions : { memoryArena: false, ...this.sessionOptions };
    const flops = countFlops(this.graph, cut.nodeIndices, this.dims, PROBE_BATCH);
    const cutBefore = this.startup.cutMs;
    const start = performance.now();
    const session = await this.createCachedSession(key, cut, this.threadsFor(flops, options));
    this.startup.sessionMs += performance.now() - start - (this.startup.cutMs - cutBefore);
    this.startup.sessions++;
    return new Segment(plan, session, flops, countParams(this.graph, cut.nodeIndices));
  }

  /** One thread for a light session (LIGHT_SESSION_SHARE), the configured count otherwise. */
  private threadsFor(flops: number, options: SessionOptions): SessionOptions {
    this.stepFlops ??= countFlops(
      this.graph,
      this.graph.nodes.map((_, i) => i),
      this.dims,
      PROBE_BATCH,
    );
    return flops < LIGHT_SESSION_SHARE * this.stepFlops ? { ...options, intraOpThreads: 1 } : options;
  }

  /**
   * The cut graph for a plan (and variant): its node indices, outputs and encoded bytes, from the graph cache or
   * cut, fused and encoded now. Cached bytes are read only when asked for: a cached optimized graph replaces them.
   */
  private async cutGraph(key: string, plan: SegmentPlan, v: SegmentVariant | undefined): Promise<CutGraph> {
    const meta = await this.timedCut(() => this.readCache<{ nodeIndices: number[]; outputs: string[] }>(`${key}:meta`));
    if (meta) {
      return {
        ...meta.header,
        bytes: async () => {
          const entry = await this.timedCut(() => this.readCache(key));
          return entry ? entry.body : (await this.cutNow(key, plan, v)).bytes();
        },
      };
    }
    return this.cutNow(key, plan, v);
  }

  private async cutNow(key: string, plan: SegmentPlan, v: SegmentVariant | undefined): Promise<CutGraph> {
    const missing = [...plan.inputs, ...plan.outputs].filter(
      (t) => !this.types.has(t) && !this.graph.graphInputs.has(t),
    );
    if (missing.length > 0) await this.probe(missing);
    return this.timedCut(async () => {
      const { model, nodeIndices } = extractSubModel(
        this.onnx.proto,
        { inputs: plan.inputs, outputs: [...plan.outputs, ...(v?.internal ?? [])], types: this.types, name: plan.name },
        this.graph,
      );
      if (v) {
        const graph = graphOf(model);
        graph.output = graph.output.filter(
          (o) => !v.internal.includes(o.name ?? "") || plan.outputs.includes(o.name ?? ""),
        );
        v.rewrite(model);
      }
      this.fuseKernels(model);
      const bytes = onnx.ModelProto.encode(model).finish();
      const outputs = v ? v.outputs : plan.outputs;
      await this.graphCache?.write(this.onnx.sha256, key, packEntry(null, bytes));
      await this.graphCache?.write(this.onnx.sha256, `${key}:meta`, packEntry({ nodeIndices, outputs }));
      return { nodeIndices, outputs, bytes: async () => bytes };
    });
  }

  private async timedCut<T>(work: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await work();
    } finally {
      this.startup.cutMs += performance.now() - start;
    }
  }

  /**
   * A session for a cut graph. With a graph cache that can hold files, ONNX Runtime's optimized graph is saved the
   * first time and loaded with the optimizer off afterwards (same kernels, same results; keyed by the runtime build
   * and CPU, since the optimizer may choose CPU-specific layouts).
   */
  private async createCachedSession(key: string, cut: CutGraph, options: SessionOptions): Promise<Session> {
    const tag = this.backend.optimizedModelTag;
    const level = options.graphOptimization ?? "all";
    const slot =
      tag && level !== "disabled" && !options.optimizedModelPath
        ? this.graphCache?.optimizedModel?.(
            this.onnx.sha256,
            JSON.stringify({ kind: "optimized", key, tag, level, providers: options.executionProviders ?? ["cpu"] }),
          )
        : undefined;
    if (slot?.bytes) {
      this.startup.cacheHits++;
      return this.backend.createSession(slot.bytes, { ...options, graphOptimization: "disabled" });
    }
    const bytes = await cut.bytes();
    if (slot) {
      this.startup.cacheMisses++;
      try {
        const session = await this.backend.createSession(bytes, { ...options, optimizedModelPath: slot.savePath });
        await slot.commit();
        return session;
      } catch {
        // An unwritable folder: the cut-graph writes already said so; create the session without saving.
      }
    }
    return this.backend.createSession(bytes, options);
  }

  private async readCache<T>(key: string): Promise<{ header: T; body: Uint8Array } | undefined> {
    if (!this.graphCache) return undefined;
    const bytes = await this.graphCache.read(this.onnx.sha256, key);
    const entry = bytes ? unpackEntry<T>(bytes) : undefined;
    if (entry) this.startup.cacheHits++;
    else this.startup.cacheMisses++;
    return entry;
  }

  /** Runs the whole model once with the given tensors as extra outputs and records their types and dims. */
  async probe(names: string[]): Promise<void> {
    const wanted = names.filter((n) => !this.graph.graphInputs.has(n) && !this.graph.graphOutputs.includes(n));
    const start = performance.now();
    try {
      const key = JSON.stringify({ kind: "probe", batch: PROBE_BATCH, names: wanted });
      const cached = await this.readCache<Record<string, { type: Tensor["type"]; dims: number[] }>>(key);
      if (cached && wanted.every((n) => cached.header[n])) {
        for (const n of wanted) this.record(n, cached.header[n].type, cached.header[n].dims);
        return;
      }
      const found = await this.probeRun(wanted);
      await this.graphCache?.write(this.onnx.sha256, key, packEntry(found));
    } finally {
      this.startup.probeMs += performance.now() - start;
    }
  }

  private async probeRun(wanted: string[]): Promise<Record<string, { type: Tensor["type"]; dims: number[] }>> {
    const found: Record<string, { type: Tensor["type"]; dims: number[] }> = {};
    // The extra outputs go on the loaded graph only while it is encoded (no await in between): one encode instead
    // of copying the whole model through encode/decode first.
    const graph = graphOf(this.onnx.proto);
    const outputs = graph.output.length;
    for (const name of wanted) graph.output.push(onnx.ValueInfoProto.create({ name }));
    let bytes: Uint8Array;
    try {
      bytes = onnx.ModelProto.encode(this.onnx.proto).finish();
    } finally {
      graph.output.splice(outputs);
    }
    const session = await this.backend.createSession(bytes, this.sessionOptions);
    try {
      const results = await session.run(probeFeeds(this.manifest));
      for (const [name, t] of Object.entries(results)) {
        found[name] = { type: t.type, dims: [...t.dims] };
        this.record(name, t.type, [...t.dims]);
      }
    } finally {
      await session.release();
    }
    return found;
  }

  record(name: string, type: Tensor["type"], dims: number[]): void {
    this.dims.set(name, dims);
    this.types.set(name, {
      elemType: elementTypeOf(type),
      dims: dims.map((d, axis) => (axis === 0 && d === PROBE_BATCH ? "batch" : d)),
    });
  }
}

export async function loadDiT(path?: string, options: LoadOptions = {}): Promise<DiT> {
  const start = performance.now();
  let manifest: ResolvedManifest;
  let loaded: LoadedOnnx;
  let graph: GraphIndex;
  try {
    manifest = await loadManifest(path);
    loaded = await loadOnnx(manifest.onnxPath);
    graph = new GraphIndex(graphOf(loaded.proto));
  } catch (err) {
    const bareOnnx =
      path?.endsWith(".onnx") && (err as ModelError).code === "MANIFEST_INVALID" && options.inferManifest;
    if (!bareOnnx || !path) throw err;
    loaded = await loadOnnx(path);
    graph = new GraphIndex(graphOf(loaded.proto));
    const full = platform().resolve(path);
    manifest = { ...inferManifest(graph, full), dir: platform().dirname(full), onnxPath: full };
  }
  checkInputs(manifest, graph);
  const structure = discoverStructure(graph, manifest.inputs.sample.name, manifest.structure);
  const model = new DiT({
    manifest,
    onnx: loaded,
    graph,
    structure,
    backend: options.backend ?? platform().backend,
    sessionOptions: options.session ?? {},
    types: new Map(),
    dims: new Map(),
    graphCache: options.graphCache === false ? undefined : (options.graphCache ?? platform().graphStore?.()),
    fuseGelu: options.fuseGelu,
    fuseAttention: options.fuseAttention,
  });
  model.startup.loadMs = performance.now() - start;
  await model.probe(probeTargets(model));
  return model;
}

/** Tensors whose shapes the planner and FLOP counter need: every segment boundary and every matmul operand. */
function probeTargets(model: DiT): string[] {
  const { graph, structure } = model;
  const names = new Set<string>();
  const add = (plan: SegmentPlan) => {
    for (const t of [...plan.inputs, ...plan.outputs]) names.add(t);
  };
  add(planEmbed(graph, structure));
  add(planHead(graph, structure));
  structure.atoms.forEach((atom, i) => {
    add(planRange(graph, structure, i, i + 1));
    for (const t of [atom.value, atom.gate, atom.modulatedInput, ...atom.softmax]) if (t) names.add(t);
  });
  graph.nodes.forEach((node, i) => {
    if (structure.nodeClass[i] === "constant") return;
    if (["MatMul", "MatMulInteger", "Gemm", "Conv"].includes(node.opType))
      for (const t of [...node.input, node.output[0]]) if (t) names.add(t);
  });
  for (const init of graph.initializers.keys()) names.delete(init);
  return [...names];
}

function checkInputs(manifest: ResolvedManifest, graph: GraphIndex): void {
  const roles = [manifest.inputs.sample, manifest.inputs.timestep, manifest.inputs.condition].filter(
    (r) => r !== undefined,
  );
  for (const role of roles) {
    if (!graph.graphInputs.has(role.name)) {
      throw new ModelError(
        "MANIFEST_INVALID",
        `manifest input '${role.name}' is not an input of ${manifest.onnxPath} (its inputs: ${[...graph.graphInputs].join(", ")})`,
      );
    }
  }
  const unexplained = [...graph.graphInputs].filter((n) => !roles.some((r) => r.name === n));
  if (unexplained.length > 0) {
    throw new ModelError(
      "MANIFEST_INVALID",
      `graph input(s) ${unexplained.join(", ")} have no role in the manifest; Ditto feeds only sample, timestep and condition`,
    );
  }
  if (!graph.graphOutputs.includes(manifest.output.name)) {
    throw new ModelError(
      "MANIFEST_INVALID",
      `manifest output '${manifest.output.name}' is not an output of the graph (${graph.graphOutputs.join(", ")})`,
    );
  }
}

function probeFeeds(manifest: ResolvedManifest): Record<string, Tensor> {
  const shape = sampleShape(manifest);
  const size = PROBE_BATCH * shape.reduce((a, b) => a * b, 1);
  const sample = new Float32Array(size);
  for (let i = 0; i < size; i++) sample[i] = Math.sin(i * 0.37) * 0.8;
  const obsDim = observationSpec(manifest)?.dim ?? 0;
  const observation = new Float32Array(PROBE_BATCH * obsDim).map((_, i) => Math.cos(i * 0.61) * 0.5);
  const mid = manifest.objective.kind === "epsilon" ? (manifest.objective.schedule?.trainSteps ?? 1000) / 2 : 0.5;
  return feedsFor(manifest, {
    sample: new Tensor("float32", sample, [PROBE_BATCH, ...shape]),
    time: new Float64Array(PROBE_BATCH).fill(mid),
    condition: new Int32Array(PROBE_BATCH),
    observation,
  });
}
