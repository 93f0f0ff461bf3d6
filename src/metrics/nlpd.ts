/**
 * A perceptual distance that needs no classifier: the Normalized Laplacian Pyramid Distance (NLPD; Laparra et al.,
 * "Perceptual image quality assessment using a normalized Laplacian pyramid", 2016). Each image channel is split
 * into a Laplacian pyramid (Burt & Adelson, 1983), every band is divided by a local estimate of its own amplitude
 * (divisive normalization, §2 of the paper: z = b / (σ + P ⊛ |b|)), and the normalized bands of the two images are
 * compared with a root-mean-square per band, pooled over bands with exponent β = 0.6 (the paper's value).
 *
 * Our parameters, not the paper's fitted ones: P is the pyramid's own 5-tap blur, σ = 0.03 on [0, 1] images (the
 * same contrast floor as SSIM's C2), no luminance power law (images are already gamma-encoded), up to 6 levels
 * and never below 4 pixels. Works for any channels × size (≥ 1 pixel); 0 for identical images, larger = further.
 */
import type { ImageBatch } from "../image/png.ts";

/** Burt–Adelson generating kernel (a = 0.4). */
const KERNEL = [0.05, 0.25, 0.4, 0.25, 0.05];
const SIGMA = 0.03;
const BETA = 0.6;
const MAX_LEVELS = 6;
const MIN_SIDE = 4;

interface Plane {
  data: Float64Array;
  h: number;
  w: number;
}

/** Mean NLPD over images (each the mean over its channels). Images in [0, 1]. */
export function nlpd(a: ImageBatch, b: ImageBatch): number {
  const per = a.height * a.width;
  let total = 0;
  for (let n = 0; n < a.count; n++) {
    let sum = 0;
    for (let c = 0; c < a.channels; c++) {
      const offset = (n * a.channels + c) * per;
      const plane = (img: ImageBatch): Plane => ({
        data: Float64Array.from(img.data.subarray(offset, offset + per)),
        h: a.height,
        w: a.width,
      });
      sum += planeDistance(plane(a), plane(b));
    }
    total += sum / a.channels;
  }
  return total / a.count;
}

function planeDistance(x: Plane, y: Plane): number {
  const bx = laplacianPyramid(x);
  const by = laplacianPyramid(y);
  let pooled = 0;
  for (let k = 0; k < bx.length; k++) {
    const zx = normalize(bx[k]);
    const zy = normalize(by[k]);
    let mse = 0;
    for (let i = 0; i < zx.length; i++) mse += (zx[i] - zy[i]) ** 2;
    pooled += Math.sqrt(mse / zx.length) ** BETA;
  }
  return (pooled / bx.length) ** (1 / BETA);
}

/** Band-pass levels g_k − expand(g_{k+1}), then the low-pass residual. */
function laplacianPyramid(image: Plane): Plane[] {
  const bands: Plane[] = [];
  let g = image;
  for (let level = 0; level < MAX_LEVELS - 1 && Math.min(g.h, g.w) >= 2 * MIN_SIDE; level++) {
    const down = reduce(g);
    const up = expand(down, g.h, g.w);
    bands.push({ data: g.data.map((v, i) => v - up.data[i]), h: g.h, w: g.w });
    g = down;
  }
  bands.push(g);
  return bands;
}

/** z = b / (σ + P ⊛ |b|). */
function normalize(band: Plane): Float64Array {
  const amplitude = blur({ data: band.data.map(Math.abs), h: band.h, w: band.w });
  return band.data.map((v, i) => v / (SIGMA + amplitude.data[i]));
}

/** Separable 5-tap blur with edge replication (defined for any size). */
function blur(p: Plane, gain = 1): Plane {
  const { h, w } = p;
  const at = (v: number, n: number) => Math.min(n - 1, Math.max(0, v));
  const rows = new Float64Array(h * w);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let i = 0; i < 5; i++) s += KERNEL[i] * p.data[y * w + at(x + i - 2, w)];
      rows[y * w + x] = s * gain;
    }
  const out = new Float64Array(h * w);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let i = 0; i < 5; i++) s += KERNEL[i] * rows[at(y + i - 2, h) * w + x];
      out[y * w + x] = s * gain;
    }
  return { data: out, h, w };
}

/** Blur, then keep every second pixel. */
function reduce(p: Plane): Plane {
  const b = blur(p);
  const h = Math.ceil(p.h / 2);
  const w = Math.ceil(p.w / 2);
  const data = new Float64Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[y * w + x] = b.data[2 * y * p.w + 2 * x];
  return { data, h, w };
}

/** Zero-insertion upsampling to h × w, then the blur with gain 2 per axis (restores the mean). */
function expand(p: Plane, h: number, w: number): Plane {
  const data = new Float64Array(h * w);
  for (let y = 0; y < p.h; y++)
    for (let x = 0; x < p.w; x++) if (2 * y < h && 2 * x < w) data[2 * y * w + 2 * x] = p.data[y * p.w + x];
  return blur({ data, h, w }, 2);
}
