/**
 * Moving Fashion-MNIST: deterministic synthetic videos of garments bouncing on a square canvas, the TypeScript twin
 * of training/moving_fashion.py. Integer arithmetic on a mulberry32 stream, so both produce bit-identical uint8
 * frames for the same seed and garment bank (checked in test/video-data.test.ts against a Python-recorded fixture).
 * Frames come one at a time, so a long video never has to be held in memory.
 */
import { InputError } from "../errors.ts";

const STEPS = [-2, -1, 1, 2] as const;
/** Garments are 2×2 mean-pooled from 28×28 to 14×14. */
export const GARMENT = 14;

/** Garment images: `count` uint8 images of 28×28, row-major. */
export interface GarmentBank {
  count: number;
  pixels: Uint8Array;
}

export interface MovingFashionOptions {
  seed: number;
  frames: number;
  /** Canvas side in pixels (default 32). */
  canvas?: number;
  /** Garments per video (default 2). */
  objects?: number;
}

/** mulberry32: a 32-bit PRNG with a one-word state; returns uint32 values. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** 28×28 → 14×14 by rounded 2×2 mean: (a + b + c + d + 2) >> 2. */
export function poolGarment(bank: GarmentBank, index: number): Uint8Array {
  const out = new Uint8Array(GARMENT * GARMENT);
  const src = bank.pixels.subarray(index * 784, (index + 1) * 784);
  for (let y = 0; y < GARMENT; y++) {
    for (let x = 0; x < GARMENT; x++) {
      const i = 2 * y * 28 + 2 * x;
      out[y * GARMENT + x] = (src[i] + src[i + 1] + src[i + 28] + src[i + 29] + 2) >> 2;
    }
  }
  return out;
}

interface Thing {
  garment: Uint8Array;
  x: number;
  y: number;
  vx: number;
  vy: number;
}

/** Position and velocity after one step, reflected off the walls at 0 and `limit`. */
function reflect(p: number, v: number, limit: number): [number, number] {
  const next = p + v;
  if (next < 0) return [-next, -v];
  if (next > limit) return [2 * limit - next, -v];
  return [next, v];
}

/** The video's frames in order, each uint8 [canvas, canvas]. */
export function* movingFashionFrames(bank: GarmentBank, options: MovingFashionOptions): Generator<Uint8Array> {
  const canvas = options.canvas ?? 32;
  const objects = options.objects ?? 2;
  if (!Number.isInteger(canvas) || canvas < GARMENT) {
    throw new InputError("OPTION_INVALID", `canvas must be an integer of at least ${GARMENT} (got ${canvas})`);
  }
  if (bank.count < 1) throw new InputError("INPUT_INVALID", "the garment bank is empty");
  const rng = mulberry32(options.seed);
  const limit = canvas - GARMENT;
  const things: Thing[] = [];
  for (let i = 0; i < objects; i++) {
    const index = rng() % bank.count;
    const x = rng() % (limit + 1);
    const y = rng() % (limit + 1);
    const vx = STEPS[rng() % 4];
    const vy = STEPS[rng() % 4];
    things.push({ garment: poolGarment(bank, index), x, y, vx, vy });
  }
  for (let f = 0; f < options.frames; f++) {
    const frame = new Uint8Array(canvas * canvas);
    for (const t of things) {
      for (let gy = 0; gy < GARMENT; gy++) {
        for (let gx = 0; gx < GARMENT; gx++) {
          const i = (t.y + gy) * canvas + t.x + gx;
          frame[i] = Math.max(frame[i], t.garment[gy * GARMENT + gx]);
        }
      }
    }
    for (const t of things) {
      [t.x, t.vx] = reflect(t.x, t.vx, limit);
      [t.y, t.vy] = reflect(t.y, t.vy, limit);
    }
    yield frame;
  }
}

/** The whole video: uint8 [frames, canvas, canvas]. */
export function movingFashion(bank: GarmentBank, options: MovingFashionOptions): Uint8Array {
  const canvas = options.canvas ?? 32;
  const out = new Uint8Array(options.frames * canvas * canvas);
  let f = 0;
  for (const frame of movingFashionFrames(bank, options)) out.set(frame, f++ * canvas * canvas);
  return out;
}

/** uint8 pixels → floats in [-1, 1] (v / 127.5 − 1, as the training recipe). */
export function toSignedUnit(pixels: Uint8Array): Float32Array {
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = pixels[i] / 127.5 - 1;
  return out;
}
