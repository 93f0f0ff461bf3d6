/**
 * Writing decoded videos as images: an animated GIF, frame by frame as chunks arrive, and a frame-strip PNG.
 * The GIF's bytes go to a sink after every frame (the CLI appends them to the file), so writing a long video holds
 * one encoded frame, never the whole file.
 *
 * GIF through gifenc (MIT, ~9 kB, no dependencies, pure JavaScript so it also runs in the browser build): a grey
 * video needs no quantisation, since the 256 grey levels are exactly a GIF palette, so frames go in losslessly at
 * 8 bits. Panels (e.g. original | reconstruction) are laid side by side in every frame.
 */
import gifenc from "gifenc";
import { gridPng } from "../image/png.ts";

const GREY = Array.from({ length: 256 }, (_, i) => [i, i, i]);
const GAP = 2;

export interface AnimationOptions {
  width: number;
  height: number;
  /** Panels per frame, side by side. */
  panels: number;
  /** Pixel upscaling (default 4). */
  scale?: number;
  /** Frame delay in milliseconds (default 100). */
  delayMs?: number;
  /** Receives the file's bytes in order, piece by piece; each piece is only valid during the call. */
  sink(bytes: Uint8Array): void;
}

/** Floats in [-1, 1] → grey level 0…255. */
export function toGreyLevel(v: number): number {
  return Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));
}

export class GifWriter {
  // Manual mode: the header is written once here, not again after every drain's reset.
  private readonly encoder = gifenc.GIFEncoder({ auto: false });
  private readonly options: Required<AnimationOptions>;
  private frames = 0;

  constructor(options: AnimationOptions) {
    this.options = { scale: 4, delayMs: 100, ...options };
    this.encoder.writeHeader();
  }

  get width(): number {
    const { width, panels, scale } = this.options;
    return panels * width * scale + (panels + 1) * GAP;
  }

  get height(): number {
    return this.options.height * this.options.scale + 2 * GAP;
  }

  /** One frame: a [H, W] image in [-1, 1] per panel. */
  addFrame(panels: readonly Float32Array[]): void {
    const { width: w, height: h, scale, delayMs } = this.options;
    const out = new Uint8Array(this.width * this.height).fill(255);
    panels.forEach((img, p) => {
      const ox = GAP + p * (w * scale + GAP);
      for (let y = 0; y < h * scale; y++) {
        for (let x = 0; x < w * scale; x++) {
          out[(GAP + y) * this.width + ox + x] = toGreyLevel(img[Math.floor(y / scale) * w + Math.floor(x / scale)]);
        }
      }
    });
    const first = this.frames === 0;
    this.encoder.writeFrame(out, this.width, this.height, { first, palette: first ? GREY : undefined, delay: delayMs });
    this.frames++;
    this.drain();
  }

  /** Writes the GIF trailer; the sink has then received the whole file. */
  finish(): void {
    this.encoder.finish();
    this.drain();
  }

  private drain(): void {
    this.options.sink(this.encoder.bytesView());
    this.encoder.reset();
  }
}

/** A PNG with one row per panel list (e.g. originals, reconstructions), one column per frame. */
export function frameStripPng(
  rows: readonly (readonly Float32Array[])[],
  height: number,
  width: number,
  scale = 3,
): Buffer {
  const columns = rows[0]?.length ?? 0;
  const count = rows.length * columns;
  const data = new Float32Array(count * height * width);
  rows.forEach((row, r) => {
    row.forEach((frame, c) => {
      const offset = (r * columns + c) * height * width;
      for (let i = 0; i < frame.length; i++) data[offset + i] = toGreyLevel(frame[i]) / 255;
    });
  });
  return gridPng({ data, count, channels: 1, height, width }, columns, 2, scale);
}
