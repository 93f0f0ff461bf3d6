/**
 * HarmoniCa's router fitted without gradients (G-HC, shared/specs/harmonica.md), and Learning-to-Cache fitted the
 * same way. HarmoniCa walks the steps in denoising order on the student's own cached trajectory (Step-Wise
 * Denoising Training) and weighs each step's error by λ(s), the step's marginal effect on the final image
 * (Image-Error-Proxy-Guided Objective). Per step it orders the units by λ·e_u / w_u (e_u: output error when unit u
 * alone reuses its cache) and caches the prefix S_j minimising J = λ·MSE_joint(S_j) − β·Σ w_u, with MSE_joint
 * measured. L2C keeps its structure: even steps full, odd steps fitted on the uncached trajectory, λ ≡ 1.
 */
import type { Tensor } from "onnxruntime-common";
import { Tensor as OrtTensor } from "onnxruntime-common";
import type { ScheduleArtifact } from "../cache/policies/schedule.ts";
import { computedFraction, tablePolicy } from "../cache/policies/schedule.ts";
import type { AtomKind } from "../model/discover.ts";
import { requireImage } from "../model/manifest.ts";
import type { Pipeline } from "../pipeline.ts";
import { defaultCondition, feedsFor } from "../runtime/model-inputs.ts";
import type { Segment, TensorStore } from "../runtime/segment.ts";
import { concatFloat32, residualAdd } from "../runtime/tensor-ops.ts";
import { guideBatched, usesGuidance } from "../sampling/denoise.ts";
import { batchNoise } from "../sampling/noise.ts";
import { createSampler, type Sampler } from "../sampling/samplers.ts";
import { makeHeader, readArtifact } from "./artifact.ts";
import {
  type CalibrationOptions,
  type CalibrationSet,
  calibrationContext,
  calibrationRequest,
  calibrationSet,
} from "./calibration.ts";
import { fitRouterCem } from "./router-cem.ts";

export interface RouterArtifact extends ScheduleArtifact {
  kind: "harmonica-ghc" | "l2c-ghc" | "harmonica-cem";
  lambda: number[];
  beta: number;
  rho: number | null;
  rounds: number;
  units: { u: number; block: number; kind: AtomKind; w: number }[];
  fit: {
    B: number;
    seeds: number[];
    /** "final": no proxy, the final-sample error itself (optimizer "cem"). */
    lambdaMode: "marginal" | "none" | "final";
    lambdaChunk: number;
    trajectory: "student" | "uncached";
    /** Absent: "ghc". */
    optimizer?: "ghc" | "cem";
    /** CEM only: candidates per generation, generations, and the best calibration MSE after each generation. */
    cem?: { population: number; iterations: number; history: number[]; init?: string };
  };
  cost: { forwards: number; seconds: number; computedFraction: number };
}

export interface RouterOptions extends CalibrationOptions {
  mode?: "harmonica" | "l2c";
  /** Compute penalty β; without it, `rho` sets the budget and β is found by bisection. */
  beta?: number;
  /** Target computed fraction (default 0.6). */
  rho?: number;
  /** λ refresh rounds (default 2). */
  rounds?: number;
  /** λ is measured for chunks of this many steps (default ⌈S/10⌉), each chunk's marginal spread over its steps. */
  lambdaChunk?: number;
  /** A BAC artifact whose table gives the first λ (warm start). */
  warm?: string;
  /** Unit cost weights: FLOPs shares (default) or 1 for every unit. */
  weights?: "flops" | "equal";
  /**
   * HarmoniCa only: "ghc" (default) makes the per-step choices greedily against λ; "cem" searches router logits
   * with the cross-entropy method against the measured final-sample error (router-cem.ts). Budget via `rho`.
   */
  optimizer?: "ghc" | "cem";
  /** CEM: a router or schedule artifact whose table is the starting point. */
  init?: string;
  /** CEM: candidates per generation and generations (defaults 10 and 7). */
  population?: number;
  iterations?: number;
}

/** Per step, what the fit measured for every prefix of the unit order (for the β bisection). */
interface StepCurve {
  step: number;
  lambda: number;
  /** mse[j], weight[j] for prefix lengths j = 0 … U. */
  mse: number[];
  weight: number[];
  order: number[];
}

/** The prefix length minimising λ·MSE_j − β·W_j; ties keep the shorter prefix (β = 0 caches nothing). */
export function bestPrefix(curve: Pick<StepCurve, "lambda" | "mse" | "weight">, beta: number): number {
  let best = 0;
  let bestJ = 0;
  for (let j = 1; j < curve.mse.length; j++) {
    const J = curve.lambda * curve.mse[j] - beta * curve.weight[j];
    if (J < bestJ - 1e-15 * Math.max(1, Math.abs(bestJ))) {
      best = j;
      bestJ = J;
    }
  }
  return best;
}

/** β giving a computed fraction closest to ρ on recorded curves (bisection on log β; caching grows with β). */
export function betaForBudget(curves: StepCurve[], units: number, steps: number, rho: number): number {
  const fraction = (beta: number) => 1 - curves.reduce((a, c) => a + bestPrefix(c, beta), 0) / (steps * units);
  let lo = -40;
  let hi = 40;
  for (let k = 0; k < 100; k++) {
    const mid = (lo + hi) / 2;
    if (fraction(Math.exp(mid)) > rho) lo = mid;
    else hi = mid;
  }
  return Math.exp(hi);
}

/** Runs the model unit by unit on arbitrary streams, with chosen units reusing cached pre-gate values. */
class UnitRunner {
  forwards = 0;

  private constructor(
    private readonly pipeline: Pipeline,
    private readonly embed: Segment,
    private readonly head: Segment,
    private readonly units: Segment[],
  ) {}

  static async create(pipeline: Pipeline): Promise<UnitRunner> {
    const m = pipeline.model;
    const units = await Promise.all(m.structure.atoms.map((_, u) => m.range(u, u + 1)));
    return new UnitRunner(pipeline, await m.embed(), await m.head(), units);
  }

  get count(): number {
    return this.units.length;
  }

  /** The stream entering the first unit (h_0). */
  get h0(): string {
    return this.pipeline.model.structure.atoms[0].streamIn;
  }

  /** The embed outputs (h_0 and every context tensor) for a batch [x; x] with [classes; null] (CFG) or x alone. */
  async prepare(x: Float32Array, time: number, set: CalibrationSet): Promise<TensorStore> {
    const m = this.pipeline.manifest;
    const { channels: c, height: h, width: w } = requireImage(m, "HarmoniCa calibration");
    const n = x.length / (c * h * w);
    const guided = usesGuidance({ cfgScale: set.cfg, classes: set.classes });
    const sample = guided ? concatFloat32(x, x) : x;
    const classes = set.classes
      ? Int32Array.from(guided ? [...set.classes, ...set.classes.map(() => defaultCondition(m))] : set.classes)
      : undefined;
    const rows = guided ? 2 * n : n;
    const store: TensorStore = new Map(
      Object.entries(
        feedsFor(m, {
          sample: new OrtTensor("float32", sample, [rows, c, h, w]),
          time: new Float64Array(rows).fill(time),
          condition: classes,
        }),
      ),
    );
    await this.embed.run(store);
    return store;
  }

  /**
   * From unit `from` (its input stream `h`) to the output: units in `cached` add g ⊙ cache[u], the others run and
   * their fresh values go to `fresh`; `streams` receives each unit's input stream. Returns the guided output.
   */
  async forward(
    base: TensorStore,
    from: number,
    h: Tensor,
    cached: ReadonlySet<number>,
    cache: ReadonlyMap<number, Tensor>,
    set: CalibrationSet,
    fresh?: Map<number, Tensor>,
    streams?: Map<number, Tensor>,
  ): Promise<Float32Array> {
    const atoms = this.pipeline.model.structure.atoms;
    const store: TensorStore = new Map(base);
    store.set(atoms[from].streamIn, h);
    for (let u = from; u < this.units.length; u++) {
      const atom = atoms[u];
      streams?.set(u, store.get(atom.streamIn) as Tensor);
      if (cached.has(u)) {
        store.set(
          atom.streamOut,
          residualAdd(
            store.get(atom.streamIn) as Tensor,
            cache.get(u) as Tensor,
            atom.gate ? (store.get(atom.gate) as Tensor) : undefined,
          ),
        );
      } else {
        await this.units[u].run(store);
        fresh?.set(u, store.get(atom.value) as Tensor);
      }
    }
    this.forwards += (this.units.length - from - cached.size) / this.units.length;
    await this.head.run(store);
    const out = store.get(this.pipeline.manifest.output.name)?.data as Float32Array;
    return set.classes !== undefined && set.cfg !== 1 ? guideBatched(out, set.cfg) : out;
  }
}

function mse(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s / a.length;
}

interface PassResult {
  table: (0 | 1)[][];
  curves: StepCurve[];
  /** The student latents x̃_s fed to each step (the replay check). */
  latents: Float32Array[];
}

/**
 * One sequential pass (spec G-HC step 2). `choose` picks the prefix length per step from its curve; HarmoniCa
 * follows its own cached trajectory, L2C the uncached one with the cache taken from the previous step.
 */
async function fitPass(
  runner: UnitRunner,
  set: CalibrationSet,
  sampler: Sampler,
  noise: Float32Array,
  lambda: number[],
  weights: number[],
  mode: "harmonica" | "l2c",
  choose: (curve: StepCurve) => number,
  onProgress?: (done: number, total: number) => void,
): Promise<PassResult> {
  const U = runner.count;
  const S = sampler.steps;
  const table: (0 | 1)[][] = [];
  const curves: StepCurve[] = [];
  const latents: Float32Array[] = [];
  let cache = new Map<number, Tensor>();
  let x = noise;
  for (let s = 0; s < S; s++) {
    onProgress?.(s + 1, S);
    latents.push(x);
    const base = await runner.prepare(x, sampler.times[s], set);
    const fresh = new Map<number, Tensor>();
    const streams = new Map<number, Tensor>();
    const teacher = await runner.forward(base, 0, base.get(runner.h0) as Tensor, new Set(), cache, set, fresh, streams);
    const fitted = s > 0 && (mode === "harmonica" || s % 2 === 1);
    if (!fitted) {
      table.push(new Array(U).fill(1));
      cache = fresh;
      x = sampler.update(x, teacher, sampler.times[s], sampler.times[s + 1]);
      continue;
    }
    // e_u: the output error when unit u alone reuses its cache (a suffix run from u).
    const e: number[] = [];
    for (let u = 0; u < U; u++)
      e.push(mse(teacher, await runner.forward(base, u, streams.get(u) as Tensor, new Set([u]), cache, set)));
    const order = e
      .map((v, u) => ({ key: (lambda[s] * v) / weights[u], u }))
      .sort((a, b) => a.key - b.key || a.u - b.u)
      .map((o) => o.u);
    const curve: StepCurve = { step: s, lambda: lambda[s], mse: [0], weight: [0], order };
    for (let j = 1; j <= U; j++) {
      const chosen = new Set(order.slice(0, j));
      const from = Math.min(...chosen);
      curve.mse.push(mse(teacher, await runner.forward(base, from, streams.get(from) as Tensor, chosen, cache, set)));
      curve.weight.push(curve.weight[j - 1] + weights[order[j - 1]]);
    }
    curves.push(curve);
    const j = choose(curve);
    const cached = new Set(order.slice(0, j));
    table.push(Array.from({ length: U }, (_, u) => (cached.has(u) ? 0 : 1)));
    if (mode === "l2c") {
      // L2C's cache always comes from the previous (uncached) step; the trajectory stays the uncached one.
      cache = fresh;
      x = sampler.update(x, teacher, sampler.times[s], sampler.times[s + 1]);
      continue;
    }
    let student = teacher;
    const next = new Map(fresh);
    if (j > 0) {
      const from = Math.min(...cached);
      const refreshed = new Map<number, Tensor>();
      student = await runner.forward(base, from, streams.get(from) as Tensor, cached, cache, set, refreshed);
      for (const [u, v] of refreshed) next.set(u, v);
      for (const u of cached) next.set(u, cache.get(u) as Tensor);
    }
    cache = next;
    x = sampler.update(x, student, sampler.times[s], sampler.times[s + 1]);
  }
  return { table, curves, latents };
}

/**
 * λ (code form, "marginal"): the final-latent change of enabling the router on one more chunk of steps, all
 * earlier steps already routed: λ_s = mean((x0_k − x0_{k−1})²) / chunk for s in chunk k; floored above 0.
 * [Ditto choice] A chunk where the table caches nothing has no marginal (it would come out 0, and the next fit
 * would then cache everything there for free); it is probed by caching every unit on its steps instead, which
 * measures the same sensitivity without changing the cumulative baseline.
 */
export async function marginalLambda(
  pipeline: Pipeline,
  set: CalibrationSet,
  table: (0 | 1)[][],
  chunk: number,
): Promise<number[]> {
  const S = table.length;
  const ones = table.map((row) => row.map(() => 1 as const));
  const run = async (rows: (0 | 1)[][]) =>
    (await pipeline.generate({ ...calibrationRequest(set, S), cache: tablePolicy(rows) })).samples;
  let previous = await run(ones);
  const lambda = new Array(S).fill(0);
  for (let start = 1; start < S; start += chunk) {
    const end = Math.min(S, start + chunk);
    const routesNothing = table.slice(start, end).every((row) => row.every((v) => v === 1));
    const rows = table.map((row, s) =>
      s >= end ? ones[s] : s >= start && routesNothing ? row.map(() => 0 as const) : row,
    );
    const current = await run(rows);
    const marginal = mse(current, previous) / (end - start);
    for (let s = start; s < end; s++) lambda[s] = Math.max(marginal, 1e-12);
    if (!routesNothing) previous = current;
  }
  lambda[0] = 0;
  return lambda;
}

export async function profileRouter(pipeline: Pipeline, options: RouterOptions = {}): Promise<RouterArtifact> {
  if ((options.mode ?? "harmonica") === "harmonica" && options.optimizer === "cem")
    return profileRouterCem(pipeline, options);
  const started = performance.now();
  const mode = options.mode ?? "harmonica";
  const set = calibrationSet(pipeline, options, 8);
  const S = set.steps;
  const runner = await UnitRunner.create(pipeline);
  const U = runner.count;
  const ctx = await calibrationContext(pipeline, set);
  const flops = ctx.model.atoms.map((a) => a.flops);
  const meanFlops = flops.reduce((a, b) => a + b, 0) / U;
  const weights = options.weights === "equal" ? flops.map(() => 1) : flops.map((f) => f / meanFlops);
  const sampler = createSampler(pipeline.manifest, { steps: S, shift: set.shift });
  const { channels: c, height: h, width: w } = requireImage(pipeline.manifest, "HarmoniCa calibration");
  const noise = batchNoise(set.seeds, c * h * w);
  const rho = options.beta === undefined ? (options.rho ?? 0.6) : null;
  const chunk = options.lambdaChunk ?? Math.max(1, Math.ceil(S / 10));
  const rounds = mode === "l2c" ? 0 : (options.rounds ?? 2);
  let lambda = new Array(S).fill(1);
  if (mode === "harmonica" && options.warm) {
    lambda = await marginalLambda(pipeline, set, readArtifact<ScheduleArtifact>(options.warm, "bac").m, chunk);
  }
  // Without β, the first pass caches a fixed (1 − ρ)·U units per step along the order; its curves then give β.
  const perStep = Math.round((1 - (rho ?? 0.6)) * U);
  let beta = options.beta ?? Number.NaN;
  const fit = (choose: (curve: StepCurve) => number) =>
    fitPass(runner, set, sampler, noise, lambda, weights, mode, choose, options.onProgress);
  const refit = (curves: StepCurve[]) => {
    if (rho !== null) beta = betaForBudget(curves, U, S, rho);
  };
  let pass = await fit((curve) => (Number.isNaN(beta) ? perStep : bestPrefix(curve, beta)));
  refit(pass.curves);
  if (mode === "l2c") {
    // The uncached trajectory does not depend on the choices: the recorded curves give the table directly.
    pass.table = pass.table.map((row, s) => {
      const curve = pass.curves.find((cv) => cv.step === s);
      if (!curve) return row;
      const cached = new Set(curve.order.slice(0, bestPrefix(curve, beta)));
      return row.map((_, u) => (cached.has(u) ? 0 : 1));
    });
  }
  for (let r = 0; r < rounds; r++) {
    lambda = await marginalLambda(pipeline, set, pass.table, chunk);
    refit(pass.curves.map((cv) => ({ ...cv, lambda: lambda[cv.step] })));
    pass = await fit((c) => bestPrefix(c, beta));
  }
  // The trajectory moves with β, so a β aimed on one pass's curves can miss the budget on the next: re-aim it on
  // the latest pass's own curves (twice at most). If the budget still misses, a last pass keeps pace: β's choice,
  // clamped so the running count of cached units stays within half a row of ρ's share of the steps so far, which
  // meets the budget to within one unit per step (spec "Budget mode") at the cost of evening out the rows.
  const missed = () => rho !== null && mode === "harmonica" && Math.abs(computedFraction(pass.table) - rho) > 1 / U;
  for (let k = 0; k < 2 && missed(); k++) {
    refit(pass.curves);
    pass = await fit((c) => bestPrefix(c, beta));
  }
  if (missed() && rho !== null) {
    refit(pass.curves);
    let cached = 0;
    pass = await fit((curve) => {
      const due = ((1 - rho) * S * U * curve.step) / (S - 1) - cached; // row 0 always computes
      const slack = curve.step === S - 1 ? 0 : U / 2; // the last step settles the account
      const j = Math.min(
        U,
        Math.max(0, Math.round(due - slack), Math.min(bestPrefix(curve, beta), Math.round(due + slack))),
      );
      cached += j;
      return j;
    });
  }
  const header = makeHeader(
    "router",
    ctx,
    "branch",
    { seeds: set.seeds, conditions: set.classes ?? [], batch: set.seeds.length },
    `profile --method ${mode === "l2c" ? "l2c" : "harmonica"}`,
  );
  return {
    ...header,
    kind: mode === "l2c" ? "l2c-ghc" : "harmonica-ghc",
    m: pass.table,
    lambda: lambda.map((v) => Number(v.toPrecision(4))),
    beta,
    rho,
    rounds,
    units: ctx.model.atoms.map((a, u) => ({ u, block: a.block, kind: a.kind, w: Number(weights[u].toPrecision(4)) })),
    fit: {
      B: set.seeds.length,
      seeds: set.seeds,
      lambdaMode: mode === "l2c" ? "none" : "marginal",
      lambdaChunk: chunk,
      trajectory: mode === "l2c" ? "uncached" : "student",
    },
    cost: {
      forwards: Math.round(runner.forwards),
      seconds: Math.round((performance.now() - started) / 100) / 10,
      computedFraction: computedFraction(pass.table),
    },
  };
}

/** HarmoniCa's router by the cross-entropy method on the final-sample error (spec deviation; see router-cem.ts). */
async function profileRouterCem(pipeline: Pipeline, options: RouterOptions): Promise<RouterArtifact> {
  const started = performance.now();
  const set = calibrationSet(pipeline, options, 2);
  const ctx = await calibrationContext(pipeline, set);
  const U = ctx.model.atoms.length;
  const rho = options.rho ?? 0.6;
  const population = options.population ?? 10;
  const iterations = options.iterations ?? 7;
  const result = await fitRouterCem(pipeline, set, U, {
    rho,
    population,
    iterations,
    init: options.init ? readArtifact<ScheduleArtifact>(options.init, "router").m : undefined,
    onProgress: options.onProgress,
  });
  const header = makeHeader(
    "router",
    ctx,
    "branch",
    { seeds: set.seeds, conditions: set.classes ?? [], batch: set.seeds.length },
    "profile --method harmonica --set optimizer=cem",
  );
  const flops = ctx.model.atoms.map((a) => a.flops);
  const meanFlops = flops.reduce((a, b) => a + b, 0) / U;
  return {
    ...header,
    kind: "harmonica-cem",
    m: result.table,
    lambda: new Array(set.steps).fill(0),
    beta: 0,
    rho,
    rounds: 0,
    units: ctx.model.atoms.map((a, u) => ({
      u,
      block: a.block,
      kind: a.kind,
      w: Number((flops[u] / meanFlops).toPrecision(4)),
    })),
    fit: {
      B: set.seeds.length,
      seeds: set.seeds,
      lambdaMode: "final",
      lambdaChunk: 0,
      trajectory: "student",
      optimizer: "cem",
      cem: {
        population,
        iterations,
        history: result.history.map((v) => Number(v.toPrecision(4))),
        ...(options.init ? { init: options.init } : {}),
      },
    },
    cost: {
      forwards: result.evaluations * set.steps,
      seconds: Math.round((performance.now() - started) / 100) / 10,
      computedFraction: computedFraction(result.table),
    },
  };
}

/** For tests: one fitting pass with given λ and β, returning the student latents it fed to each step. */
export async function fitPassForTest(pipeline: Pipeline, options: RouterOptions & { beta: number }) {
  const set = calibrationSet(pipeline, options, 2);
  const runner = await UnitRunner.create(pipeline);
  const sampler = createSampler(pipeline.manifest, { steps: set.steps, shift: set.shift });
  const { channels: c, height: h, width: w } = requireImage(pipeline.manifest, "HarmoniCa calibration");
  const weights = new Array(runner.count).fill(1);
  return {
    set,
    ...(await fitPass(
      runner,
      set,
      sampler,
      batchNoise(set.seeds, c * h * w),
      new Array(set.steps).fill(1),
      weights,
      options.mode ?? "harmonica",
      (curve) => bestPrefix(curve, options.beta),
    )),
  };
}
