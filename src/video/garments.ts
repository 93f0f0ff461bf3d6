/**
 * Garment banks for Moving Fashion-MNIST from IDX files (the MNIST container: a big-endian header, then uint8
 * pixels). The default is the 1,000 Fashion-MNIST test images the package already ships for its classifier
 * (models/fashion-classifier/test-subset-images.idx), which the training recipe never sees: held-out garments.
 */
import { InputError } from "../errors.ts";
import { platform, shippedModelDir } from "../platform.ts";
import type { GarmentBank } from "./moving-fashion.ts";

export const HELD_OUT_GARMENTS = () => platform().join(shippedModelDir("fashion-classifier"), "test-subset-images.idx");

/** Parses an uncompressed IDX file of 28×28 uint8 images. */
export function parseGarmentIdx(bytes: Uint8Array, source: string): GarmentBank {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ok =
    bytes.length >= 16 && view.getUint32(0) === 0x0803 && view.getUint32(8) === 28 && view.getUint32(12) === 28;
  const count = ok ? view.getUint32(4) : 0;
  if (!ok || bytes.length !== 16 + count * 784) {
    throw new InputError(
      "INPUT_INVALID",
      `${source} is not an uncompressed IDX file of 28×28 uint8 images (magic 0x00000803); gunzip it first`,
      { path: source },
    );
  }
  return { count, pixels: bytes.subarray(16) };
}

export async function loadGarments(path: string = HELD_OUT_GARMENTS()): Promise<GarmentBank> {
  const bytes = await platform()
    .readBytes(path)
    .catch(() => {
      throw new InputError("INPUT_INVALID", `garment file not found: ${path}`, { path });
    });
  return parseGarmentIdx(bytes, path);
}
