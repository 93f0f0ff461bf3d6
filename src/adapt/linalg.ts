/**
 * The small dense kernels TFUP is made of: row normalisation, A·Bᵀ, row log-softmax, the KL matrix as a GEMM and
 * the row min-max. Matrices are row-major; values are computed in double precision (JavaScript numbers) and kept in
 * Float64Array, so log-probabilities of near-zero classes stay finite (the reference's fp16 KL produced inf/NaN,
 * spec pitfall 3).
 */

/** A row-major matrix: `rows` × `cols` values. */
export interface Matrix {
  data: Float64Array;
  rows: number;
  cols: number;
}

export function matrix(data: ArrayLike<number>, rows: number, cols: number): Matrix {
  return { data: Float64Array.from(data), rows, cols };
}

/** Each row divided by its L2 norm (x̂). An all-zero row stays zero: its cosine to anything is then 0. */
export function normalizeRows(m: Matrix): Matrix {
  const out = new Float64Array(m.data.length);
  for (let i = 0; i < m.rows; i++) {
    let s = 0;
    for (let j = 0; j < m.cols; j++) s += m.data[i * m.cols + j] ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < m.cols; j++) out[i * m.cols + j] = m.data[i * m.cols + j] * inv;
  }
  return { data: out, rows: m.rows, cols: m.cols };
}

/** A·Bᵀ: [n, d] × [m, d] → [n, m]. */
export function matmulT(a: Matrix, b: Matrix): Matrix {
  const { rows: n, cols: d } = a;
  const m = b.rows;
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += a.data[i * d + k] * b.data[j * d + k];
      out[i * m + j] = s;
    }
  }
  return { data: out, rows: n, cols: m };
}

/** Every entry times `s`, plus `bias[col]` when given (a linear layer's bias). */
export function scaleAdd(m: Matrix, s: number, bias?: ArrayLike<number>): Matrix {
  const out = new Float64Array(m.data.length);
  for (let i = 0; i < m.data.length; i++) out[i] = s * m.data[i] + (bias ? bias[i % m.cols] : 0);
  return { data: out, rows: m.rows, cols: m.cols };
}

/** Row-wise log-softmax, max-shifted so that no exp overflows. */
export function logSoftmaxRows(m: Matrix): Matrix {
  const out = new Float64Array(m.data.length);
  for (let i = 0; i < m.rows; i++) {
    const row = m.data.subarray(i * m.cols, (i + 1) * m.cols);
    let max = Number.NEGATIVE_INFINITY;
    for (const v of row) max = Math.max(max, v);
    let s = 0;
    for (const v of row) s += Math.exp(v - max);
    const logZ = max + Math.log(s);
    for (let j = 0; j < m.cols; j++) out[i * m.cols + j] = row[j] - logZ;
  }
  return { data: out, rows: m.rows, cols: m.cols };
}

export function expEntries(m: Matrix): Matrix {
  return { data: m.data.map(Math.exp), rows: m.rows, cols: m.cols };
}

/**
 * KL(P_i ‖ Q_j) for every pair, as a GEMM (spec, implementation notes): D = rowsum(P ⊙ log P) − P · (log Q)ᵀ.
 * Takes log-probabilities: logP [n, C], logQ [m, C] → [n, m].
 */
export function klMatrix(logP: Matrix, logQ: Matrix): Matrix {
  const p = expEntries(logP);
  const cross = matmulT(p, logQ); // Σ_k P_ik log Q_jk
  const out = new Float64Array(logP.rows * logQ.rows);
  for (let i = 0; i < logP.rows; i++) {
    let negEntropy = 0;
    for (let k = 0; k < logP.cols; k++) negEntropy += p.data[i * p.cols + k] * logP.data[i * p.cols + k];
    for (let j = 0; j < logQ.rows; j++) out[i * logQ.rows + j] = negEntropy - cross.data[i * logQ.rows + j];
  }
  return { data: out, rows: logP.rows, cols: logQ.rows };
}

/**
 * Row-wise min-max to [0, 1] (spec, predict step 4). The reference z-scores each row first, which cancels in the
 * min-max, so it is skipped. A constant row (no spread to rescale) maps to 0.5 — a Ditto choice.
 */
export function rowMinMax(m: Matrix): Matrix {
  const out = new Float64Array(m.data.length);
  for (let i = 0; i < m.rows; i++) {
    const row = m.data.subarray(i * m.cols, (i + 1) * m.cols);
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (const v of row) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    const range = hi - lo;
    for (let j = 0; j < m.cols; j++) out[i * m.cols + j] = range > 0 ? (row[j] - lo) / range : 0.5;
  }
  return { data: out, rows: m.rows, cols: m.cols };
}

/** Index of the largest entry of each row (first one on ties). */
export function argmaxRows(data: ArrayLike<number>, rows: number, cols: number): Int32Array {
  const out = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    let best = 0;
    for (let k = 1; k < cols; k++) if (data[i * cols + k] > data[i * cols + best]) best = k;
    out[i] = best;
  }
  return out;
}
