/** PNG files on disk (Node only; the encoding itself is in image/png.ts). */
import { readFileSync, writeFileSync } from "node:fs";
import { PNG } from "pngjs";
import type { ImageBatch } from "../image/png.ts";

export function writePng(path: string, buffer: Buffer): void {
  writeFileSync(path, buffer);
}

/** Reads a PNG as greyscale or RGB floats in [0, 1]. */
export function readPng(path: string): ImageBatch {
  const png = PNG.sync.read(readFileSync(path));
  const data = new Float32Array(3 * png.width * png.height);
  const plane = png.width * png.height;
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) data[c * plane + i] = png.data[i * 4 + c] / 255;
  return { data, count: 1, channels: 3, height: png.height, width: png.width };
}
