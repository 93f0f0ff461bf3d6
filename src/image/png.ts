/** PNG encoding and decoding (pngjs: pure JavaScript, no native build) and image grids. */
import { PNG } from "pngjs";

/** Images as floats in [0, 1], [N, C, H, W] with C = 1 (grey) or 3 (RGB). */
export interface ImageBatch {
  data: Float32Array;
  count: number;
  channels: number;
  height: number;
  width: number;
}

// Lives in its own module so the browser build can use it without pngjs.
export { toUnitRange } from "./unit-range.ts";

/** Lays images out row by row, `columns` per row, with a `gap`-pixel border; returns an RGBA PNG buffer. */
export function gridPng(images: ImageBatch, columns: number, gap = 2, scale = 1): Buffer {
  const { count, channels, height: h, width: w } = images;
  const rows = Math.ceil(count / columns);
  const cellW = w * scale;
  const cellH = h * scale;
  const png = new PNG({ width: columns * (cellW + gap) + gap, height: rows * (cellH + gap) + gap });
  png.data.fill(255);
  for (let n = 0; n < count; n++) {
    const ox = gap + (n % columns) * (cellW + gap);
    const oy = gap + Math.floor(n / columns) * (cellH + gap);
    for (let y = 0; y < cellH; y++) {
      for (let x = 0; x < cellW; x++) {
        const src = (yy: number, c: number) => images.data[((n * channels + c) * h + yy) * w + Math.floor(x / scale)];
        const sy = Math.floor(y / scale);
        const dst = ((oy + y) * png.width + ox + x) * 4;
        for (let c = 0; c < 3; c++) png.data[dst + c] = Math.round(255 * src(sy, channels === 1 ? 0 : c));
        png.data[dst + 3] = 255;
      }
    }
  }
  return PNG.sync.write(png);
}

// PNG files on disk are Node-only; re-exported here so existing imports keep working.
export { readPng, writePng } from "../node/png-file.ts";
