/**
 * How a 1 + 4k-frame video is cut into chunks (shared/specs/cdt.md, "Chunking and the first chunk").
 *
 * Encoder: the first chunk is the remainder T mod chunkFrames, the rest are chunkFrames long. Its two stride-2
 * time downsamplers are then fed chunks of the parity they need: a first chunk of 1 + 4j frames and later chunks of
 * multiples of 4 (Pitfall 5); any other split is refused, since it would silently differ from the whole pass.
 * Decoder: latent chunks [0, n), [n, 2n), …; latent chunk [a, b) decodes to video frames [4a − 3, 4b − 3)
 * (chunk 0: [0, 4b − 3), because latent frame 0 is a single frame).
 */
import { InputError } from "../errors.ts";

export interface Range {
  start: number;
  end: number;
}

/** Latent frames of a 1 + 4k-frame video; refuses any other length. */
export function latentFramesOf(frames: number): number {
  if (!Number.isInteger(frames) || frames < 1 || (frames - 1) % 4 !== 0) {
    throw new InputError(
      "INPUT_INVALID",
      `a CDT video has 1 + 4k frames (1, 5, 9, 13, …); got ${frames}: trim it to ${Math.max(1, frames - ((frames + 3) % 4))}`,
      { frames },
    );
  }
  return 1 + (frames - 1) / 4;
}

/** Video frames of 1 + k latent frames. */
export function videoFramesOf(latentFrames: number): number {
  return 1 + 4 * (latentFrames - 1);
}

/** The encoder's remainder-first chunk lengths for a video of `frames` frames. */
export function encoderChunkLengths(frames: number, chunkFrames: number): number[] {
  latentFramesOf(frames);
  if (!Number.isInteger(chunkFrames) || chunkFrames < 4 || chunkFrames % 4 !== 0) {
    throw new InputError(
      "OPTION_INVALID",
      `the encoder's chunk must be a positive multiple of 4 frames (got ${chunkFrames})`,
    );
  }
  const first = frames % chunkFrames;
  const lengths = [first];
  for (let done = first; done < frames; done += chunkFrames) lengths.push(chunkFrames);
  return lengths;
}

/** Checks a user-given encoder split: 1 + 4j frames first, multiples of 4 after, summing to the video. */
export function checkEncoderSplit(lengths: readonly number[], frames: number): void {
  const total = lengths.reduce((a, b) => a + b, 0);
  if (total !== frames) {
    throw new InputError("INPUT_INVALID", `the encoder chunks cover ${total} frames but the video has ${frames}`);
  }
  lengths.forEach((n, i) => {
    const ok = i === 0 ? n >= 1 && (n - 1) % 4 === 0 : n >= 4 && n % 4 === 0;
    if (!ok) {
      throw new InputError(
        "INPUT_INVALID",
        `encoder chunk ${i} has ${n} frames: the time downsamplers need a first chunk of 1 + 4j frames and later ` +
          "chunks of multiples of 4 (the remainder-first rule); any other split would differ from encoding the " +
          "whole video. Use a --chunk that is a multiple of 4",
        { chunk: i, frames: n },
      );
    }
  });
}

/** The decoder's latent chunks of `chunkLatents` latent frames (the last may be shorter). */
export function decoderChunks(latentFrames: number, chunkLatents: number): Range[] {
  if (!Number.isInteger(chunkLatents) || chunkLatents < 1) {
    throw new InputError("OPTION_INVALID", `the decoder's chunk must be at least 1 latent frame (got ${chunkLatents})`);
  }
  const out: Range[] = [];
  for (let start = 0; start < latentFrames; start += chunkLatents) {
    out.push({ start, end: Math.min(latentFrames, start + chunkLatents) });
  }
  return out;
}

/** Video frames [4a − 3, 4b − 3) decoded from latent frames [a, b) (chunk 0 starts at frame 0). */
export function videoRangeOf(latents: Range): Range {
  return { start: latents.start === 0 ? 0 : 4 * latents.start - 3, end: 4 * latents.end - 3 };
}
