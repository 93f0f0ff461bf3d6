/**
 * TFMQ's weight range search (shared/specs/tfmq.md, "Token-path weights"): per output channel, try the ranges
 * [−α·m, α·m] with m = max|w| for α = 1, 0.99, …, 0.21 (80 shrink ratios) and keep the one with the smallest
 * L_{2.4} quantization error Σ|w − Q(w)|^2.4. Clipping a lone outlier costs its own error once but refines the step
 * for every other weight of the channel, so a channel with an outlier picks α < 1. Symmetric int8, zero point 0.
 */

/** Ditto's weight scheme: symmetric signed 8 bit; −128 is left unused so the grid is symmetric. */
export const INT8_MAX = 127;
export const SHRINK_RATIOS = 80;
export const SHRINK_STEP = 0.01;
export const ERROR_POWER = 2.4;

export interface ChannelRange {
  /** The chosen shrink ratio α ∈ {1, 0.99, …, 0.21}. */
  alpha: number;
  /** Quantization step: α·max|w| / 127 (1 for an all-zero channel). */
  scale: number;
  /** Σ|w − Q(w)|^2.4 at the chosen α. */
  error: number;
}

/** Quantize-dequantize one value with a symmetric int8 grid of step `scale`. */
export function fakeQuantize(w: number, scale: number): number {
  const q = Math.round(w / scale);
  return Math.max(-INT8_MAX, Math.min(INT8_MAX, q)) * scale;
}

/** L_{2.4} error of quantizing `values` with step `scale`. */
export function rangeError(values: ArrayLike<number>, scale: number): number {
  // Written out (no fakeQuantize call): this loop runs 80 times over every weight of the model.
  const limit = INT8_MAX * scale;
  let error = 0;
  for (let i = 0; i < values.length; i++) {
    const w = values[i];
    const e = w > limit ? w - limit : w < -limit ? -limit - w : Math.abs(w - Math.round(w / scale) * scale);
    if (e > 0) error += Math.exp(ERROR_POWER * Math.log(e));
  }
  return error;
}

/**
 * |f|^2.4 for a rounding residual f ∈ [0, 0.5] (in units of the step), tabulated: the search evaluates it 80 times
 * per weight, and Math.pow dominated the run (≈ 1 min for the shipped model). Linear interpolation on 4096
 * intervals is within 3e-8 of the exact value (relative to the step), far below any gap between candidate ranges.
 */
const TABLE_SIZE = 4096;
const RESIDUAL_POWER = Float64Array.from({ length: TABLE_SIZE + 2 }, (_, i) => (i / (2 * TABLE_SIZE)) ** ERROR_POWER);

/**
 * rangeError, with in-grid residuals read from the table: the objective the search minimises. Stops early (with
 * +∞) once the clipping error alone exceeds `bound`, the best error so far: small ratios clip most weights.
 */
export function searchError(values: ArrayLike<number>, scale: number, bound = Number.POSITIVE_INFINITY): number {
  const limit = INT8_MAX * scale;
  const inv = 1 / scale;
  let inGrid = 0;
  let clipped = 0;
  for (let i = 0; i < values.length; i++) {
    const w = values[i];
    if (w > limit || w < -limit) {
      clipped += (Math.abs(w) - limit) ** ERROR_POWER;
      if (clipped > bound) return Number.POSITIVE_INFINITY;
      continue;
    }
    const r = w * inv;
    const pos = Math.abs(r - Math.round(r)) * 2 * TABLE_SIZE;
    const j = pos | 0;
    inGrid += RESIDUAL_POWER[j] + (pos - j) * (RESIDUAL_POWER[j + 1] - RESIDUAL_POWER[j]);
  }
  return inGrid * scale ** ERROR_POWER + clipped;
}

/** The MSE range search over the 80 shrink ratios for one channel's weights. */
export function searchChannelRange(values: ArrayLike<number>): ChannelRange {
  let absMax = 0;
  for (let i = 0; i < values.length; i++) absMax = Math.max(absMax, Math.abs(values[i]));
  if (absMax === 0) return { alpha: 1, scale: 1, error: 0 };
  let best = { alpha: 1, scale: absMax / INT8_MAX, error: Number.POSITIVE_INFINITY };
  for (let k = 0; k < SHRINK_RATIOS; k++) {
    const alpha = 1 - k * SHRINK_STEP;
    const scale = (alpha * absMax) / INT8_MAX;
    const error = searchError(values, scale, best.error);
    if (error < best.error) best = { alpha, scale, error };
  }
  return { ...best, error: rangeError(values, best.scale) };
}

export interface QuantizedMatrix {
  /** Int8 weights in the input's layout. */
  q: Int8Array;
  /** One step per output channel. */
  scales: Float32Array;
  alphas: Float32Array;
}

/**
 * Per-output-channel quantization of a row-major matrix. `layout` says where the output channels are:
 * "kn" for a MatMul weight W [K, N] (channel = column), "nk" for a Gemm weight with transB (channel = row).
 */
export function quantizeMatrix(w: Float32Array, rows: number, cols: number, layout: "kn" | "nk"): QuantizedMatrix {
  const channels = layout === "kn" ? cols : rows;
  const inner = layout === "kn" ? rows : cols;
  const at = (n: number, k: number) => (layout === "kn" ? k * cols + n : n * cols + k);
  const q = new Int8Array(w.length);
  const scales = new Float32Array(channels);
  const alphas = new Float32Array(channels);
  const column = new Float32Array(inner);
  for (let n = 0; n < channels; n++) {
    for (let k = 0; k < inner; k++) column[k] = w[at(n, k)];
    const range = searchChannelRange(column);
    // The step is stored as float32 in the graph: quantize against that exact value.
    const scale = Math.fround(range.scale);
    scales[n] = scale;
    alphas[n] = range.alpha;
    for (let k = 0; k < inner; k++) {
      q[at(n, k)] = Math.max(-INT8_MAX, Math.min(INT8_MAX, Math.round(column[k] / scale)));
    }
  }
  return { q, scales, alphas };
}
