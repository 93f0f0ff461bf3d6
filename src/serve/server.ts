/**
 * `ditto serve`: the HTTP API on Node (@hono/node-server) over BullMQ queues in Redis. It reads the registered
 * models' manifests (to validate requests) but never loads a model: workers do the generating.
 */
import type { EventEmitter } from "node:events";
import type { Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { FlowProducer, Queue, QueueEvents } from "bullmq";
import { loadManifest, type ResolvedManifest } from "../model/manifest.ts";
import { type ApiLimits, createApi, DEFAULT_LIMITS } from "./app.ts";
import { assertReachable, redisConnection, redisWarnings } from "./connection.ts";
import { BATCH_QUEUE, type BatchJobData, REQUEST_QUEUE, type RequestJobData } from "./jobs.ts";
import type { KeyTable } from "./keys.ts";
import type { NamedPaths } from "./registry.ts";

const CLOSE_DRAIN_MS = 5000;

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms).unref());
}

export interface ServerOptions {
  redis: string;
  prefix?: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  keys: KeyTable;
  models: NamedPaths;
  artifacts?: NamedPaths;
  limits?: Partial<ApiLimits>;
}

export interface RunningServer {
  url: string;
  port: number;
  warnings: string[];
  /** Stops taking connections, lets open requests end, then closes the queues. */
  close(): Promise<void>;
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const prefix = options.prefix ?? "bull";
  const models = new Map<string, ResolvedManifest>();
  for (const [name, path] of options.models) models.set(name, await loadManifest(path));
  const redis = redisConnection(options.redis);
  await assertReachable(redis, options.redis);
  const connection = { connection: redis, prefix };
  const batchQueue = new Queue<BatchJobData>(BATCH_QUEUE, connection);
  const requestQueue = new Queue<RequestJobData>(REQUEST_QUEUE, connection);
  const eventsRedis = redisConnection(options.redis);
  const requestEvents = new QueueEvents(REQUEST_QUEUE, { connection: eventsRedis, prefix });
  const flows = new FlowProducer(connection);
  // Every long-polling client listens on these until its job ends.
  requestQueue.setMaxListeners(0);
  requestEvents.setMaxListeners(0);
  let lastError = "";
  for (const emitter of [batchQueue, requestQueue, requestEvents, flows] as unknown as EventEmitter[]) {
    emitter.on("error", (err: Error) => {
      // Redis outages repeat the same error on every retry: say it once.
      if (err.message !== lastError) process.stderr.write(`ditto serve: redis: ${err.message}\n`);
      lastError = err.message;
    });
  }
  await Promise.all([batchQueue.waitUntilReady(), requestQueue.waitUntilReady(), requestEvents.waitUntilReady()]);
  const warnings = await redisWarnings(redis);
  const app = createApi({
    redis,
    prefix,
    batchQueue,
    requestQueue,
    requestEvents,
    flows,
    keys: options.keys,
    models,
    artifacts: options.artifacts ?? new Map(),
    limits: { ...DEFAULT_LIMITS, ...options.limits },
  });
  const host = options.host ?? "127.0.0.1";
  const server = await new Promise<ReturnType<typeof serve>>((resolveServer) => {
    const s = serve({ fetch: app.fetch, hostname: host, port: options.port ?? 8080 }, () => resolveServer(s));
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    warnings,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((done) => server.close(() => done()));
        (server as HttpServer).closeIdleConnections();
        // Long-polls and keep-alive sockets end within the drain time; a queue stuck reconnecting does not hold
        // shutdown hostage.
        await Promise.race([closed, sleep(CLOSE_DRAIN_MS)]);
        (server as HttpServer).closeAllConnections();
        await Promise.race([
          Promise.all([flows.close(), requestEvents.close(), batchQueue.close(), requestQueue.close()]),
          sleep(CLOSE_DRAIN_MS),
        ]);
        redis.disconnect();
        eventsRedis.disconnect();
      })();
      return closing;
    },
  };
}
