/** Change signals that dynamic policies threshold on. */
import type { Tensor } from "onnxruntime-common";
import { floatData } from "../runtime/tensor-ops.ts";

/** mean|a − b| / mean|b| (TeaCache's and FBCache's relative L1 change); Infinity when b is all zero. */
export function relativeL1(a: Tensor, b: Tensor): number {
  const x = floatData(a);
  const y = floatData(b);
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < x.length; i++) {
    diff += Math.abs(x[i] - y[i]);
    norm += Math.abs(y[i]);
  }
  return norm === 0 ? Number.POSITIVE_INFINITY : diff / norm;
}

/** Horner evaluation of a polynomial given highest degree first (np.polyfit order). */
export function polyval(coefficients: readonly number[], x: number): number {
  let y = 0;
  for (const c of coefficients) y = y * x + c;
  return y;
}
