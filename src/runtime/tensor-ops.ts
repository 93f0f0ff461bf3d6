/**
 * The few element-wise operations the engine does on the host: residual reuse (h + g ⊙ F, h + Δ), deltas, and
 * finiteness checks. Every result is rounded to float32 at each operation, as ONNX Runtime's Mul and Add are.
 */
import { Tensor } from "onnxruntime-common";

export function floatData(t: Tensor): Float32Array {
  if (t.type !== "float32") throw new Error(`expected a float32 tensor, got ${t.type}`);
  return t.data as Float32Array;
}

export function float32(data: Float32Array, dims: readonly number[]): Tensor {
  return new Tensor("float32", data, dims);
}

/** h + value, or h + gate ⊙ value with the gate broadcast ([B,1,D] or [B,D] against [B,T,D]). */
export function residualAdd(h: Tensor, value: Tensor, gate?: Tensor): Tensor {
  const hd = floatData(h);
  const vd = floatData(value);
  if (hd.length !== vd.length) throw new Error(`residual shapes differ: [${h.dims}] vs [${value.dims}]`);
  const out = new Float32Array(hd.length);
  if (!gate) {
    for (let i = 0; i < hd.length; i++) out[i] = hd[i] + vd[i];
    return float32(out, h.dims);
  }
  const gd = floatData(gate);
  const batch = h.dims[0];
  const width = h.dims[h.dims.length - 1];
  const perSample = hd.length / batch;
  if (gd.length !== batch * width) {
    throw new Error(`gate of shape [${gate.dims}] does not broadcast as [B,1,D] over [${h.dims}]`);
  }
  for (let b = 0; b < batch; b++) {
    const base = b * perSample;
    const gBase = b * width;
    for (let i = 0; i < perSample; i++) {
      const product = Math.fround(gd[gBase + (i % width)] * vd[base + i]);
      out[base + i] = hd[base + i] + product;
    }
  }
  return float32(out, h.dims);
}

export function subtract(a: Tensor, b: Tensor): Tensor {
  const ad = floatData(a);
  const bd = floatData(b);
  const out = new Float32Array(ad.length);
  for (let i = 0; i < ad.length; i++) out[i] = ad[i] - bd[i];
  return float32(out, a.dims);
}

export function isAllFinite(t: Tensor): boolean {
  if (t.type !== "float32") return true;
  const d = t.data as Float32Array;
  let zero = 0;
  for (let i = 0; i < d.length; i++) zero += d[i] * 0; // NaN for NaN/±Inf; branch-free, ~1.5× faster
  return zero === 0;
}

export function byteSize(t: Tensor): number {
  return (t.data as ArrayLike<number> & { byteLength: number }).byteLength;
}

/** [a; b] as one new array (e.g. a batch doubled for both CFG branches). */
export function concatFloat32(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
