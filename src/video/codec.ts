/**
 * Streaming CDT encoding and decoding, chunk by chunk through the feature cache (shared/specs/cdt.md, "Mapping
 * onto the Ditto engine"): async generators of chunks, so consumers can write frames as they come and memory does
 * not grow with the video (single-step decoding). Video frames are [H, W] floats in [-1, 1]; latent frames are
 * [L, h, w].
 */
import { InputError } from "../errors.ts";
import { float32 } from "../runtime/tensor-ops.ts";
import { gaussianNoise } from "../sampling/noise.ts";
import type { CdtModel } from "./cdt-model.ts";
import {
  checkEncoderSplit,
  decoderChunks,
  encoderChunkLengths,
  type Range,
  videoFramesOf,
  videoRangeOf,
} from "./chunks.ts";
import { joinFrames, splitFrames } from "./frames.ts";
import { mulberry32 } from "./moving-fashion.ts";
import { cosineAlphasCumprod, ddimStepInPlace, ddimTimes } from "./schedule.ts";

type Frames = Iterable<Float32Array> | AsyncIterable<Float32Array>;

export interface EncodeOptions {
  /** Frames of the video (1 + 4k): the remainder-first rule needs it up front. */
  totalFrames: number;
  /** Encoder chunk in frames, a multiple of 4 (default: the manifest's). */
  chunkFrames?: number;
  /** Explicit chunk lengths instead (checked: 1 + 4j first, multiples of 4 after). */
  split?: readonly number[];
}

/** A chunk of latent frames [start, start + frames.length). */
export interface LatentChunk {
  start: number;
  frames: Float32Array[];
}

/** Encodes a video chunk by chunk (the first chunk is the remainder), yielding the latent mean per chunk. */
export async function* encodeVideo(
  model: CdtModel,
  video: Frames,
  options: EncodeOptions,
): AsyncGenerator<LatentChunk> {
  const { manifest, encoder } = model;
  const { height: h, width: w } = manifest.video;
  const lengths = options.split
    ? [...options.split]
    : encoderChunkLengths(options.totalFrames, options.chunkFrames ?? manifest.chunk.frames);
  checkEncoderSplit(lengths, options.totalFrames);
  encoder.reset(); // clearing between videos
  let pending: Float32Array[] = [];
  let chunk = 0;
  let latentStart = 0;
  const flush = async () => {
    const x = joinFrames(pending, 1, h * w); // [1, F, H, W]
    const [latent] = await encoder.run({ video: float32(x, [1, 1, pending.length, h, w]) });
    const frames = splitFrames(latent.data as Float32Array, manifest.latent.channels, latent.dims[2]);
    const out = { start: latentStart, frames };
    latentStart += frames.length;
    pending = [];
    chunk++;
    return out;
  };
  let seen = 0;
  for await (const frame of video) {
    if (frame.length !== h * w) {
      throw new InputError("INPUT_INVALID", `frame ${seen} has ${frame.length} values; the model takes ${h}×${w}`);
    }
    pending.push(frame);
    seen++;
    if (pending.length === lengths[chunk]) yield await flush();
  }
  if (seen !== options.totalFrames) {
    throw new InputError("INPUT_INVALID", `the video had ${seen} frames, not the ${options.totalFrames} announced`);
  }
}

export interface DecodeOptions {
  /** Latent frames of the video (1 + k). */
  totalLatents: number;
  /** Decoder chunk in latent frames (default: the manifest's). */
  chunkLatents?: number;
  /** Denoising steps (default 1: x̂0 = U-Net(γ·ε, (N − 1)/N)). */
  steps?: number;
  /** Seed of the decoder's noise (default 0). */
  seed?: number;
  /** Noise scale γ of x_init (default: the manifest's, 0.8). */
  gamma?: number;
}

/** A chunk of decoded video frames [start, start + frames.length), floats in [-1, 1]. */
export interface VideoChunk {
  start: number;
  frames: Float32Array[];
}

/**
 * The whole video's initial noise, defined frame by frame: frame f of seed s is its own Gaussian stream, so any
 * chunk slices exactly what one whole-video draw would give (Pitfall 6) without holding the whole tensor.
 */
export function frameNoise(seed: number, frame: number, size: number, gamma: number): Float32Array {
  const frameSeed = mulberry32((seed ^ Math.imul(frame + 1, 0x9e3779b9)) >>> 0)() | 0;
  const noise = gaussianNoise(frameSeed, size);
  for (let i = 0; i < noise.length; i++) noise[i] *= gamma;
  return noise;
}

/**
 * Decodes latent frames chunk by chunk. One step streams: each latent chunk is decoded as soon as it arrives and
 * memory stays flat. S > 1 steps sweep all chunks once per step (clearing the caches between sweeps), so they
 * keep the latents and x_t of the whole video (the algorithm needs them; both are small next to the caches).
 */
export async function* decodeVideo(
  model: CdtModel,
  latents: Iterable<Float32Array> | AsyncIterable<Float32Array>,
  options: DecodeOptions,
): AsyncGenerator<VideoChunk> {
  const { manifest } = model;
  const steps = options.steps ?? manifest.sampler.steps;
  if (!Number.isInteger(steps) || steps < 1 || steps > manifest.sampler.trainSteps) {
    throw new InputError(
      "OPTION_INVALID",
      `steps must be an integer from 1 to ${manifest.sampler.trainSteps} (got ${steps})`,
    );
  }
  if (!Number.isInteger(options.totalLatents) || options.totalLatents < 1) {
    throw new InputError("INPUT_INVALID", `totalLatents must be a positive integer (got ${options.totalLatents})`);
  }
  const chunks = decoderChunks(options.totalLatents, options.chunkLatents ?? manifest.chunk.latentFrames);
  const gamma = options.gamma ?? manifest.sampler.gamma;
  const seed = options.seed ?? 0;
  if (steps === 1) {
    yield* decodeOneStep(model, latents, chunks, seed, gamma);
    return;
  }
  const all: Float32Array[] = [];
  for await (const z of latents) all.push(z);
  yield* decodeSteps(model, all, chunks, steps, seed, gamma);
}

async function* decodeOneStep(
  model: CdtModel,
  latents: Iterable<Float32Array> | AsyncIterable<Float32Array>,
  chunks: Range[],
  seed: number,
  gamma: number,
): AsyncGenerator<VideoChunk> {
  const plane = planeOf(model);
  const t = (model.manifest.sampler.trainSteps - 1) / model.manifest.sampler.trainSteps;
  model.context.reset();
  model.denoiser.reset();
  let pending: Float32Array[] = [];
  let index = 0;
  for await (const z of latents) {
    pending.push(z);
    if (index < chunks.length && pending.length === chunks[index].end - chunks[index].start) {
      const range = videoRangeOf(chunks[index]);
      const x = new Float32Array((range.end - range.start) * plane);
      for (let f = range.start; f < range.end; f++) x.set(frameNoise(seed, f, plane, gamma), (f - range.start) * plane);
      const x0 = await denoiseChunk(model, pending, x, t);
      yield { start: range.start, frames: splitFrames(x0, 1, range.end - range.start) };
      pending = [];
      index++;
    }
  }
  checkLatentCount(index, chunks, pending.length);
}

async function* decodeSteps(
  model: CdtModel,
  latents: Float32Array[],
  chunks: Range[],
  steps: number,
  seed: number,
  gamma: number,
): AsyncGenerator<VideoChunk> {
  const announced = chunks[chunks.length - 1].end;
  if (latents.length !== announced) {
    throw new InputError(
      "INPUT_INVALID",
      `the latent stream had ${latents.length} latent frames, not the ${announced} announced`,
    );
  }
  const plane = planeOf(model);
  const n = model.manifest.sampler.trainSteps;
  const alphas = cosineAlphasCumprod(n);
  const times = ddimTimes(steps, n);
  const frames = videoFramesOf(latents.length);
  const x = new Float32Array(frames * plane); // x_t of the whole video
  for (let f = 0; f < frames; f++) x.set(frameNoise(seed, f, plane, gamma), f * plane);
  for (let s = 0; s < steps; s++) {
    const last = s === steps - 1;
    model.context.reset(); // clear per denoising step's sweep: context never crosses steps
    model.denoiser.reset();
    for (const chunk of chunks) {
      const range = videoRangeOf(chunk);
      const slice = x.subarray(range.start * plane, range.end * plane);
      const x0 = await denoiseChunk(model, latents.slice(chunk.start, chunk.end), slice, times[s] / n);
      if (last) {
        yield { start: range.start, frames: splitFrames(x0, 1, range.end - range.start) };
      } else {
        ddimStepInPlace(slice, x0, alphas[times[s]], alphas[times[s + 1]]);
      }
    }
  }
}

/** Context of a latent chunk, then the denoiser's x̂0 for its frames. */
async function denoiseChunk(
  model: CdtModel,
  latents: Float32Array[],
  x: Float32Array,
  t: number,
): Promise<Float32Array> {
  const { channels, space } = model.manifest.latent;
  const { height: h, width: w } = model.manifest.video;
  const k = latents.length;
  const z = float32(joinFrames(latents, channels, (h / space) * (w / space)), [1, channels, k, h / space, w / space]);
  const ctx = await model.context.run({ latent: z });
  const frames = x.length / (h * w);
  const [x0] = await model.denoiser.run({
    x: float32(x, [1, 1, frames, h, w]),
    t: float32(Float32Array.of(t), [1]),
    ctx0: ctx[0],
    ctx1: ctx[1],
    ctx2: ctx[2],
  });
  return x0.data as Float32Array;
}

function planeOf(model: CdtModel): number {
  return model.manifest.video.height * model.manifest.video.width;
}

function checkLatentCount(chunksDone: number, chunks: Range[], left: number): void {
  if (chunksDone !== chunks.length || left !== 0) {
    throw new InputError(
      "INPUT_INVALID",
      `the latent stream did not have the ${chunks[chunks.length - 1].end} latent frames announced`,
    );
  }
}
