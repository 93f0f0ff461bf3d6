/** Model-space samples to display range, shared by PNG writing (Node) and the page's canvases (browser). */

/** Maps model-space samples (range [lo, hi]) to [0, 1], clamped. */
export function toUnitRange(samples: Float32Array, range: readonly [number, number]): Float32Array {
  const [lo, hi] = range;
  const out = new Float32Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = Math.min(1, Math.max(0, (samples[i] - lo) / (hi - lo)));
  return out;
}
