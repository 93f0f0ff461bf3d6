/**
 * BAC (Block-wise Adaptive Caching, arXiv 2506.13456; shared/specs/bac.md): every unit's pre-gate output is
 * recorded at every step of a few uncached calibration runs; per unit, a step × step cosine-similarity matrix
 * feeds the Adaptive Caching Scheduler, a dynamic program choosing M update steps that maximise the similarity
 * between each reused step and its cached step; the Bubbling Union then gives the n units with the largest caching
 * error every update step of the MLP units at or after their layer, stopping errors from surging downstream.
 */

import type { Tensor } from "onnxruntime-common";
import type { ScheduleArtifact } from "../cache/policies/schedule.ts";
import type { CachePolicy, ModelInfo } from "../cache/policy.ts";
import { atomUnits } from "../cache/policy.ts";
import type { AtomKind } from "../model/discover.ts";
import type { Pipeline } from "../pipeline.ts";
import { concatFloat32 } from "../runtime/tensor-ops.ts";
import { makeHeader } from "./artifact.ts";
import { type CalibrationOptions, calibrationContext, calibrationSet, record } from "./calibration.ts";

export interface BacArtifact extends ScheduleArtifact {
  M: number;
  n: number;
  metric: "cosine";
  units: { u: number; block: number; kind: AtomKind; loss: number; acs: number[]; final: number[] }[];
  promoted: number[];
  /** Per unit, the step × step similarity (rounded), for plots. */
  similarity: number[][][];
  tables: { acs: (0 | 1)[][]; unified: (0 | 1)[][]; uniform: (0 | 1)[][]; staggered: (0 | 1)[][] };
}

export interface BacOptions extends CalibrationOptions {
  /** Update steps per unit, step 0 included (default round(S/3)). */
  budget?: number;
  /** Units promoted by the Bubbling Union (default 3). */
  promote?: number;
  forceLast?: boolean;
}

export interface UnitRecording {
  similarity: number[][][];
  loss: number[];
}

/** Records every unit's pre-gate output at every step, then similarity matrices and caching errors. */
export async function recordUnits(
  pipeline: Pipeline,
  set: ReturnType<typeof calibrationSet>,
  options: CalibrationOptions,
): Promise<UnitRecording> {
  const values: Float32Array[][] = []; // [unit][step] (rows of one step concatenated)
  const recorder: CachePolicy = {
    name: "record-units",
    spec: "record-units",
    units: atomUnits,
    createState: (ctx) => ({
      plan: () => new Array(ctx.units.length).fill("compute"), // one session per step, every value exposed
      decide: () => "compute",
      update: (u, computed, view) => {
        const v = computed.value().data as Float32Array;
        values[u] ??= [];
        const previous = values[u][view.step];
        values[u][view.step] = previous ? concatFloat32(previous, v) : v; // separate CFG: the uncond pass arrives second
      },
      approximate: () => undefined,
      bytes: () => 0,
    }),
  };
  let rows = 0;
  await record(
    pipeline,
    set,
    (event) => {
      const first = pipeline.model.structure.atoms[0].value;
      rows = (event.store.get(first) as Tensor).dims[0] * (event.pass === "uncond" ? 2 : 1);
    },
    options,
    recorder,
  );
  return {
    similarity: values.map((steps) => similarityMatrix(steps, rows)),
    loss: values.map((steps) => cachingError(steps, rows)),
  };
}

/** S[i][j] = cos(F_i, F_j), averaged over batch rows (each calibration item and CFG branch). */
export function similarityMatrix(steps: Float32Array[], rows: number): number[][] {
  const K = steps.length;
  const per = steps[0].length / rows;
  const norms = steps.map((f) => Array.from({ length: rows }, (_, r) => Math.sqrt(dot(f, f, r * per, per))));
  const S = Array.from({ length: K }, () => new Array(K).fill(1));
  for (let i = 0; i < K; i++) {
    for (let j = i + 1; j < K; j++) {
      let sum = 0;
      for (let r = 0; r < rows; r++)
        sum += dot(steps[i], steps[j], r * per, per) / Math.max(1e-12, norms[i][r] * norms[j][r]);
      S[i][j] = S[j][i] = sum / rows;
    }
  }
  return S;
}

/** ℓ_u = mean over step pairs i < j of mean |F_i − F_j| (the spec's ranking of units by caching error). */
export function cachingError(steps: Float32Array[], _rows: number): number {
  let total = 0;
  let pairs = 0;
  for (let i = 0; i < steps.length; i++) {
    for (let j = i + 1; j < steps.length; j++) {
      let d = 0;
      const a = steps[i];
      const b = steps[j];
      for (let k = 0; k < a.length; k++) d += Math.abs(a[k] - b[k]);
      total += d / a.length;
      pairs++;
    }
  }
  return total / Math.max(1, pairs);
}

function dot(a: Float32Array, b: Float32Array, offset: number, length: number): number {
  let s = 0;
  for (let k = offset; k < offset + length; k++) s += a[k] * b[k];
  return s;
}

/**
 * The ACS dynamic program: the M update steps (step 0 included) maximising Σ over segments [a, b] of
 * Σ_{t=a}^{b} S[a][t]. Unset states are −∞ (the author code's 0 lets infeasible states win; spec step 5).
 */
export function acsSchedule(S: number[][], M: number): { steps: number[]; score: number } {
  const K = S.length;
  const m = Math.max(1, Math.min(M, K));
  // cost[a][b] = Σ_{t=a}^{b} S[a][t]
  const cost = Array.from({ length: K }, (_, a) => {
    const row = new Array(K).fill(Number.NEGATIVE_INFINITY);
    let acc = 0;
    for (let b = a; b < K; b++) {
      acc += S[a][b];
      row[b] = acc;
    }
    return row;
  });
  const dp = Array.from({ length: m + 1 }, () => new Array(K).fill(Number.NEGATIVE_INFINITY));
  const ptr = Array.from({ length: m + 1 }, () => new Array(K).fill(-1));
  for (let i = 0; i < K; i++) dp[1][i] = cost[0][i];
  for (let k = 2; k <= m; k++) {
    for (let i = k - 1; i < K; i++) {
      for (let j = k - 2; j < i; j++) {
        const v = dp[k - 1][j] + cost[j + 1][i];
        if (v > dp[k][i]) {
          dp[k][i] = v;
          ptr[k][i] = j;
        }
      }
    }
  }
  const steps = [0];
  let i = K - 1;
  for (let k = m; k >= 2; k--) {
    const j = ptr[k][i];
    steps.push(j + 1);
    i = j;
  }
  return { steps: [...new Set(steps)].sort((a, b) => a - b), score: dp[m][K - 1] };
}

/** Bubbling Union: each promoted unit takes every update step of the MLP units in its layer or later ("≥"). */
export function bubblingUnion(
  sets: number[][],
  units: { block: number; kind: AtomKind }[],
  promoted: number[],
): number[][] {
  return sets.map((steps, u) => {
    if (!promoted.includes(u)) return steps;
    const union = new Set(steps);
    units.forEach((v, k) => {
      if (v.kind === "mlp" && v.block >= units[u].block) for (const s of sets[k]) union.add(s);
    });
    return [...union].sort((a, b) => a - b);
  });
}

export function toTable(sets: number[][], steps: number): (0 | 1)[][] {
  return Array.from({ length: steps }, (_, s) => sets.map((set) => (s === 0 || set.includes(s) ? 1 : 0)));
}

function withLast(steps: number[], K: number, forceLast: boolean): number[] {
  return forceLast && !steps.includes(K - 1) ? [...steps, K - 1] : steps;
}

/** M update steps evenly spaced, step 0 first (the "uniform" ablation row). */
export function uniformSteps(K: number, M: number): number[] {
  return [...new Set(Array.from({ length: M }, (_, k) => Math.round((k * K) / M)))];
}

/**
 * The uniform grid shifted by a per-unit phase (unit u of U by u/U of an interval): as many updates as "uniform",
 * but desynchronised like per-unit ACS. A Ditto diagnostic, not in the paper: it separates the cost of
 * desynchronised refreshes from the choice of steps.
 */
export function staggeredSteps(K: number, M: number, u: number, U: number): number[] {
  const shift = Math.floor(((K / M) * u) / U); // less than one interval
  return [...new Set(uniformSteps(K, M).map((s) => (s === 0 ? 0 : Math.min(K - 1, s + shift))))];
}

export async function profileBac(pipeline: Pipeline, options: BacOptions = {}): Promise<BacArtifact> {
  const set = calibrationSet(pipeline, options, 4);
  const K = set.steps;
  const M = options.budget ?? Math.round(K / 3);
  const n = options.promote ?? 3;
  const forceLast = options.forceLast ?? true;
  const { similarity, loss } = await recordUnits(pipeline, set, options);
  const ctx = await calibrationContext(pipeline, set);
  const info: ModelInfo = ctx.model;
  const acs = similarity.map((S) => withLast(acsSchedule(S, M).steps, K, forceLast));
  const promoted = loss
    .map((l, u) => ({ l, u }))
    .sort((a, b) => b.l - a.l)
    .slice(0, n)
    .map((x) => x.u)
    .sort((a, b) => a - b);
  const final = bubblingUnion(acs, info.atoms, promoted);
  const average = similarity[0].map((row, i) =>
    row.map((_, j) => similarity.reduce((s, S) => s + S[i][j], 0) / similarity.length),
  );
  const unifiedSteps = withLast(acsSchedule(average, M).steps, K, forceLast);
  const uniform = withLast(uniformSteps(K, M), K, forceLast);
  return {
    ...makeHeader(
      "bac",
      ctx,
      "branch",
      { seeds: set.seeds, conditions: set.classes ?? [], batch: set.seeds.length },
      "profile --method bac",
    ),
    M,
    n,
    metric: "cosine",
    units: info.atoms.map((a, u) => ({
      u,
      block: a.block,
      kind: a.kind,
      loss: Math.round(loss[u] * 1e6) / 1e6,
      acs: acs[u],
      final: final[u],
    })),
    promoted,
    m: toTable(final, K),
    tables: {
      acs: toTable(acs, K),
      unified: toTable(
        info.atoms.map(() => unifiedSteps),
        K,
      ),
      uniform: toTable(
        info.atoms.map(() => uniform),
        K,
      ),
      staggered: toTable(
        info.atoms.map((_, u) => withLast(staggeredSteps(K, M, u, info.atoms.length), K, forceLast)),
        K,
      ),
    },
    similarity: similarity.map((S) => S.map((row) => row.map((v) => Math.round(v * 1e4) / 1e4))),
  };
}
