/**
 * Reconstructing a synthetic video through a CDT tokenizer as one stream: generator → encoder (chunked) → decoder
 * (chunked) → metrics against a second, identical generator. Nothing holds the whole video, so peak memory does
 * not depend on its length with single-step decoding.
 */
import type { ImageBatch } from "../image/png.ts";
import { psnr, ssim } from "../metrics/fidelity.ts";
import type { CdtModel } from "./cdt-model.ts";
import { latentFramesOf } from "./chunks.ts";
import { decodeVideo, encodeVideo } from "./codec.ts";
import { type GarmentBank, movingFashionFrames, toSignedUnit } from "./moving-fashion.ts";

export interface ReconstructOptions {
  /** Seed of the synthetic video. */
  seed: number;
  /** 1 + 4k frames. */
  frames: number;
  objects?: number;
  /** Encoder chunk in frames (multiple of 4; default: the manifest's). */
  encoderChunk?: number;
  /** Decoder chunk in latent frames (default: the manifest's). */
  decoderChunk?: number;
  steps?: number;
  noiseSeed?: number;
  /** Called with every frame, original and reconstruction, in [-1, 1]. */
  onFrame?(index: number, original: Float32Array, reconstruction: Float32Array): void;
  /** Called after every decoded chunk's frames (e.g. to collect the chunk's dead buffers). */
  onChunk?(): void;
}

export interface ReconstructReport {
  frames: number;
  /** Mean over frames, images in [0, 1]. */
  psnr: number;
  ssim: number;
  /** Wall-clock milliseconds of encoding + decoding per video frame. */
  msPerFrame: number;
  /** Cache state held by the three networks (bytes), independent of the video length. */
  stateBytes: number;
}

export async function reconstructVideo(
  model: CdtModel,
  bank: GarmentBank,
  options: ReconstructOptions,
): Promise<ReconstructReport> {
  const { height: h, width: w } = model.manifest.video;
  const video = { seed: options.seed, frames: options.frames, canvas: h, objects: options.objects };
  const totalLatents = latentFramesOf(options.frames);
  const source = (function* () {
    for (const frame of movingFashionFrames(bank, video)) yield toSignedUnit(frame);
  })();
  const encoded = encodeVideo(model, source, { totalFrames: options.frames, chunkFrames: options.encoderChunk });
  const latents = (async function* () {
    for await (const chunk of encoded) yield* chunk.frames;
  })();
  const originals = movingFashionFrames(bank, video);
  let psnrSum = 0;
  let ssimSum = 0;
  let count = 0;
  const started = performance.now();
  const decoded = decodeVideo(model, latents, {
    totalLatents,
    chunkLatents: options.decoderChunk,
    steps: options.steps,
    seed: options.noiseSeed,
  });
  for await (const chunk of decoded) {
    for (const frame of chunk.frames) {
      const original = toSignedUnit(originals.next().value as Uint8Array);
      psnrSum += psnr(unitImage(original, h, w), unitImage(frame, h, w));
      ssimSum += ssim(unitImage(original, h, w), unitImage(frame, h, w));
      options.onFrame?.(count, original, frame);
      count++;
    }
    options.onChunk?.();
  }
  const elapsed = performance.now() - started;
  return {
    frames: count,
    psnr: psnrSum / count,
    ssim: ssimSum / count,
    msPerFrame: elapsed / count,
    stateBytes: model.encoder.stateBytes() + model.context.stateBytes() + model.denoiser.stateBytes(),
  };
}

/** [-1, 1] frame → an ImageBatch in [0, 1], clipped as a written image would be. */
function unitImage(frame: Float32Array, height: number, width: number): ImageBatch {
  const data = new Float32Array(frame.length);
  for (let i = 0; i < frame.length; i++) data[i] = Math.max(0, Math.min(1, (frame[i] + 1) / 2));
  return { data, count: 1, channels: 1, height, width };
}
