/**
 * Node-only loading for TFUP: a classifier folder's manifest → its feature extractor (graph edit) and class
 * embeddings, and the classifier's shipped labelled test images.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type FeatureHeadSpec, FeatureModel } from "../adapt/feature-model.ts";
import { ModelError } from "../errors.ts";
import { readIdx } from "../metrics/classifier.ts";
import { DEFAULT_CLASSIFIER_DIR } from "../model/manifest.ts";
import { loadOnnx } from "../onnx/load.ts";
import type { Backend, SessionOptions } from "../runtime/backend.ts";
import { nodeBackend } from "../runtime/node-backend.ts";

export interface ClassifierFiles {
  dir: string;
  name: string;
  onnx: string;
  sha256: string;
  classNames?: string[];
  featureModel: FeatureModel;
}

interface ClassifierManifestFields {
  name?: string;
  onnx?: string;
  classNames?: string[];
  featureHead?: Partial<FeatureHeadSpec>;
  inputs?: Record<string, { range?: [number, number] }>;
  testSubset?: { images: string; labels: string };
}

function readManifest(dir: string): ClassifierManifestFields {
  try {
    return JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
  } catch (err) {
    throw new ModelError(
      "MODEL_NOT_FOUND",
      `no readable classifier manifest.json in ${dir} (${(err as Error).message}); the shipped one is models/fashion-classifier`,
      { dir },
    );
  }
}

/** Loads a classifier folder whose manifest names `featureHead: { features, classEmbeddings }`. */
export async function loadClassifierFeatures(
  dir = DEFAULT_CLASSIFIER_DIR,
  backend: Backend = nodeBackend,
  session: SessionOptions = {},
): Promise<ClassifierFiles> {
  const manifest = readManifest(dir);
  const head = manifest.featureHead;
  if (!manifest.onnx || typeof head?.features !== "string" || typeof head?.classEmbeddings !== "string")
    throw new ModelError(
      "MANIFEST_INVALID",
      `${join(dir, "manifest.json")} must give "onnx" and "featureHead": {"features": "<penultimate tensor>", ` +
        `"classEmbeddings": "<last layer's weight initializer>"} for TFUP (list tensors with \`ditto inspect MODEL.onnx --tensors\`)`,
      { dir },
    );
  const loaded = await loadOnnx(join(dir, manifest.onnx));
  const range = Object.values(manifest.inputs ?? {})[0]?.range;
  const spec = { features: head.features, classEmbeddings: head.classEmbeddings };
  const featureModel = await FeatureModel.create(loaded.proto, spec, backend, { range }, session);
  return {
    dir,
    name: manifest.name ?? dir,
    onnx: loaded.path,
    sha256: loaded.sha256,
    classNames: manifest.classNames,
    featureModel,
  };
}

/** The classifier's shipped labelled test images, scaled to [-1, 1], [N, 1, 28, 28]. */
export async function loadTestPool(dir = DEFAULT_CLASSIFIER_DIR): Promise<{
  images: Float32Array;
  labels: Int32Array;
  count: number;
}> {
  const subset = readManifest(dir).testSubset;
  if (!subset)
    throw new ModelError(
      "MANIFEST_INVALID",
      `${dir}/manifest.json has no "testSubset"; pass --pool with your own images`,
    );
  const images = await readIdx(join(dir, subset.images));
  const labels = await readIdx(join(dir, subset.labels));
  return {
    images: Float32Array.from(images.data, (v) => v / 127.5 - 1),
    labels: Int32Array.from(labels.data),
    count: images.dims[0],
  };
}
