/**
 * The shipped evaluation classifier (models/fashion-classifier): logits for accuracy, penultimate features for the
 * Fréchet distance and the feature distance to uncached samples; plus its test-set statistics and image subset.
 */
import { Tensor } from "onnxruntime-common";
import { InputError, ModelError } from "../errors.ts";
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
  name?: string;
  onnx: string;
  testAccuracy: number;
  /** Feature mean and covariance over a reference set (the FD reference); without it FD is not available. */
  testStats?: string;
  testSubset?: { images: string; labels: string; count: number };
  /** One image input: [batch, C, H, W] and its value range. */
  inputs: Record<string, { shape: (number | string)[]; range?: [number, number] }>;
  outputs?: Record<string, { shape?: (number | string)[] }>;
  classNames?: string[];
  /** TFUP's feature head (src/adapt/classifier-files.ts). */
  featureHead?: { features?: string; classEmbeddings?: string };
}

export class Classifier {
  readonly dir: string;
  readonly manifest: ClassifierManifest;
  /** The image input's name, layout [C, H, W] and value range. */
  readonly input: { name: string; shape: [number, number, number]; range: [number, number] };
  private readonly session: Session;

  private constructor(dir: string, manifest: ClassifierManifest, session: Session) {
    this.dir = dir;
    this.manifest = manifest;
    this.session = session;
    const [name, spec] = Object.entries(manifest.inputs ?? {})[0] ?? [];
    const [, c, h, w] = spec?.shape ?? [];
    if (!name || typeof c !== "number" || typeof h !== "number" || typeof w !== "number")
      throw new ModelError(
        "MANIFEST_INVALID",
        `${dir}/manifest.json must give the image input as "inputs": {"<name>": {"shape": ["batch", C, H, W], "range": [lo, hi]}}`,
        { dir },
      );
    this.input = { name, shape: [c, h, w], range: spec?.range ?? [-1, 1] };
  }

  /** A short name for reports. */
  get name(): string {
    return this.manifest.name ?? this.dir.split(/[\\/]/).pop() ?? this.dir;
  }

  /** Classes the classifier tells apart: its class names, else the logits' width; undefined if neither is given. */
  get numClasses(): number | undefined {
    const width = this.manifest.outputs?.logits?.shape?.[1];
    return this.manifest.classNames?.length ?? (typeof width === "number" ? width : undefined);
  }

  /** Whether FD has a reference (the manifest names feature statistics). */
  get hasTestStats(): boolean {
    return typeof this.manifest.testStats === "string";
  }

  get hasTestSubset(): boolean {
    return this.manifest.testSubset !== undefined;
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

  /** Classifies images given in the classifier's input range, [N, C, H, W]; clamps out-of-range values. */
  async classify(images: Float32Array, count: number, batch = 250): Promise<ClassifierOutput> {
    const per = images.length / count;
    const [c, h, w] = this.input.shape;
    const [lo, hi] = this.input.range;
    if (per !== c * h * w)
      throw new InputError(
        "INPUT_INVALID",
        `the evaluation classifier ${this.name} takes ${c}×${h}×${w} images, got ${per} values per image`,
      );
    const logits: number[] = [];
    const features: number[] = [];
    let featureDim = 0;
    for (let start = 0; start < count; start += batch) {
      const n = Math.min(batch, count - start);
      const x = images.slice(start * per, (start + n) * per).map((v) => Math.min(hi, Math.max(lo, v)));
      const out = await this.session.run({ [this.input.name]: new Tensor("float32", x, [n, c, h, w]) });
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
    if (!this.manifest.testStats)
      throw new ModelError("MANIFEST_INVALID", `${this.dir}/manifest.json names no "testStats" (FD's reference)`);
    return JSON.parse(await platform().readText(platform().join(this.dir, this.manifest.testStats))) as FeatureStats;
  }

  /** The shipped test subset, images scaled to [-1, 1]. */
  async testSubset(): Promise<{ images: Float32Array; labels: Int32Array; count: number }> {
    if (!this.manifest.testSubset)
      throw new ModelError("MANIFEST_INVALID", `${this.dir}/manifest.json names no "testSubset"`);
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
