/**
 * Fréchet distance between two Gaussians fitted to feature sets (the FID formula, on the shipped classifier's
 * features): |μ1 − μ2|² + Tr(Σ1) + Tr(Σ2) − 2·Tr((Σ1^½ Σ2 Σ1^½)^½). Matrix square roots come from ml-matrix's
 * symmetric eigendecomposition; tiny negative eigenvalues from rounding are clipped to 0.
 */
import { EigenvalueDecomposition, Matrix } from "ml-matrix";

export interface FeatureStats {
  mean: number[];
  cov: number[][];
  count: number;
}

/** Mean and unbiased covariance of N feature vectors of dimension d, given row-major [N, d]. */
export function featureStats(features: Float32Array, dim: number): FeatureStats {
  const n = features.length / dim;
  const mean = new Array(dim).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) mean[j] += features[i * dim + j] / n;
  const cov = Array.from({ length: dim }, () => new Array(dim).fill(0));
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < dim; a++) {
      const da = features[i * dim + a] - mean[a];
      if (da === 0) continue;
      const row = cov[a];
      for (let b = a; b < dim; b++) row[b] += da * (features[i * dim + b] - mean[b]);
    }
  }
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      cov[a][b] /= Math.max(1, n - 1);
      cov[b][a] = cov[a][b];
    }
  }
  return { mean, cov, count: n };
}

function symmetricSqrt(m: Matrix): Matrix {
  const eig = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  const v = eig.eigenvectorMatrix;
  const roots = eig.realEigenvalues.map((l) => Math.sqrt(Math.max(0, l)));
  return v.mmul(Matrix.diag(roots)).mmul(v.transpose());
}

export function frechetDistance(a: FeatureStats, b: FeatureStats): number {
  const meanTerm = a.mean.reduce((s, v, i) => s + (v - b.mean[i]) ** 2, 0);
  const s1 = new Matrix(a.cov);
  const s2 = new Matrix(b.cov);
  const root1 = symmetricSqrt(s1);
  const inner = root1.mmul(s2).mmul(root1);
  const symmetric = inner.add(inner.transpose()).div(2); // remove rounding asymmetry before the eigensolver
  const eig = new EigenvalueDecomposition(symmetric, { assumeSymmetric: true });
  const traceSqrt = eig.realEigenvalues.reduce((s, l) => s + Math.sqrt(Math.max(0, l)), 0);
  return meanTerm + s1.trace() + s2.trace() - 2 * traceSqrt;
}
