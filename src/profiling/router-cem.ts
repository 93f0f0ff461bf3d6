/**
 * HarmoniCa's router fitted by the cross-entropy method on the measured final-image error (Ditto; issue 23).
 * HarmoniCa trains per-step router logits against IEPO, a proxy λ(s) for each step's effect on the final image,
 * along the student's own cached trajectory (SDT). Without gradients through ONNX Runtime, G-HC makes those choices
 * greedily, step by step, trusting λ. Here the objective IEPO stands in for is measured directly instead: a
 * candidate table is run from the calibration noise with its own caches (the SDT trajectory) and scored by the
 * final sample's MSE against the uncached one. The search is over low-rank logits θ[s][u] = a_s + b_u (S + U
 * numbers instead of S·U, so a few dozen evaluations suffice); a table caches the K lowest-logit cells of steps ≥ 1,
 * K = round((1 − ρ)·(S − 1)·U) … so every candidate costs exactly the target compute. Step 0 always computes.
 */
import { tablePolicy } from "../cache/policies/schedule.ts";
import { InputError } from "../errors.ts";
import type { Pipeline } from "../pipeline.ts";
import { gaussianNoise } from "../sampling/noise.ts";
import { type CalibrationSet, calibrationRequest } from "./calibration.ts";

export interface CemOptions {
  /** Target computed fraction over all S·U cells (step 0 included). */
  rho: number;
  /** Candidates per generation (default 10). */
  population?: number;
  /** Generations (default 7). */
  iterations?: number;
  /** Elite count per generation (default population / 3, at least 2). */
  elite?: number;
  /** Smoothing of the mean/σ update (default 0.7). */
  smoothing?: number;
  /**
   * A table to start from (e.g. an L2C router: HarmoniCa's search space contains L2C's). The mean logits become
   * a_s = 2·(computed share of row s) − 1 and b_u = (computed share of column u) − ½, and σ starts at 0.3 instead of 1,
   * so the first candidate reproduces the table up to the budget's tie-breaking.
   */
  init?: (0 | 1)[][];
  /** Seed of the candidate draws (default 0). */
  seed?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface CemResult {
  table: (0 | 1)[][];
  /** Final-sample MSE of the best table on the calibration set. */
  mse: number;
  /** Best MSE after each generation. */
  history: number[];
  evaluations: number;
}

/** The table a logit vector [a_0 … a_{S−1}, b_0 … b_{U−1}] gives at a budget of `cached` cells (lowest logits). */
export function tableFromLogits(z: ArrayLike<number>, steps: number, units: number, cached: number): (0 | 1)[][] {
  const cells: { s: number; u: number; logit: number }[] = [];
  for (let s = 1; s < steps; s++) for (let u = 0; u < units; u++) cells.push({ s, u, logit: z[s] + z[steps + u] });
  cells.sort((x, y) => x.logit - y.logit || x.s - y.s || x.u - y.u);
  const table = Array.from({ length: steps }, () => new Array<0 | 1>(units).fill(1));
  for (const { s, u } of cells.slice(0, Math.max(0, Math.min(cells.length, cached)))) table[s][u] = 0;
  return table;
}

/** The number of cells to cache for a computed fraction ρ over the whole S × U table (step 0 always computes). */
export function cachedCells(rho: number, steps: number, units: number): number {
  return Math.min((steps - 1) * units, Math.max(0, Math.round((1 - rho) * steps * units)));
}

export async function fitRouterCem(
  pipeline: Pipeline,
  set: CalibrationSet,
  units: number,
  options: CemOptions,
): Promise<CemResult> {
  const S = set.steps;
  const D = S + units;
  const population = options.population ?? 10;
  const iterations = options.iterations ?? 7;
  const elite = options.elite ?? Math.max(2, Math.round(population / 3));
  const alpha = options.smoothing ?? 0.7;
  const cached = cachedCells(options.rho, S, units);
  const request = calibrationRequest(set, S);
  const reference = (await pipeline.generate(request)).samples;
  const score = async (table: (0 | 1)[][]) => {
    const out = (await pipeline.generate({ ...request, cache: tablePolicy(table) })).samples;
    let sum = 0;
    for (let i = 0; i < out.length; i++) sum += (out[i] - reference[i]) ** 2;
    return sum / out.length;
  };
  const mean = new Float64Array(D);
  const sigma = new Float64Array(D).fill(options.init ? 0.3 : 1);
  if (options.init) {
    const t = options.init;
    if (t.length !== S || t.some((row) => row.length !== units)) {
      throw new InputError(
        "OPTION_INVALID",
        `the CEM start table is ${t.length} × ${t[0]?.length ?? 0}, but this fit is ${S} steps × ${units} units: ` +
          "start from a router fitted for the same model and step count",
      );
    }
    for (let s = 0; s < S; s++) mean[s] = 2 * (t[s].reduce((a: number, v) => a + v, 0) / units) - 1;
    for (let u = 0; u < units; u++) mean[S + u] = t.reduce((a: number, row) => a + row[u], 0) / S - 0.5;
  }
  let best = { table: tableFromLogits(mean, S, units, cached), mse: Number.POSITIVE_INFINITY };
  const history: number[] = [];
  let evaluations = 0;
  for (let it = 0; it < iterations; it++) {
    const draws = gaussianNoise((options.seed ?? 0) * 7919 + it, population * D);
    const scored: { z: Float64Array; mse: number }[] = [];
    for (let k = 0; k < population; k++) {
      options.onProgress?.(it * population + k + 1, iterations * population);
      // The first candidate of each generation is the current mean itself (keeps the search from losing it).
      const z = Float64Array.from({ length: D }, (_, d) => mean[d] + (k === 0 ? 0 : sigma[d] * draws[k * D + d]));
      const table = tableFromLogits(z, S, units, cached);
      const mse = await score(table);
      evaluations++;
      scored.push({ z, mse });
      if (mse < best.mse) best = { table, mse };
    }
    scored.sort((x, y) => x.mse - y.mse);
    const top = scored.slice(0, elite);
    for (let d = 0; d < D; d++) {
      const m = top.reduce((acc, c) => acc + c.z[d], 0) / elite;
      const v = top.reduce((acc, c) => acc + (c.z[d] - m) ** 2, 0) / elite;
      mean[d] = alpha * m + (1 - alpha) * mean[d];
      sigma[d] = Math.max(0.05, alpha * Math.sqrt(v) + (1 - alpha) * sigma[d]);
    }
    history.push(best.mse);
  }
  return { table: best.table, mse: best.mse, history, evaluations };
}
