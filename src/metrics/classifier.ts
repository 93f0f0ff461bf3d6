/**
 * The shipped evaluation classifier (models/fashion-classifier): logits for accuracy, penultimate features for the
 * Fréchet distance and the feature distance to uncached samples; plus its test-set statistics and image subset.
 */
import { Tensor } from "onnxruntime-common";
import { ModelError } from "../errors.ts";
import { DEFAULT_CLASSIFIER_DIR } from "../model/manifest.ts";
import { platform } from "../platform.ts";
import type { Backend, Session, SessionOptions } from "../runtime/backend.ts";
import type { FeatureStats } from "./frechet.ts";

export interface ClassifierOutput {
  logits: Float32Array;
  features: Float32Array;
  featureDim: number;
  predictions: Int32Array;
}

interface ClassifierManifest {
  onnx: string;
  testAccuracy: number;
  testStats: string;
  testSubset: { images: string; labels: string; count: number };
  inputs: { image: { shape: (number | string)[]; range: [number, number] } };
}

export class Classifier {
  readonly dir: string;
  readonly manifest: ClassifierManifest;
  private readonly session: Session;

  private constructor(dir: string, manifest: ClassifierManifest, session: Session) {
    this.dir = dir;
    this.manifest = manifest;
    this.session = session;
  }

  static async load(
    dir = DEFAULT_CLASSIFIER_DIR,
    backend: Backend = platform().backend,
    options: SessionOptions = {},
  ): Promise<Classifier> {
    let manifest: ClassifierManifest;
    try {
      manifest = JSON.parse(await platform().readText(platform().join(dir, "manifest.json")));
    } catch {
      throw new ModelError(
        "MODEL_NOT_FOUND",
        `no classifier manifest in ${dir}; the evaluation classifier ships in models/fashion-classifier`,
      );
    }
    const session = await backend.createSession(
      await platform().readBytes(platform().join(dir, manifest.onnx)),
      options,
    );
    return new Classifier(dir, manifest, session);
  }

  /** Classifies images given in [-1, 1] (the model's sample range), [N, 1, 28, 28]; clamps out-of-range values. */
  async classify(images: Float32Array, count: number, batch = 250): Promise<ClassifierOutput> {
    const per = images.length / count;
    const logits: number[] = [];
    const features: number[] = [];
    let featureDim = 0;
    for (let start = 0; start < count; start += batch) {
      const n = Math.min(batch, count - start);
      const x = images.slice(start * per, (start + n) * per).map((v) => Math.min(1, Math.max(-1, v)));
      const out = await this.session.run({ image: new Tensor("float32", x, [n, 1, 28, 28]) });
      for (const v of out.logits.data as Float32Array) logits.push(v);
      for (const v of out.features.data as Float32Array) features.push(v);
      featureDim = out.features.dims[1];
    }
    const classes = logits.length / count;
    const predictions = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      let best = 0;
      for (let k = 1; k < classes; k++) if (logits[i * classes + k] > logits[i * classes + best]) best = k;
      predictions[i] = best;
    }
    return { logits: Float32Array.from(logits), features: Float32Array.from(features), featureDim, predictions };
  }

  /** Mean and covariance of the features over the 10,000 Fashion-MNIST test images (the FD reference). */
  async testStats(): Promise<FeatureStats> {
    return JSON.parse(await platform().readText(platform().join(this.dir, this.manifest.testStats))) as FeatureStats;
  }

  /** The shipped test subset, images scaled to [-1, 1]. */
  async testSubset(): Promise<{ images: Float32Array; labels: Int32Array; count: number }> {
    const images = await readIdx(platform().join(this.dir, this.manifest.testSubset.images));
    const labels = await readIdx(platform().join(this.dir, this.manifest.testSubset.labels));
    return {
      images: Float32Array.from(images.data, (v) => v / 127.5 - 1),
      labels: Int32Array.from(labels.data),
      count: images.dims[0],
    };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

export function accuracy(predictions: Int32Array, labels: ArrayLike<number>): number {
  let correct = 0;
  for (let i = 0; i < predictions.length; i++) if (predictions[i] === labels[i]) correct++;
  return correct / predictions.length;
}

/** Mean Euclidean distance between paired feature vectors (cached sample vs its uncached twin). Not LPIPS. */
export function meanFeatureDistance(a: Float32Array, b: Float32Array, dim: number): number {
  const n = a.length / dim;
  let total = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += (a[i * dim + j] - b[i * dim + j]) ** 2;
    total += Math.sqrt(s);
  }
  return total / n;
}

/** IDX (the MNIST container): magic 0,0,dtype,ndim; big-endian uint32 dims; then the data (uint8 here). */
export async function readIdx(path: string): Promise<{ dims: number[]; data: Uint8Array }> {
  const buf = await platform().readBytes(path);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf[0] !== 0 || buf[1] !== 0 || buf[2] !== 0x08)
    throw new ModelError("MODEL_MALFORMED", `${path} is not a uint8 IDX file`);
  const ndim = buf[3];
  const dims = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i));
  return {
    dims,
    data: new Uint8Array(
      buf.buffer,
      buf.byteOffset + 4 + 4 * ndim,
      dims.reduce((a, b) => a * b, 1),
    ),
  };
}
