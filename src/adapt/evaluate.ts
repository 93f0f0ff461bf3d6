/**
 * Plain vs TFUP-adapted accuracy of a classifier on one image set. Transductive, as in the paper (spec pitfall 1):
 * the cache is built from the very set being evaluated, with no labels; labels are read only to score. Pass a
 * `frozen` cache (built from a reference pool) to evaluate without building one from the set.
 */
import { accuracy } from "../metrics/classifier.ts";
import type { FeatureModel } from "./feature-model.ts";
import type { ImageSet } from "./shifts.ts";
import { buildTfupCache, predictTfup, type TfupCache, type TfupOptions, type TfupParams } from "./tfup.ts";

export interface AdaptEvaluation {
  images: number;
  /** Accuracy of the classifier's own logits (NaN without labels). */
  plainAccuracy: number;
  /** Accuracy of the TFUP-adapted logits (NaN without labels). */
  adaptedAccuracy: number;
  /** Images whose predicted class TFUP changed. */
  changed: number;
  /** Keys per class, total keys, and pool samples kept under more than one class. */
  k: number;
  keys: number;
  duplicates: number;
  params: TfupParams;
  /** The cache used: built from this set, or the frozen one passed in. */
  cache: TfupCache;
}

/** Classifier heads are linear: z = f·Wᵀ + b (the classifier's logits), τ_sem = 1 (spec, hyperparameter table). */
export const CLASSIFIER_TFUP: TfupOptions = { head: "linear" };

export async function evaluateTfup(
  model: FeatureModel,
  set: ImageSet,
  labels?: ArrayLike<number>,
  options: TfupOptions = CLASSIFIER_TFUP,
  frozen?: TfupCache,
): Promise<AdaptEvaluation> {
  const features = await model.extract(set.data, set.count);
  const cache = frozen ?? buildTfupCache(features, model.embeddings, options);
  const p = predictTfup(features, cache);
  let changed = 0;
  for (let i = 0; i < set.count; i++) if (p.predictions[i] !== p.zeroShotPredictions[i]) changed++;
  return {
    images: set.count,
    plainAccuracy: labels ? accuracy(p.zeroShotPredictions, labels) : Number.NaN,
    adaptedAccuracy: labels ? accuracy(p.predictions, labels) : Number.NaN,
    changed,
    k: cache.k,
    keys: cache.values.length,
    duplicates: cache.duplicates,
    params: cache.params,
    cache,
  };
}
