/**
 * Deterministic image corruptions (domain shifts) for evaluating test-time adaptation. Images are [N, C, H, W] in
 * the classifier's range [-1, 1] (−1 = black background). Severities are fixed constants chosen before any
 * adapted accuracy was looked at; the noise is seeded per image, so every run builds the same set.
 */
import { InputError, listChoices } from "../errors.ts";
import { gaussianNoise } from "../sampling/noise.ts";

export interface ImageSet {
  data: Float32Array;
  count: number;
  channels: number;
  height: number;
  width: number;
}

export interface ImageShift {
  name: string;
  description: string;
  apply(images: ImageSet): ImageSet;
}

const CONTRAST = 0.3;
const NOISE_SIGMA = 0.5;
const BLUR_SIGMA = 1.5;
const ROTATE_DEGREES = 30;
const NOISE_SEED = 0x7f0;

export const IMAGE_SHIFTS: readonly ImageShift[] = [
  { name: "clean", description: "unchanged", apply: (s) => s },
  {
    name: "low-contrast",
    description: `contrast × ${CONTRAST} about each image's mean`,
    apply: (s) => perImage(s, (img) => lowContrast(img, CONTRAST)),
  },
  {
    name: "noise",
    description: `additive Gaussian noise σ ${NOISE_SIGMA} (range [-1, 1]), seeded per image, clamped`,
    apply: (s) => perImage(s, (img, i) => addNoise(img, NOISE_SIGMA, NOISE_SEED + i)),
  },
  {
    name: "blur",
    description: `Gaussian blur σ ${BLUR_SIGMA} px`,
    apply: (s) => perPlane(s, (plane) => gaussianBlur(plane, s.height, s.width, BLUR_SIGMA)),
  },
  { name: "invert", description: "negative (black ↔ white)", apply: (s) => ({ ...s, data: s.data.map((v) => -v) }) },
  {
    name: "rotate",
    description: `rotation by ${ROTATE_DEGREES}° about the centre, bilinear, black fill`,
    apply: (s) => perPlane(s, (plane) => rotate(plane, s.height, s.width, ROTATE_DEGREES)),
  },
];

export function findImageShift(name: string): ImageShift {
  const shift = IMAGE_SHIFTS.find((s) => s.name === name);
  if (!shift)
    throw new InputError(
      "OPTION_INVALID",
      `unknown image shift '${name}'; choose ${listChoices(IMAGE_SHIFTS.map((s) => s.name))}`,
    );
  return shift;
}

function perImage(s: ImageSet, fn: (img: Float32Array, index: number) => Float32Array): ImageSet {
  const per = s.channels * s.height * s.width;
  const out = new Float32Array(s.data.length);
  for (let i = 0; i < s.count; i++) out.set(fn(s.data.subarray(i * per, (i + 1) * per), i), i * per);
  return { ...s, data: out };
}

function perPlane(s: ImageSet, fn: (plane: Float32Array) => Float32Array): ImageSet {
  const plane = s.height * s.width;
  const out = new Float32Array(s.data.length);
  for (let p = 0; p < s.count * s.channels; p++) out.set(fn(s.data.subarray(p * plane, (p + 1) * plane)), p * plane);
  return { ...s, data: out };
}

function lowContrast(img: Float32Array, factor: number): Float32Array {
  let mean = 0;
  for (const v of img) mean += v;
  mean /= img.length;
  return img.map((v) => mean + factor * (v - mean));
}

function addNoise(img: Float32Array, sigma: number, seed: number): Float32Array {
  const noise = gaussianNoise(seed, img.length);
  return img.map((v, i) => Math.min(1, Math.max(-1, v + sigma * noise[i])));
}

/** Separable Gaussian blur, radius ⌈3σ⌉, edges replicated. */
export function gaussianBlur(plane: Float32Array, h: number, w: number, sigma: number): Float32Array {
  const radius = Math.ceil(3 * sigma);
  const kernel = Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-((i - radius) ** 2) / (2 * sigma * sigma)));
  const sum = kernel.reduce((a, b) => a + b, 0);
  const k = kernel.map((v) => v / sum);
  const clampTo = (v: number, n: number) => Math.min(n - 1, Math.max(0, v));
  const tmp = new Float32Array(plane.length);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let t = -radius; t <= radius; t++) s += k[t + radius] * plane[y * w + clampTo(x + t, w)];
      tmp[y * w + x] = s;
    }
  const out = new Float32Array(plane.length);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let t = -radius; t <= radius; t++) s += k[t + radius] * tmp[clampTo(y + t, h) * w + x];
      out[y * w + x] = s;
    }
  return out;
}

/** Rotation about the image centre by inverse mapping with bilinear sampling; outside pixels are black (−1). */
export function rotate(plane: Float32Array, h: number, w: number, degrees: number): Float32Array {
  const [cos, sin] = [Math.cos((degrees * Math.PI) / 180), Math.sin((degrees * Math.PI) / 180)];
  const [cy, cx] = [(h - 1) / 2, (w - 1) / 2];
  const at = (y: number, x: number) => (y >= 0 && y < h && x >= 0 && x < w ? plane[y * w + x] : -1);
  const out = new Float32Array(plane.length);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const sx = cos * (x - cx) + sin * (y - cy) + cx;
      const sy = -sin * (x - cx) + cos * (y - cy) + cy;
      const [x0, y0] = [Math.floor(sx), Math.floor(sy)];
      const [fx, fy] = [sx - x0, sy - y0];
      out[y * w + x] =
        (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) +
        fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
    }
  return out;
}
