/**
 * CDT's diffusion decoder schedule and sampler (shared/specs/cdt.md, "Diffusion decoder"): a cosine β schedule
 * over N training steps (Nichol & Dhariwal 2021, betas clipped at 0.999; the same arithmetic as
 * training/cdt.py:alphas_cumprod) and DDIM with η = 0 for a model that predicts x0.
 */

/** ᾱ_t for t = 0 … n − 1 (float64). */
export function cosineAlphasCumprod(n: number, s = 0.008): Float64Array {
  const f = (i: number) => Math.cos((((i / n + s) / (1 + s)) * Math.PI) / 2) ** 2;
  const out = new Float64Array(n);
  let prod = 1;
  for (let i = 0; i < n; i++) {
    const beta = Math.min(1 - f(i + 1) / f(i), 0.999);
    prod *= 1 - beta;
    out[i] = prod;
  }
  return out;
}

/**
 * The S model times, noisiest first: t = N − 1 for one step (the default: x̂0 = U-Net(γ·ε, (N − 1)/N)), else
 * round(linspace(N − 1, 0, S)).
 */
export function ddimTimes(steps: number, trainSteps: number): number[] {
  if (steps === 1) return [trainSteps - 1];
  return Array.from({ length: steps }, (_, i) => Math.round(((trainSteps - 1) * (steps - 1 - i)) / (steps - 1)));
}

/**
 * One DDIM (η = 0) move from time t to tNext given the model's x̂0: ε̂ = (x_t − √ᾱ_t·x̂0)/√(1 − ᾱ_t),
 * x_tNext = √ᾱ_tNext·x̂0 + √(1 − ᾱ_tNext)·ε̂. Written into `x` in place.
 */
export function ddimStepInPlace(x: Float32Array, x0: Float32Array, alphaT: number, alphaNext: number): void {
  const a = Math.sqrt(alphaT);
  const b = Math.sqrt(1 - alphaT);
  const an = Math.sqrt(alphaNext);
  const bn = Math.sqrt(1 - alphaNext);
  for (let i = 0; i < x.length; i++) {
    const eps = (x[i] - a * x0[i]) / b;
    x[i] = an * x0[i] + bn * eps;
  }
}
