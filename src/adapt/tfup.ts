/**
 * TFUP (Long et al., "Training-Free Unsupervised Prompt for Vision-Language Models", 2024; spec
 * shared/specs/tfup.md): adapts a frozen feature + prototype classifier to an unlabeled set with no training and no
 * labels. `buildTfupCache` picks, per class, the most confident and most prototypical pool samples as cache keys
 * (Feature Cache Model); `predictTfup` adds to the zero-shot logits a Tip-Adapter kernel over a multi-level
 * (cosine × rescaled-KL) similarity to those keys (Multi-level Similarity Measure). Deterministic: no randomness;
 * ties in confidence or prototype score go to the lower pool index.
 *
 * Works on any features a caller brings: CLIP-like embeddings with text prototypes (head "cosine"), or a
 * classifier's penultimate features with its last linear layer (head "linear").
 */
import { InputError } from "../errors.ts";
import {
  argmaxRows,
  expEntries,
  klMatrix,
  logSoftmaxRows,
  type Matrix,
  matmulT,
  matrix,
  normalizeRows,
  rowMinMax,
  scaleAdd,
} from "./linalg.ts";

/** Class embeddings W [C, D] (text features, or the rows of a last linear layer) and that layer's bias [C]. */
export interface ClassEmbeddings {
  weights: Float32Array;
  classes: number;
  dim: number;
  bias?: Float32Array;
}

/**
 * - "cosine" (CLIP-like, the paper): z = s_zs · f̂Ŵᵀ and semantic distributions softmax(τ_sem · f̂Ŵᵀ).
 * - "linear" (a classifier's last layer): z = f·Wᵀ + b, the classifier's own logits, and softmax(τ_sem · z) — the
 *   spec's mapping for raw logits, with τ_sem = 1.
 */
export type TfupHead = "cosine" | "linear";

export interface TfupOptions {
  head?: TfupHead;
  /** Cache weight α (official default 0.3). Larger: the cache overrides the zero-shot logits more. */
  alpha?: number;
  /** Kernel sharpness β in exp(−β(1 − A)) (official default 1). Larger: only the closest keys count. */
  beta?: number;
  /** Semantic temperature τ_sem (default 10 for cosine heads, 1 for linear heads). */
  tauSem?: number;
  /** Zero-shot logit scale s_zs for cosine heads (default 100, CLIP's); unused by linear heads. */
  sZs?: number;
  /** K = clip(⌊N · ρ_cache / C⌋, K_min, K_max): keys per class (defaults 0.3, 9, 16). */
  rhoCache?: number;
  kMin?: number;
  kMax?: number;
}

export type TfupParams = Required<TfupOptions>;

export const TFUP_DEFAULTS = { alpha: 0.3, beta: 1, sZs: 100, rhoCache: 0.3, kMin: 9, kMax: 16 } as const;

export interface TfupCache {
  params: TfupParams;
  embeddings: ClassEmbeddings;
  /** Keys per class actually used. */
  k: number;
  /** Normalised key features K̂ [Nc, D]. */
  keys: Matrix;
  /** Class of each key (the one-hot values V, stored as ids) [Nc]. */
  values: Int32Array;
  /** Pool index of each key [Nc]. */
  poolIndices: Int32Array;
  /** log Q = log-softmax of the keys' semantic scores [Nc, C]. */
  logQ: Matrix;
  /** Pool samples kept under more than one class (extra occurrences; the reference keeps them, so do we). */
  duplicates: number;
  poolSize: number;
}

export interface TfupPrediction {
  /** Adapted logits z + α·exp(−β(1 − A))·V [B, C]. */
  logits: Float32Array;
  /** The zero-shot logits z [B, C]. */
  zeroShot: Float32Array;
  predictions: Int32Array;
  zeroShotPredictions: Int32Array;
}

export function resolveTfupParams(options: TfupOptions = {}): TfupParams {
  const head = options.head ?? "cosine";
  if (head !== "cosine" && head !== "linear")
    throw new InputError("OPTION_INVALID", `TFUP head must be "cosine" or "linear" (got '${head}')`);
  const p: TfupParams = {
    head,
    alpha: options.alpha ?? TFUP_DEFAULTS.alpha,
    beta: options.beta ?? TFUP_DEFAULTS.beta,
    tauSem: options.tauSem ?? (head === "linear" ? 1 : 10),
    sZs: options.sZs ?? TFUP_DEFAULTS.sZs,
    rhoCache: options.rhoCache ?? TFUP_DEFAULTS.rhoCache,
    kMin: options.kMin ?? TFUP_DEFAULTS.kMin,
    kMax: options.kMax ?? TFUP_DEFAULTS.kMax,
  };
  const check = (name: keyof TfupParams, ok: boolean, what: string) => {
    if (!ok) throw new InputError("OPTION_INVALID", `TFUP option ${name} must be ${what} (got ${p[name]})`);
  };
  check("alpha", Number.isFinite(p.alpha) && p.alpha >= 0, "a finite number ≥ 0");
  check("beta", Number.isFinite(p.beta) && p.beta >= 0, "a finite number ≥ 0");
  check("tauSem", Number.isFinite(p.tauSem) && p.tauSem > 0, "a finite number > 0");
  check("sZs", Number.isFinite(p.sZs) && p.sZs > 0, "a finite number > 0");
  check("rhoCache", Number.isFinite(p.rhoCache) && p.rhoCache > 0, "a finite number > 0");
  check("kMin", Number.isInteger(p.kMin) && p.kMin >= 1, "an integer ≥ 1");
  check("kMax", Number.isInteger(p.kMax) && p.kMax >= p.kMin, `an integer ≥ kMin (${p.kMin})`);
  return p;
}

/** K = clip(⌊N · ρ_cache / C⌋, K_min, K_max) (spec, build step 2). With small pools K_min dominates. */
export function keysPerClass(poolSize: number, classes: number, params: TfupParams): number {
  return Math.min(params.kMax, Math.max(params.kMin, Math.floor((poolSize * params.rhoCache) / classes)));
}

/**
 * Feature Cache Model (spec, build step 3) on semantic log-distributions logP [N, C]: per class c, the top 2K
 * samples by P[:, c], then the K of them with the smallest prototype score π_j = Σ_m KL(P_j ‖ P_m). Returns the
 * chosen pool indices, class-major, each class's keys in order of increasing π.
 */
export function selectKeys(logP: Matrix, k: number): { indices: Int32Array; values: Int32Array } {
  const { rows: n, cols: classes } = logP;
  const p = expEntries(logP);
  const indices: number[] = [];
  const values: number[] = [];
  const order = Array.from({ length: n }, (_, i) => i);
  for (let c = 0; c < classes; c++) {
    const byConfidence = [...order].sort((a, b) => p.data[b * classes + c] - p.data[a * classes + c] || a - b);
    const candidates = byConfidence.slice(0, Math.min(2 * k, n));
    // π_j = Σ_m Σ_k P_jk (log P_jk − log P_mk) = M·Σ_k P_jk log P_jk − Σ_k P_jk Σ_m log P_mk.
    const sumLog = new Float64Array(classes);
    for (const m of candidates) for (let q = 0; q < classes; q++) sumLog[q] += logP.data[m * classes + q];
    const pi = new Map<number, number>();
    for (const j of candidates) {
      let s = 0;
      for (let q = 0; q < classes; q++) {
        const pj = p.data[j * classes + q];
        s += pj * (candidates.length * logP.data[j * classes + q] - sumLog[q]);
      }
      pi.set(j, s);
    }
    const kept = [...candidates].sort((a, b) => (pi.get(a) as number) - (pi.get(b) as number) || a - b).slice(0, k);
    for (const j of kept) {
      indices.push(j);
      values.push(c);
    }
  }
  return { indices: Int32Array.from(indices), values: Int32Array.from(values) };
}

/** Builds the cache from unlabeled pool features [N, D] (spec, build). */
export function buildTfupCache(pool: Float32Array, embeddings: ClassEmbeddings, options: TfupOptions = {}): TfupCache {
  const params = resolveTfupParams(options);
  checkEmbeddings(embeddings);
  const f = featureMatrix(pool, embeddings.dim, "pool features");
  if (f.rows === 0) throw new InputError("INPUT_INVALID", "TFUP needs a non-empty pool to build its cache");
  const logP = semanticLogDistributions(f, embeddings, params);
  const k = keysPerClass(f.rows, embeddings.classes, params);
  const { indices, values } = selectKeys(logP, k);
  const keys = normalizeRows(gatherRows(f, indices));
  const logQ = gatherRows(logP, indices);
  const distinct = new Set(indices).size;
  return {
    params,
    embeddings,
    k,
    keys,
    values,
    poolIndices: indices,
    logQ,
    duplicates: indices.length - distinct,
    poolSize: f.rows,
  };
}

/** Adapted logits for query features [B, D] (spec, predict). */
export function predictTfup(features: Float32Array, cache: TfupCache): TfupPrediction {
  const { params, embeddings } = cache;
  const f = featureMatrix(features, embeddings.dim, "query features");
  const classes = embeddings.classes;
  const z = zeroShotLogits(f, embeddings, params);
  const r = matmulT(normalizeRows(f), cache.keys); // R = f̂ K̂ᵀ [B, Nc]
  const logPq = semanticLogDistributions(f, embeddings, params);
  const dTilde = rowMinMax(klMatrix(logPq, cache.logQ)); // D̃ ∈ [0, 1] [B, Nc]
  const logits = new Float32Array(f.rows * classes);
  const nc = cache.values.length;
  for (let i = 0; i < f.rows; i++) {
    const cacheLogits = new Float64Array(classes);
    for (let j = 0; j < nc; j++) {
      const a = r.data[i * nc + j] * 2 * (1 - dTilde.data[i * nc + j]); // A = R ⊙ S, S = 2(1 − D̃) ∈ [0, 2]
      cacheLogits[cache.values[j]] += Math.exp(-params.beta * (1 - a)); // Tip-Adapter kernel, · V (one-hot)
    }
    for (let c = 0; c < classes; c++) logits[i * classes + c] = z.data[i * classes + c] + params.alpha * cacheLogits[c];
  }
  const zeroShot = Float32Array.from(z.data);
  return {
    logits,
    zeroShot,
    predictions: argmaxRows(logits, f.rows, classes),
    zeroShotPredictions: argmaxRows(zeroShot, f.rows, classes),
  };
}

/** z: s_zs · f̂Ŵᵀ (cosine head) or f·Wᵀ + b (linear head). */
export function zeroShotLogits(f: Matrix, e: ClassEmbeddings, params: TfupParams): Matrix {
  const w = matrix(e.weights, e.classes, e.dim);
  if (params.head === "linear") return scaleAdd(matmulT(f, w), 1, e.bias);
  return scaleAdd(matmulT(normalizeRows(f), normalizeRows(w)), params.sZs);
}

/** log softmax(τ_sem · f̂Ŵᵀ) (cosine head) or log softmax(τ_sem · (f·Wᵀ + b)) (linear head), [N, C]. */
function semanticLogDistributions(f: Matrix, e: ClassEmbeddings, params: TfupParams): Matrix {
  const w = matrix(e.weights, e.classes, e.dim);
  const scores =
    params.head === "linear"
      ? scaleAdd(matmulT(f, w), params.tauSem, scaleBias(e.bias, params.tauSem))
      : scaleAdd(matmulT(normalizeRows(f), normalizeRows(w)), params.tauSem);
  return logSoftmaxRows(scores);
}

function scaleBias(bias: Float32Array | undefined, s: number): Float64Array | undefined {
  return bias ? Float64Array.from(bias, (b) => b * s) : undefined;
}

function gatherRows(m: Matrix, indices: Int32Array): Matrix {
  const out = new Float64Array(indices.length * m.cols);
  indices.forEach((row, i) => {
    out.set(m.data.subarray(row * m.cols, (row + 1) * m.cols), i * m.cols);
  });
  return { data: out, rows: indices.length, cols: m.cols };
}

function featureMatrix(data: Float32Array, dim: number, what: string): Matrix {
  if (data.length % dim !== 0)
    throw new InputError(
      "INPUT_INVALID",
      `TFUP ${what} hold ${data.length} values, not a whole number of rows of the embedding dimension ${dim}`,
      { length: data.length, dim },
    );
  const bad = data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0)
    throw new InputError(
      "INPUT_INVALID",
      `TFUP ${what} hold a non-finite value (${data[bad]}) at row ${Math.floor(bad / dim)}`,
    );
  return matrix(data, data.length / dim, dim);
}

function checkEmbeddings(e: ClassEmbeddings): void {
  if (!Number.isInteger(e.classes) || e.classes < 2 || !Number.isInteger(e.dim) || e.dim < 1)
    throw new InputError(
      "INPUT_INVALID",
      `TFUP class embeddings need ≥ 2 classes and dim ≥ 1 (got ${e.classes} × ${e.dim})`,
    );
  if (e.weights.length !== e.classes * e.dim)
    throw new InputError(
      "INPUT_INVALID",
      `TFUP class embeddings hold ${e.weights.length} values, expected classes × dim = ${e.classes} × ${e.dim}`,
    );
  if (e.bias && e.bias.length !== e.classes)
    throw new InputError("INPUT_INVALID", `TFUP class bias has ${e.bias.length} entries, expected ${e.classes}`);
  if (!e.weights.every(Number.isFinite) || (e.bias && !e.bias.every(Number.isFinite)))
    throw new InputError("INPUT_INVALID", "TFUP class embeddings hold a non-finite value");
}
