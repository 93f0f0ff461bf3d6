/**
 * The TFUP cache as a JSON artifact (`ditto.tfup.v1`, spec "Artifact"): build it once from a reference pool and
 * apply it, frozen, to later images — the non-transductive use the spec's pitfall 1 asks for. The header names the
 * feature extractor (SHA-256 of the classifier file and its feature layer) instead of a DiT; loading refuses a
 * cache made for another classifier.
 */
import { ArtifactError } from "../errors.ts";
import { matrix } from "./linalg.ts";
import { type ClassEmbeddings, resolveTfupParams, type TfupCache, type TfupParams } from "./tfup.ts";

export const TFUP_FORMAT = "ditto.tfup.v1";

export interface FeatureModelHeader {
  sha256: string;
  layer: string;
  classEmbeddings: string;
}

export interface TfupArtifact {
  format: typeof TFUP_FORMAT;
  featureModel: FeatureModelHeader;
  C: number;
  D: number;
  /** Normalised key features [Nc][D]. */
  keys: number[][];
  /** Class id of each key [Nc]. */
  values: number[];
  /** The keys' semantic distributions [Nc][C]. */
  Q: number[][];
  params: TfupParams & { K: number };
  pool: { N: number; source: string; duplicates: number };
}

export function tfupArtifact(cache: TfupCache, featureModel: FeatureModelHeader, source: string): TfupArtifact {
  const rows = (data: Float64Array, n: number, d: number, map = (v: number) => v) =>
    Array.from({ length: n }, (_, i) => Array.from(data.subarray(i * d, (i + 1) * d), map));
  const { classes, dim } = cache.embeddings;
  return {
    format: TFUP_FORMAT,
    featureModel,
    C: classes,
    D: dim,
    keys: rows(cache.keys.data, cache.keys.rows, dim),
    values: Array.from(cache.values),
    Q: rows(cache.logQ.data, cache.logQ.rows, classes, Math.exp),
    params: { ...cache.params, K: cache.k },
    pool: { N: cache.poolSize, source, duplicates: cache.duplicates },
  };
}

/** A frozen cache from an artifact, checked against the feature extractor and class embeddings it will meet. */
export function tfupCacheFromArtifact(
  json: unknown,
  embeddings: ClassEmbeddings,
  featureModel: FeatureModelHeader,
  path = "the TFUP artifact",
): TfupCache {
  const a = json as Partial<TfupArtifact>;
  const invalid = (what: string) =>
    new ArtifactError("ARTIFACT_INVALID", `${path} is not a valid ${TFUP_FORMAT} artifact: ${what}`, { path });
  if (a?.format !== TFUP_FORMAT) throw invalid(`format is ${JSON.stringify(a?.format)}`);
  const header = a.featureModel;
  if (header?.sha256 !== featureModel.sha256 || header.layer !== featureModel.layer)
    throw new ArtifactError(
      "ARTIFACT_MISMATCH",
      `${path} was built for classifier ${header?.sha256?.slice(0, 12)}… layer '${header?.layer}', not ` +
        `${featureModel.sha256.slice(0, 12)}… layer '${featureModel.layer}'; rebuild it with ` +
        "`ditto adapt --method tfup --pool <reference images> --save FILE`",
      { path },
    );
  const { classes: C, dim: D } = embeddings;
  if (a.C !== C || a.D !== D) throw invalid(`C × D is ${a.C} × ${a.D}, the classifier's is ${C} × ${D}`);
  const nc = a.values?.length ?? 0;
  if (!Array.isArray(a.values) || nc === 0 || a.values.some((v) => !Number.isInteger(v) || v < 0 || v >= C))
    throw invalid(`values must be class ids in 0–${C - 1}`);
  const flat = (m: unknown, cols: number, name: string) => {
    if (!Array.isArray(m) || m.length !== nc || m.some((r) => !Array.isArray(r) || r.length !== cols))
      throw invalid(`${name} must be ${nc} rows of ${cols} numbers`);
    const out = (m as number[][]).flat();
    if (!out.every(Number.isFinite)) throw invalid(`${name} holds a non-finite value`);
    return out;
  };
  const keys = flat(a.keys, D, "keys");
  const q = flat(a.Q, C, "Q");
  if (!a.params || !Number.isInteger(a.params.K)) throw invalid("params must hold alpha, beta, tauSem, sZs and K");
  const params = resolveTfupParams(a.params);
  return {
    params,
    embeddings,
    k: a.params.K,
    keys: matrix(keys, nc, D),
    values: Int32Array.from(a.values),
    poolIndices: Int32Array.from({ length: nc }, () => -1),
    // Q underflows to 0 only beyond e^−745; clamp so its log stays finite.
    logQ: matrix(
      q.map((v) => Math.log(Math.max(v, Number.MIN_VALUE))),
      nc,
      C,
    ),
    duplicates: a.pool?.duplicates ?? 0,
    poolSize: a.pool?.N ?? 0,
  };
}
