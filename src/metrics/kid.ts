/**
 * Kernel Inception Distance (Bińkowski et al., "Demystifying MMD GANs", ICLR 2018), on the shipped classifier's
 * features instead of Inception's: the unbiased estimate of the squared MMD with the cubic polynomial kernel
 * k(x, y) = (x·y/d + 1)³. Unlike the Fréchet distance it is unbiased at small sample counts, so a few dozen
 * samples give a usable comparison; its spread over disjoint subsets says how much of a difference is noise.
 * The kernel assumes features of order 1 (Inception's pool features are); the classifier's are not (norm ≈ 40 over
 * 128 dimensions), so callers pass `scale` = 1 / (root-mean-square feature of the reference set): see rmsScale.
 */
import { InputError } from "../errors.ts";

/** (s²·x·y/d + 1)³ between row i of a and row j of b, both row-major [N, d]. */
function kernel(a: Float32Array, i: number, b: Float32Array, j: number, dim: number, scale: number): number {
  let dot = 0;
  for (let c = 0; c < dim; c++) dot += a[i * dim + c] * b[j * dim + c];
  return ((scale * scale * dot) / dim + 1) ** 3;
}

/** 1 / root-mean-square of a feature set: the scale that brings its features to order 1. */
export function rmsScale(features: Float32Array): number {
  let sum = 0;
  for (const v of features) sum += v * v;
  return sum > 0 ? 1 / Math.sqrt(sum / features.length) : 1;
}

/** Unbiased MMD² between two feature sets [m, d] and [n, d] (m, n ≥ 2), features multiplied by `scale`. */
export function kid(a: Float32Array, b: Float32Array, dim: number, scale = 1): number {
  const m = a.length / dim;
  const n = b.length / dim;
  if (!Number.isInteger(m) || !Number.isInteger(n) || m < 2 || n < 2) {
    throw new InputError("INPUT_INVALID", `KID needs at least 2 feature vectors of dimension ${dim} in each set`);
  }
  let kxx = 0;
  for (let i = 0; i < m; i++) for (let j = i + 1; j < m; j++) kxx += 2 * kernel(a, i, a, j, dim, scale);
  let kyy = 0;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) kyy += 2 * kernel(b, i, b, j, dim, scale);
  let kxy = 0;
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) kxy += kernel(a, i, b, j, dim, scale);
  return kxx / (m * (m - 1)) + kyy / (n * (n - 1)) - (2 * kxy) / (m * n);
}

/**
 * KID of `a` against `b` as mean and standard deviation over `subsets` disjoint, equal splits of `a` (each against
 * all of `b`): the spread is the sampling noise of the estimate at that subset size.
 */
export function kidWithSpread(
  a: Float32Array,
  b: Float32Array,
  dim: number,
  scale = 1,
  subsets = 4,
): { mean: number; std: number; subsets: number } {
  const m = a.length / dim;
  const size = Math.floor(m / subsets);
  if (size < 2) return { mean: kid(a, b, dim, scale), std: Number.NaN, subsets: 1 };
  const values = Array.from({ length: subsets }, (_, s) =>
    kid(a.subarray(s * size * dim, (s + 1) * size * dim), b, dim, scale),
  );
  const mean = values.reduce((x, y) => x + y, 0) / subsets;
  const variance = values.reduce((x, v) => x + (v - mean) ** 2, 0) / (subsets - 1);
  return { mean, std: Math.sqrt(variance), subsets };
}
