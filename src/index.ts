/** Ditto's public API. Deep imports are not part of the contract. */

export { CacheEngine, type RunReport, type StepTrace } from "./cache/engine.ts";
export { none } from "./cache/policies/none.ts";
export { fora, taylorseer } from "./cache/policies/taylorseer.ts";
export type { CachePolicy, Decision, PolicyState, UnitSpec } from "./cache/policy.ts";
export { findPolicy, POLICIES, parseCacheSpec } from "./cache/registry.ts";
export { ArtifactError, DittoError, GraphError, InputError, ModelError } from "./errors.ts";
export { loadManifest, type ModelManifest } from "./model/manifest.ts";
export { extractSubModel } from "./onnx/extract.ts";
export { loadOnnx } from "./onnx/load.ts";
export { type GenerateOptions, type GenerationResult, loadPipeline, Pipeline } from "./pipeline.ts";
export type { Backend, Session, SessionOptions } from "./runtime/backend.ts";
export { type DiT, loadDiT } from "./runtime/dit.ts";
export { nodeBackend } from "./runtime/node-backend.ts";
