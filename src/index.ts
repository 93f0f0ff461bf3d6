/**
 * Ditto's public API for Node (`import … from "ditto-dit"`): the platform-neutral core (core.ts) plus what needs
 * Node. Deep imports are not part of the contract.
 */

export { type TfupArtifact, tfupArtifact, tfupCacheFromArtifact } from "./adapt/artifact.ts";
export { type AdaptEvaluation, evaluateTfup } from "./adapt/evaluate.ts";
export { type FeatureHeadSpec, FeatureModel } from "./adapt/feature-model.ts";
export { IMAGE_SHIFTS, type ImageShift } from "./adapt/shifts.ts";
export {
  buildTfupCache,
  type ClassEmbeddings,
  predictTfup,
  TFUP_DEFAULTS,
  type TfupCache,
  type TfupOptions,
  type TfupPrediction,
} from "./adapt/tfup.ts";
export { DEFAULT_SETTINGS as BENCH_DEFAULTS, runBench } from "./bench/harness.ts";
export { CacheEngine, type EngineObserver, type RunReport, type StepTrace } from "./cache/engine.ts";
export { easycache } from "./cache/policies/easycache.ts";
export { ertacache } from "./cache/policies/ertacache.ts";
export { dbcache, fbcache } from "./cache/policies/fbcache.ts";
export { magcache } from "./cache/policies/magcache.ts";
export { none } from "./cache/policies/none.ts";
export { profilingdit } from "./cache/policies/profilingdit.ts";
export { schedule } from "./cache/policies/schedule.ts";
export { fora, taylorseer } from "./cache/policies/taylorseer.ts";
export { teacache } from "./cache/policies/teacache.ts";
export type { Approximation, CachePolicy, Decision, PolicyState, UnitSpec } from "./cache/policy.ts";
export { findPolicy, POLICIES, parseCacheSpec, policyFromConfig } from "./cache/registry.ts";
export { calibrationObservations } from "./control/calibration.ts";
export { type RolloutOptions, type RolloutResult, rollout } from "./control/rollout.ts";
export { type Episode, makeEpisodes, Simulator } from "./control/task.ts";
export { ArtifactError, DittoError, type DittoErrorCode, GraphError, InputError, ModelError } from "./errors.ts";
export { Classifier } from "./metrics/classifier.ts";
export { psnr, ssim } from "./metrics/fidelity.ts";
export { featureStats, frechetDistance } from "./metrics/frechet.ts";
export { kid, kidWithSpread } from "./metrics/kid.ts";
export { nlpd } from "./metrics/nlpd.ts";
export { checkReviewed, loadManifest, type ModelManifest } from "./model/manifest.ts";
export { writeQuantizedModel } from "./node/quant-write.ts";
export { loadClassifierFeatures } from "./node/tfup-classifier.ts";
export { extractSubModel } from "./onnx/extract.ts";
export { loadOnnx } from "./onnx/load.ts";
export { type GenerateOptions, type GenerationResult, loadPipeline, Pipeline } from "./pipeline.ts";
export { type PathKind, type Platform, platform, setPlatform } from "./platform.ts";
export { parseArtifact, readArtifact } from "./profiling/artifact.ts";
export { profileBac } from "./profiling/bac.ts";
export { profileErtaCache } from "./profiling/ertacache.ts";
export { profileRouter } from "./profiling/harmonica.ts";
export { profileMagCache } from "./profiling/magcache.ts";
export { profileProfilingDit } from "./profiling/profilingdit.ts";
export { profileTeaCache } from "./profiling/teacache.ts";
export { quantizationOnModulationPath } from "./quant/modulation-path.ts";
export { type QuantArtifact, type QuantizeOptions, quantizeModel } from "./quant/quantize.ts";
export type { Backend, Session, SessionOptions } from "./runtime/backend.ts";
export { type DiT, loadDiT } from "./runtime/dit.ts";
export { nodeBackend } from "./runtime/node-backend.ts";
export { parseJsonWithSchema, parseWithSchema, type SchemaContext } from "./schema/parse.ts";
export { type TuneOptions, type TuneResult, tune, tunedConfig } from "./tune/tune.ts";
export { type CdtModel, loadCdtModel } from "./video/cdt-model.ts";
export { type DecodeOptions, decodeVideo, type EncodeOptions, encodeVideo } from "./video/codec.ts";
export { movingFashion, movingFashionFrames } from "./video/moving-fashion.ts";
export { type ReconstructReport, reconstructVideo } from "./video/reconstruct.ts";
