/**
 * Node-only image pools for `ditto adapt`: a folder of labelled PNGs, an IDX file, and a preview PNG of the sets.
 * Images come out in the classifier's range [-1, 1].
 */
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { InputError } from "../errors.ts";
import { gridPng, toUnitRange } from "../image/png.ts";
import { readIdx } from "../metrics/classifier.ts";
import { readPng, writePng } from "../node/png-file.ts";
import type { ImageSet } from "./shifts.ts";

export interface Pool {
  images: ImageSet;
  /** Absent when the pool is unlabelled: accuracies are then not defined. */
  labels?: Int32Array;
  /** Where the images came from, for tables. */
  pool: string;
}

export function firstImages(set: ImageSet, n: number): ImageSet {
  const count = Math.min(n, set.count);
  return { ...set, count, data: set.data.slice(0, count * set.channels * set.height * set.width) };
}

/** One row per set, 10 columns (short sets leave blank cells). */
export function writePreview(path: string, sets: ImageSet[]): void {
  const [first] = sets;
  const per = first.channels * first.height * first.width;
  const data = new Float32Array(sets.length * 10 * per).fill(1);
  sets.forEach((s, row) => {
    data.set(s.data.slice(0, s.count * per), row * 10 * per);
  });
  const images = { ...first, count: sets.length * 10, data: toUnitRange(data, [-1, 1]) };
  writePng(resolve(path), gridPng(images, 10, 2, 3));
}

/** 28×28 PNGs in name order; greyscale = mean of RGB, mapped to [-1, 1]. */
export function pngFolder(dir: string): Pool {
  const files = readdirSync(dir)
    .filter((f) => f.toLowerCase().endsWith(".png"))
    .sort();
  if (files.length < 2)
    throw new InputError("INPUT_INVALID", `--pool ${dir} holds ${files.length} PNG files; TFUP needs at least 2`);
  const data = new Float32Array(files.length * 784);
  const labels: number[] = [];
  files.forEach((file, i) => {
    const png = readPng(join(dir, file));
    if (png.height !== 28 || png.width !== 28)
      throw new InputError("INPUT_INVALID", `${file} is ${png.width}×${png.height}; the classifier takes 28×28 images`);
    for (let p = 0; p < 784; p++)
      data[i * 784 + p] = ((png.data[p] + png.data[784 + p] + png.data[1568 + p]) / 3) * 2 - 1;
    const m = /^(\d+)[-_. ]/.exec(file);
    labels.push(m ? Number(m[1]) : -1);
  });
  const labelled = labels.every((l) => l >= 0);
  return {
    images: { data, count: files.length, channels: 1, height: 28, width: 28 },
    labels: labelled ? Int32Array.from(labels) : undefined,
    pool: `${dir} (${files.length} PNGs${labelled ? "" : ", unlabelled"})`,
  };
}

export async function idxPool(path: string, labelsPath?: string): Promise<Pool> {
  const idx = await readIdx(path);
  if (idx.dims.length !== 3 || idx.dims[1] !== 28 || idx.dims[2] !== 28)
    throw new InputError("INPUT_INVALID", `${path} holds images of shape [${idx.dims}]; expected [N, 28, 28]`);
  const labels = labelsPath ? Int32Array.from((await readIdx(resolve(labelsPath))).data) : undefined;
  if (labels && labels.length !== idx.dims[0])
    throw new InputError("INPUT_INVALID", `--labels holds ${labels.length} labels for ${idx.dims[0]} images`);
  return {
    images: {
      data: Float32Array.from(idx.data, (v) => v / 127.5 - 1),
      count: idx.dims[0],
      channels: 1,
      height: 28,
      width: 28,
    },
    labels,
    pool: `${path} (${idx.dims[0]} images${labels ? "" : ", unlabelled"})`,
  };
}
