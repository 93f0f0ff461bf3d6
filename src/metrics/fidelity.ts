/**
 * Pairwise fidelity of a cached image against the uncached image of the same seed and condition, on images in
 * [0, 1] (shared/specs/engine-notes.md §6): PSNR, and SSIM with an 11×11 Gaussian window (σ = 1.5),
 * C1 = 0.01², C2 = 0.03², valid region, averaged over channels and images (Wang et al., 2004).
 */
import type { ImageBatch } from "../image/png.ts";

/** PSNR per image in dB, averaged; Infinity when the images are identical. */
export function psnr(a: ImageBatch, b: ImageBatch): number {
  const per = a.channels * a.height * a.width;
  let total = 0;
  for (let n = 0; n < a.count; n++) {
    let mse = 0;
    for (let i = n * per; i < (n + 1) * per; i++) mse += (a.data[i] - b.data[i]) ** 2;
    mse /= per;
    total += mse === 0 ? Number.POSITIVE_INFINITY : 20 * Math.log10(1 / Math.sqrt(mse));
  }
  return total / a.count;
}

const WINDOW = gaussianWindow(11, 1.5);

function gaussianWindow(size: number, sigma: number): Float64Array {
  const w = new Float64Array(size);
  const c = (size - 1) / 2;
  let sum = 0;
  for (let i = 0; i < size; i++) {
    w[i] = Math.exp(-((i - c) ** 2) / (2 * sigma * sigma));
    sum += w[i];
  }
  return w.map((v) => v / sum);
}

/** Separable Gaussian filtering, valid region only: [h, w] → [h − 10, w − 10]. */
function filter(plane: Float64Array, h: number, w: number): Float64Array {
  const k = WINDOW.length;
  const oh = h - k + 1;
  const ow = w - k + 1;
  const rows = new Float64Array(h * ow);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += WINDOW[i] * plane[y * w + x + i];
      rows[y * ow + x] = s;
    }
  }
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += WINDOW[i] * rows[(y + i) * ow + x];
      out[y * ow + x] = s;
    }
  }
  return out;
}

/** Mean SSIM over images and channels. */
export function ssim(a: ImageBatch, b: ImageBatch): number {
  const { height: h, width: w } = a;
  if (h < WINDOW.length || w < WINDOW.length)
    throw new Error(`SSIM needs images of at least 11×11 pixels (got ${h}×${w})`);
  const C1 = 0.01 ** 2;
  const C2 = 0.03 ** 2;
  const plane = h * w;
  let total = 0;
  let planes = 0;
  for (let p = 0; p < a.count * a.channels; p++) {
    const x = Float64Array.from(a.data.subarray(p * plane, (p + 1) * plane));
    const y = Float64Array.from(b.data.subarray(p * plane, (p + 1) * plane));
    const mx = filter(x, h, w);
    const my = filter(y, h, w);
    const sxx = filter(
      x.map((v) => v * v),
      h,
      w,
    );
    const syy = filter(
      y.map((v) => v * v),
      h,
      w,
    );
    const sxy = filter(
      x.map((v, i) => v * y[i]),
      h,
      w,
    );
    let sum = 0;
    for (let i = 0; i < mx.length; i++) {
      const vx = sxx[i] - mx[i] * mx[i];
      const vy = syy[i] - my[i] * my[i];
      const cov = sxy[i] - mx[i] * my[i];
      sum += ((2 * mx[i] * my[i] + C1) * (2 * cov + C2)) / ((mx[i] ** 2 + my[i] ** 2 + C1) * (vx + vy + C2));
    }
    total += sum / mx.length;
    planes++;
  }
  return total / planes;
}
