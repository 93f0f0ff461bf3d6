/**
 * The platform-neutral core: everything in the Node entry except what needs Node (onnxruntime-node, the file
 * system, PNG files, charts, the benchmark harness). A browser build imports this (`ditto-dit/core`) and installs
 * its platform with `setPlatform` (file access by fetch, onnxruntime-web) before loading a model.
 */

export { CacheEngine, type EngineObserver, type RunReport, type StepTrace } from "./cache/engine.ts";
export { ertacache } from "./cache/policies/ertacache.ts";
export { dbcache, fbcache } from "./cache/policies/fbcache.ts";
export { none } from "./cache/policies/none.ts";
export { profilingdit } from "./cache/policies/profilingdit.ts";
export { schedule } from "./cache/policies/schedule.ts";
export { fora, taylorseer } from "./cache/policies/taylorseer.ts";
export { teacache } from "./cache/policies/teacache.ts";
export type { Approximation, CachePolicy, Decision, PolicyState, UnitSpec } from "./cache/policy.ts";
export { findPolicy, POLICIES, parseCacheSpec, policyFromConfig } from "./cache/registry.ts";
export { ArtifactError, DittoError, type DittoErrorCode, GraphError, InputError, ModelError } from "./errors.ts";
export { Classifier } from "./metrics/classifier.ts";
export { psnr, ssim } from "./metrics/fidelity.ts";
export { featureStats, frechetDistance } from "./metrics/frechet.ts";
export { nlpd } from "./metrics/nlpd.ts";
export { checkReviewed, loadManifest, type ModelManifest, validateManifest } from "./model/manifest.ts";
export { extractSubModel } from "./onnx/extract.ts";
export { decodeOnnx, loadOnnx } from "./onnx/load.ts";
export { type GenerateOptions, type GenerationResult, loadPipeline, Pipeline } from "./pipeline.ts";
export { type PathKind, type Platform, platform, setPlatform } from "./platform.ts";
export { parseArtifact, readArtifact } from "./profiling/artifact.ts";
export type { Backend, Session, SessionOptions } from "./runtime/backend.ts";
export { type DiT, loadDiT } from "./runtime/dit.ts";
export { parseJsonWithSchema, parseWithSchema, type SchemaContext } from "./schema/parse.ts";
