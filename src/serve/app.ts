/**
 * The HTTP API (Hono: Web-standard Request/Response handlers, a built-in body limit, no plugin system to learn, and
 * routes testable without a socket). Every route but /health needs an API key; each key has its own rate limit,
 * and submissions are refused with 429 + Retry-After while the queue is full (back-pressure instead of an
 * unbounded backlog).
 *
 *   POST   /v1/jobs                 submit a generation → 202 { id }
 *   GET    /v1/jobs/:id[?wait=S]    state, progress (step/total), error code, report; waits up to S s for the end
 *   GET    /v1/jobs/:id/result.png  the PNG grid (rows = classes, columns = seeds)
 *   GET    /v1/jobs/:id/samples     raw float32 samples [N, C, H, W] (header X-Ditto-Dims)
 *   DELETE /v1/jobs/:id             cancel
 *   GET    /v1/models               the models served, by name
 */
import { randomUUID } from "node:crypto";
import { type FlowProducer, Job, type Queue, type QueueEvents } from "bullmq";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Redis } from "ioredis";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { DittoError, InputError } from "../errors.ts";
import { classCondition, type ResolvedManifest, requireImage } from "../model/manifest.ts";
import {
  BATCH_JOB_OPTIONS,
  BATCH_QUEUE,
  type BatchJobData,
  batchJobId,
  cancelKey,
  parseFailure,
  REQUEST_JOB_OPTIONS,
  REQUEST_QUEUE,
  type RequestJobData,
  type RequestResult,
} from "./jobs.ts";
import { authenticate, type KeyTable } from "./keys.ts";
import { hidePaths, type NamedPaths } from "./registry.ts";
import { type ValidatedRequest, validateRequest } from "./request.ts";

export interface ApiLimits {
  /** Largest request body in bytes. */
  maxBodyBytes: number;
  /** Requests per key per minute, all routes together. */
  ratePerMinute: number;
  /** Batches waiting in the queue above which submissions get 429. */
  maxQueued: number;
  /** Retry-After (s) sent when the queue is full. */
  queueRetryAfterS: number;
  maxSamples: number;
}

export const DEFAULT_LIMITS: ApiLimits = {
  maxBodyBytes: 64 * 1024,
  ratePerMinute: 600,
  maxQueued: 1000,
  queueRetryAfterS: 5,
  maxSamples: 256,
};

export interface ApiDeps {
  redis: Redis;
  prefix: string;
  batchQueue: Queue<BatchJobData>;
  requestQueue: Queue<RequestJobData>;
  requestEvents: QueueEvents;
  flows: FlowProducer;
  keys: KeyTable;
  models: ReadonlyMap<string, ResolvedManifest>;
  artifacts: NamedPaths;
  limits: ApiLimits;
}

type Env = { Variables: { keyName: string } };

const MAX_WAIT_S = 60;

export function createApi(deps: ApiDeps): Hono<Env> {
  const { limits } = deps;
  const app = new Hono<Env>();
  const limiter = new RateLimiterRedis({
    storeClient: deps.redis,
    keyPrefix: `${deps.prefix}:ditto:rate`,
    points: limits.ratePerMinute,
    duration: 60,
  });

  app.onError((err, c) => {
    if (err instanceof DittoError) {
      return c.json(errorBody(err.code, hidePaths(err.message, deps.artifacts, modelDirs(deps.models))), 400);
    }
    console.error(`ditto serve: ${(err as Error).stack ?? err}`);
    return c.json(errorBody("INTERNAL", "the server failed to answer; see its log"), 500);
  });
  app.notFound((c) => c.json(errorBody("NOT_FOUND", `no route ${c.req.method} ${c.req.path}`), 404));

  app.get("/health", async (c) => {
    const redis = await deps.redis.ping().then(
      () => "up",
      () => "down",
    );
    return c.json({ ok: redis === "up", redis }, redis === "up" ? 200 : 503);
  });

  app.use("/v1/*", async (c, next) => {
    const header = c.req.header("authorization");
    const presented = header?.startsWith("Bearer ") ? header.slice(7).trim() : c.req.header("x-api-key");
    const keyName = authenticate(deps.keys, presented);
    if (!keyName) {
      c.header("WWW-Authenticate", 'Bearer realm="ditto"');
      return c.json(errorBody("UNAUTHORIZED", "an API key is required: send Authorization: Bearer KEY"), 401);
    }
    try {
      await limiter.consume(keyName);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      c.header("Retry-After", String(Math.max(1, Math.ceil(err.msBeforeNext / 1000))));
      return c.json(
        errorBody(
          "RATE_LIMITED",
          `key ${keyName} is over its ${limits.ratePerMinute} requests per minute; retry later`,
        ),
        429,
      );
    }
    c.set("keyName", keyName);
    await next();
  });

  app.get("/v1/models", (c) =>
    c.json({
      models: [...deps.models].map(([name, m]) => ({
        name,
        classes: classCondition(m)?.numClasses ?? 0,
        classNames: m.classNames ?? null,
        image: m.image,
        recommended: m.recommended ?? null,
      })),
    }),
  );

  app.post(
    "/v1/jobs",
    bodyLimit({
      maxSize: limits.maxBodyBytes,
      onError: (c) => c.json(errorBody("BODY_TOO_LARGE", `the request body is over ${limits.maxBodyBytes} bytes`), 413),
    }),
    async (c) => {
      const body = await c.req.json().catch(() => {
        throw new InputError(
          "INPUT_INVALID",
          "the request body must be a JSON object (Content-Type: application/json)",
        );
      });
      const request = validateRequest(body, deps.models, deps.artifacts, limits);
      const counts = await deps.batchQueue.getJobCounts("waiting", "prioritized", "delayed");
      const queued = Object.values(counts).reduce((a, n) => a + n, 0);
      if (queued >= limits.maxQueued) {
        c.header("Retry-After", String(limits.queueRetryAfterS));
        return c.json(errorBody("QUEUE_FULL", `${queued} batches are waiting; retry later`), 429);
      }
      const id = randomUUID();
      const batches = await submit(deps, id, c.get("keyName"), request);
      return c.json({ id, state: "waiting", samples: request.seeds.length, batches, status: `/v1/jobs/${id}` }, 202);
    },
  );

  app.get("/v1/jobs/:id", async (c) => {
    const job = await ownedJob(deps, c.req.param("id"), c.get("keyName"));
    if (!job) return c.json(jobNotFound(c.req.param("id")), 404);
    const wait = Math.min(MAX_WAIT_S, Math.max(0, Number(c.req.query("wait") ?? 0) || 0));
    let status = await jobStatus(deps, job);
    if (wait > 0 && !isFinal(status.state)) {
      await job.waitUntilFinished(deps.requestEvents, wait * 1000).catch(() => {});
      status = await jobStatus(deps, (await Job.fromId<RequestJobData>(deps.requestQueue, job.id as string)) ?? job);
    }
    return c.json(status);
  });

  app.get("/v1/jobs/:id/result.png", async (c) => {
    const result = await finishedResult(deps, c.req.param("id"), c.get("keyName"));
    if (result instanceof Response) return result;
    return c.body(Buffer.from(result.png, "base64"), 200, { "Content-Type": "image/png" });
  });

  app.get("/v1/jobs/:id/samples", async (c) => {
    const result = await finishedResult(deps, c.req.param("id"), c.get("keyName"));
    if (result instanceof Response) return result;
    return c.body(Buffer.from(result.samples, "base64"), 200, {
      "Content-Type": "application/octet-stream",
      "X-Ditto-Dims": result.dims.join(","),
    });
  });

  app.delete("/v1/jobs/:id", async (c) => {
    const job = await ownedJob(deps, c.req.param("id"), c.get("keyName"));
    if (!job) return c.json(jobNotFound(c.req.param("id")), 404);
    const state = await job.getState();
    if (state === "completed" || state === "failed") {
      return c.json(errorBody("JOB_FINISHED", `job ${job.id} has already ${state}; nothing to cancel`), 409);
    }
    // Workers abort the request's active batches within a poll interval and fail its queued ones when they
    // reach them (see worker.ts); the flag outlives the job's records.
    await deps.redis.set(cancelKey(deps.prefix, job.id as string), "1", "EX", 7 * 24 * 3600);
    return c.json({ id: job.id, state: "cancelled" });
  });

  return app;

  async function finishedResult(d: ApiDeps, id: string, owner: string): Promise<RequestResult | Response> {
    const job = await ownedJob(d, id, owner);
    if (!job) return Response.json(jobNotFound(id), { status: 404 });
    if (!(await job.isCompleted())) {
      return Response.json(errorBody("NOT_READY", `job ${id} has not completed; see GET /v1/jobs/${id}`), {
        status: 409,
      });
    }
    return job.returnvalue as RequestResult;
  }
}

/** One parent job (gathers) with one child per batch: a BullMQ flow, added atomically. */
async function submit(deps: ApiDeps, id: string, owner: string, r: ValidatedRequest): Promise<number> {
  const batches = Math.ceil(r.seeds.length / r.batch);
  const data: RequestJobData = {
    owner,
    settings: r.settings,
    samples: r.seeds.length,
    batches,
    columns: r.columns,
    scale: r.scale,
    range: requireImage(r.manifest, "ditto serve").range,
    classes: r.classes,
    seeds: r.seeds,
  };
  await deps.flows.add({
    name: "request",
    queueName: REQUEST_QUEUE,
    data,
    opts: { jobId: id, ...REQUEST_JOB_OPTIONS },
    children: Array.from({ length: batches }, (_, i) => {
      const lo = i * r.batch;
      const hi = Math.min(r.seeds.length, lo + r.batch);
      const child: BatchJobData = {
        requestId: id,
        index: i,
        settings: r.settings,
        classes: r.classes?.slice(lo, hi),
        seeds: r.seeds.slice(lo, hi),
      };
      return {
        name: "batch",
        queueName: BATCH_QUEUE,
        data: child,
        opts: { jobId: batchJobId(id, i), ...BATCH_JOB_OPTIONS },
      };
    }),
  });
  return batches;
}

async function ownedJob(deps: ApiDeps, id: string, owner: string): Promise<Job<RequestJobData> | undefined> {
  if (!/^[0-9a-f-]{36}$/.test(id)) return undefined;
  const job = await Job.fromId<RequestJobData>(deps.requestQueue, id);
  return job && job.data.owner === owner ? job : undefined;
}

/** "cancelling": cancelled while a batch still runs; the worker aborts it at its next step. */
export type JobState = "waiting" | "active" | "completed" | "failed" | "cancelling" | "cancelled";

function isFinal(state: JobState): boolean {
  return state === "completed" || state === "failed" || state === "cancelled";
}

async function jobStatus(deps: ApiDeps, job: Job<RequestJobData>) {
  const id = job.id as string;
  const d = job.data;
  const [parentState, cancelled, children] = await Promise.all([
    job.getState(),
    deps.redis.exists(cancelKey(deps.prefix, id)),
    Promise.all(
      Array.from({ length: d.batches }, async (_, i) => {
        const child = await Job.fromId(deps.batchQueue, batchJobId(id, i));
        return child ? { job: child, state: await child.getState() } : undefined;
      }),
    ),
  ]);
  let step = 0;
  let done = 0;
  let running = false;
  for (const child of children) {
    if (!child || child.state === "completed" || parentState === "completed") {
      // A finished request's children may already be cleaned up; a missing child of a live one has completed.
      step += d.settings.steps;
      done++;
    } else if (child.state === "active") {
      running = true;
      const p = child.job.progress as { step?: number } | number;
      step += typeof p === "object" ? (p.step ?? 0) : 0;
    }
  }
  const failedChild = children.find((c) => c?.state === "failed");
  let state: JobState;
  if (parentState === "completed") state = "completed";
  else if (cancelled) state = running ? "cancelling" : "cancelled";
  else if (parentState === "failed") state = "failed";
  else if (parentState === "waiting-children" && !running && done === 0) state = "waiting";
  else state = "active";
  const error =
    state === "failed" || state === "cancelled"
      ? parseFailure(
          failedChild?.job.failedReason ??
            job.failedReason ??
            (cancelled ? "[CANCELLED] cancelled by the client" : undefined),
        )
      : undefined;
  const result = state === "completed" ? (job.returnvalue as RequestResult) : undefined;
  return {
    id,
    state,
    model: d.settings.model,
    samples: d.samples,
    progress: { step, total: d.settings.steps * d.batches },
    batches: { done, total: d.batches },
    ...(error ? { error } : {}),
    ...(result
      ? { report: result.report, result: `/v1/jobs/${id}/result.png`, samplesUrl: `/v1/jobs/${id}/samples` }
      : {}),
    createdAt: new Date(job.timestamp).toISOString(),
    finishedAt: job.finishedOn ? new Date(job.finishedOn).toISOString() : null,
  };
}

function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

function jobNotFound(id: string) {
  return errorBody("JOB_NOT_FOUND", `no job ${id} for this key (jobs are kept for a day after they finish)`);
}

function modelDirs(models: ReadonlyMap<string, ResolvedManifest>): NamedPaths {
  return new Map([...models].map(([name, m]) => [name, m.dir]));
}
