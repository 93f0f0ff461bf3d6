/**
 * What travels through Redis: queue names, the data of a request (the gathering parent job) and of its per-batch
 * child jobs, their retry options, and how a failure's DittoError code rides in BullMQ's failedReason.
 *
 * Whole generations are distributed, never single steps: a trajectory's cache state belongs to one process.
 */
import type { CfgMode } from "../sampling/denoise.ts";
import type { SamplerKind } from "../sampling/samplers.ts";

/** Child jobs, one per batch of samples: the GPU/CPU-heavy part. */
export const BATCH_QUEUE = "ditto-batch";
/** Parent jobs, one per request: gather the children's samples into the report and the PNG grid. */
export const REQUEST_QUEUE = "ditto-request";

/** The generation settings shared by every batch of one request (names and paths already checked by the API). */
export interface GenerationSettings {
  model: string;
  steps: number;
  cfg?: number;
  cfgMode?: CfgMode;
  shift?: number;
  sampler?: SamplerKind;
  /** A cache spec string; registered artifacts by name (artifact=NAME), never a path. */
  cache?: string;
  cacheConfig?: Record<string, unknown>;
}

export interface BatchJobData {
  requestId: string;
  index: number;
  settings: GenerationSettings;
  classes?: number[];
  seeds: number[];
}

export interface BatchResult {
  /** Float32 samples [n, C, H, W] in model space, base64 of the little-endian bytes. */
  samples: string;
  dims: [number, number, number, number];
  report: BatchReport;
}

/** The parts of the engine's RunReport a client needs (the per-step trace stays in the worker). */
export interface BatchReport {
  policy: string;
  spec: string;
  unitsComputed: number;
  unitsSkipped: number;
  flopsFull: number;
  flopsDone: number;
  cachePeakBytes: number;
  nonFiniteFallbacks: number;
  wallMs: number;
}

export interface RequestJobData {
  /** Name of the API key that submitted it: only that key may read or cancel it. */
  owner: string;
  settings: GenerationSettings;
  samples: number;
  batches: number;
  /** Grid layout of the PNG: one row per class, one column per seed (as `ditto generate`). */
  columns: number;
  scale: number;
  /** The model's value range, to map samples to pixels without loading the model. */
  range: [number, number];
  classes: number[] | null;
  seeds: number[];
}

export interface RequestResult {
  /** The PNG grid, base64. */
  png: string;
  /** All samples, [N, C, H, W] float32 little-endian, base64. */
  samples: string;
  dims: [number, number, number, number];
  report: BatchReport & { idealSpeedup: number; batches: number };
}

export function batchJobId(requestId: string, index: number): string {
  return `${requestId}-b${index}`;
}

/**
 * Retries with exponential backoff for failures that may pass (a worker's crash, a lost connection); DittoErrors
 * are not retried (see failureReason). A killed worker's job comes back through BullMQ's stalled-job check.
 */
export const BATCH_JOB_OPTIONS = {
  attempts: 3,
  backoff: { type: "exponential", delay: 1000 },
  removeOnComplete: { age: 24 * 3600 },
  removeOnFail: { age: 7 * 24 * 3600 },
  failParentOnFailure: true,
} as const;

export const REQUEST_JOB_OPTIONS = {
  attempts: 3,
  backoff: { type: "exponential", delay: 1000 },
  removeOnComplete: { age: 24 * 3600 },
  removeOnFail: { age: 7 * 24 * 3600 },
} as const;

/** The code a failed job carries, e.g. "[OPTION_INVALID] …" → { code, message }. */
export function failureReason(code: string, message: string): string {
  return `[${code}] ${message}`;
}

export function parseFailure(reason: string | undefined): { code: string; message: string } {
  const m = /^\[([A-Z_]+)\] ([\s\S]*)$/.exec(reason ?? "");
  if (m) return { code: m[1], message: m[2] };
  return { code: "JOB_FAILED", message: reason || "the job failed without a reason" };
}

/** Redis key that marks a request as cancelled (workers poll it for their active jobs). */
export function cancelKey(prefix: string, requestId: string): string {
  return `${prefix}:ditto:cancelled:${requestId}`;
}

export function toBase64(samples: Float32Array): string {
  return Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength).toString("base64");
}

export function fromBase64(text: string): Float32Array {
  const bytes = Buffer.from(text, "base64");
  const out = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}
