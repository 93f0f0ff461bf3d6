/**
 * `ditto worker`: BullMQ workers that hold one loaded pipeline per registered model and run whole batches of a
 * request (never single steps), plus the light worker that gathers a finished request's batches.
 *
 * Failure rules: a DittoError (bad spec, mismatched artifact, …) fails the batch at once with its code — retrying
 * cannot fix it — and fails the request with it; anything else is retried with backoff (BullMQ attempts). A worker
 * killed mid-batch stops renewing the batch's lock, so another worker's stalled-job check puts it back in the
 * queue. Shutdown: stop taking jobs, let active ones finish for `graceMs`, then hand them back to the queue.
 */
import { DelayedError, type Job, UnrecoverableError, Worker } from "bullmq";
import { parseCacheSpec, policyFromConfig } from "../cache/registry.ts";
import { DittoError } from "../errors.ts";
import { loadPipeline, type Pipeline } from "../pipeline.ts";
import { assertReachable, redisConnection } from "./connection.ts";
import { gather } from "./gather.ts";
import {
  BATCH_QUEUE,
  type BatchJobData,
  type BatchResult,
  batchJobId,
  cancelKey,
  failureReason,
  REQUEST_QUEUE,
  type RequestJobData,
  type RequestResult,
  toBase64,
} from "./jobs.ts";
import { hidePaths, type NamedPaths, resolveConfigArtifacts, resolveSpecArtifacts } from "./registry.ts";

export interface WorkerOptions {
  redis: string;
  /** BullMQ key prefix (several deployments, or tests, can share one Redis). */
  prefix?: string;
  models: NamedPaths;
  artifacts?: NamedPaths;
  /** Batches run at once in this process (they share the model's sessions). */
  concurrency?: number;
  /** ONNX Runtime threads per operator. */
  threads?: number;
  /** How long a batch's lock lives without renewal: a killed worker's batch returns to the queue after it. */
  lockMs?: number;
  /** How long shutdown waits for active batches before handing them back. */
  graceMs?: number;
  log?: (event: Record<string, unknown>) => void;
}

export interface RunningWorker {
  /** Graceful: finish or return active batches, then disconnect. */
  close(): Promise<void>;
}

const PROGRESS_EVERY_MS = 200;
const CANCEL_POLL_MS = 250;

export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const prefix = options.prefix ?? "bull";
  const redis = redisConnection(options.redis);
  await assertReachable(redis, options.redis);
  const log = options.log ?? (() => {});
  const artifacts = options.artifacts ?? new Map();
  const pipelines = new Map<string, Pipeline>();
  for (const [name, path] of options.models) {
    const pipeline = await loadPipeline(path, { session: { intraOpThreads: options.threads } });
    // One step of one sample builds the model's sessions now: built inside the first job, they can hold the event
    // loop long enough for that job's lock to lapse and another worker to run it again.
    await pipeline.generate({ count: 1, steps: 1 });
    pipelines.set(name, pipeline);
  }
  const lockDuration = options.lockMs ?? 30_000;
  const active = new Map<string, string>(); // batch job id → request id
  let shuttingDown = false;

  const runBatch = async (job: Job<BatchJobData>, token?: string, signal?: AbortSignal): Promise<BatchResult> => {
    const d = job.data;
    log({ event: "active", job: job.id, request: d.requestId, attempt: job.attemptsMade + 1 });
    if (await redis.exists(cancelKey(prefix, d.requestId))) throw cancelled();
    const pipeline = pipelines.get(d.settings.model);
    if (!pipeline) {
      throw new UnrecoverableError(
        failureReason(
          "MODEL_NOT_FOUND",
          `this worker has no model '${d.settings.model}' (start every worker with the same --model list)`,
        ),
      );
    }
    active.set(job.id as string, d.requestId);
    let lastProgress = 0;
    try {
      const s = d.settings;
      const cache = s.cache
        ? parseCacheSpec(resolveSpecArtifacts(s.cache, artifacts))
        : s.cacheConfig
          ? policyFromConfig(resolveConfigArtifacts(s.cacheConfig, artifacts), "cacheConfig")
          : undefined;
      const result = await pipeline.generate({
        classes: d.classes,
        seeds: d.seeds,
        steps: s.steps,
        cfg: s.cfg,
        cfgMode: s.cfgMode,
        shift: s.shift,
        sampler: s.sampler,
        cache,
        batch: d.seeds.length,
        onStep: ({ step, steps }) => {
          if (signal?.aborted) throw signal.reason ?? new Error("aborted");
          const now = performance.now();
          if (now - lastProgress >= PROGRESS_EVERY_MS || step + 1 === steps) {
            lastProgress = now;
            job.updateProgress({ step: step + 1, steps }).catch(() => {});
          }
        },
      });
      const r = result.reports[0];
      log({ event: "completed", job: job.id, request: d.requestId, wallMs: Math.round(result.wallMs) });
      return {
        samples: toBase64(result.samples),
        dims: result.dims as [number, number, number, number], // image models only (checked at submission)
        report: {
          policy: r.policy,
          spec: r.spec,
          unitsComputed: r.unitsComputed,
          unitsSkipped: r.unitsSkipped,
          flopsFull: r.flopsFull,
          flopsDone: r.flopsDone,
          cachePeakBytes: r.cachePeakBytes,
          nonFiniteFallbacks: r.nonFiniteFallbacks,
          wallMs: result.wallMs,
        },
      };
    } catch (err) {
      if (signal?.aborted && shuttingDown && token) {
        // Hand the batch back without spending one of its attempts; another worker picks it up.
        await job.moveToDelayed(Date.now(), token);
        log({ event: "returned", job: job.id, request: d.requestId });
        throw new DelayedError();
      }
      if (signal?.aborted) {
        log({ event: "aborted", job: job.id, request: d.requestId });
        throw cancelled();
      }
      if (err instanceof DittoError) {
        throw new UnrecoverableError(failureReason(err.code, hidePaths(err.message, artifacts, options.models)));
      }
      log({ event: "error", job: job.id, message: (err as Error).message });
      throw err;
    } finally {
      active.delete(job.id as string);
    }
  };

  const gatherRequest = async (job: Job<RequestJobData>): Promise<RequestResult> => {
    const values = await job.getChildrenValues<BatchResult>();
    const parts = Array.from({ length: job.data.batches }, (_, i) => {
      const part = values[`${prefix}:${BATCH_QUEUE}:${batchJobId(job.id as string, i)}`];
      if (!part) throw new Error(`batch ${i} of request ${job.id} has no result`);
      return part;
    });
    log({ event: "gathered", request: job.id, batches: parts.length });
    return gather(job.data, parts);
  };

  const common = {
    connection: redis,
    prefix,
    lockDuration,
    stalledInterval: lockDuration,
    maxStalledCount: 2,
    autorun: false,
  };
  const batchWorker = new Worker<BatchJobData, BatchResult>(BATCH_QUEUE, runBatch, {
    ...common,
    concurrency: options.concurrency ?? 1,
  });
  const requestWorker = new Worker<RequestJobData, RequestResult>(REQUEST_QUEUE, gatherRequest, {
    ...common,
    concurrency: 4,
  });
  for (const w of [batchWorker, requestWorker]) {
    w.on("error", (err) => log({ event: "redis-error", message: err.message }));
    w.run().catch((err) => log({ event: "worker-error", message: (err as Error).message }));
  }
  await Promise.all([batchWorker.waitUntilReady(), requestWorker.waitUntilReady()]);

  // Cancellation crosses processes through a Redis key; each worker aborts its own active batches.
  const poll = setInterval(async () => {
    if (active.size === 0) return;
    const entries = [...active];
    const flags = await redis.mget(...entries.map(([, request]) => cancelKey(prefix, request))).catch(() => []);
    entries.forEach(([jobId], i) => {
      if (flags[i]) batchWorker.cancelJob(jobId, "cancelled by the client");
    });
  }, CANCEL_POLL_MS);

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        clearInterval(poll);
        const grace = setTimeout(() => {
          shuttingDown = true;
          batchWorker.cancelAllJobs("worker shutting down");
        }, options.graceMs ?? 60_000);
        await Promise.all([batchWorker.close(), requestWorker.close()]);
        clearTimeout(grace);
        await Promise.all([...pipelines.values()].map((p) => p.release()));
        redis.disconnect();
      })();
      return closing;
    },
  };
}

function cancelled(): UnrecoverableError {
  return new UnrecoverableError(failureReason("CANCELLED", "the request was cancelled by the client"));
}
