/**
 * Ditto as a service, end to end on loopback: a real redis-server (AOF on) in a temp folder, the HTTP API in this
 * process, and `ditto worker` processes running the shipped model. Step counts are tiny and each job is one sample
 * so the whole file stays around half a minute on a shared 2-core machine.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Queue, QueueEvents } from "bullmq";
import { gridPng, toUnitRange } from "../src/image/png.ts";
import { loadPipeline, type Pipeline } from "../src/pipeline.ts";
import { BATCH_QUEUE, REQUEST_QUEUE } from "../src/serve/jobs.ts";
import { addKey, authenticate, hashKey, newApiKey, readKeyFile } from "../src/serve/keys.ts";
import { type LocalRedis, startLocalRedis } from "../src/serve/local-redis.ts";
import { modelPaths } from "../src/serve/registry.ts";
import { type RunningServer, startServer } from "../src/serve/server.ts";
import { assertBitIdentical, assertRejectsWith, tempDir } from "./helpers.ts";

const CLI = join(import.meta.dirname, "../bin/ditto.js");
const ARTIFACT = join(import.meta.dirname, "../bench/artifacts/ertacache-c35.json");
const KEY = newApiKey();
const KEYS = new Map([[hashKey(KEY), "tester"]]);
const AUTH = { Authorization: `Bearer ${KEY}` };

interface WorkerProcess {
  child: ChildProcess;
  events: Record<string, unknown>[];
  waitFor(match: (e: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

function startWorkerProcess(redis: string, prefix: string): WorkerProcess {
  const child = spawn(
    process.execPath,
    [CLI, "worker", "--redis", redis, "--prefix", prefix, "--threads", "1", "--lock-ms", "4000", "--grace", "5"].concat(
      ["--artifact", `c35=${ARTIFACT}`],
    ),
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const events: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let buffer = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    const lines = buffer.split("\n");
    buffer = lines.pop() ?? "";
    for (const line of lines) if (line.startsWith("{")) events.push(JSON.parse(line));
    for (const w of waiters) w();
  });
  return {
    child,
    events,
    waitFor(match, timeoutMs = 30_000) {
      return new Promise((resolveEvent, reject) => {
        const check = () => {
          const e = events.find(match);
          if (!e) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolveEvent(e);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`worker ${child.pid}: no matching event within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}

/** SIGTERM, as an operator would; a worker that has not exited 20 s later is killed and reported. */
async function stopWorkerProcess(w: WorkerProcess): Promise<void> {
  if (w.child.exitCode !== null || w.child.signalCode !== null) return;
  const exited = new Promise((done) => w.child.once("exit", () => done(true)));
  w.child.kill("SIGTERM");
  const inTime = await Promise.race([exited, new Promise((done) => setTimeout(() => done(false), 20_000))]);
  if (!inTime) {
    w.child.kill("SIGKILL");
    throw new Error(
      `worker ${w.child.pid} ignored SIGTERM for 20 s; last events: ${JSON.stringify(w.events.slice(-5))}`,
    );
  }
}

async function api(server: RunningServer, path: string, init: RequestInit & { key?: string | null } = {}) {
  const { key = KEY, ...rest } = init;
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await fetch(server.url + path, { ...rest, headers: { ...headers, ...(rest.headers as object) } });
  return res;
}

async function submit(server: RunningServer, body: unknown): Promise<string> {
  const res = await api(server, "/v1/jobs", { method: "POST", body: JSON.stringify(body) });
  const json = await res.json();
  assert.equal(res.status, 202, JSON.stringify(json));
  return json.id;
}

async function waitDone(server: RunningServer, id: string, limitS = 60) {
  const deadline = Date.now() + limitS * 1000;
  for (;;) {
    const status = await (await api(server, `/v1/jobs/${id}?wait=10`)).json();
    if (["completed", "failed", "cancelled"].includes(status.state)) return status;
    if (Date.now() > deadline) assert.fail(`job ${id} still ${status.state} after ${limitS} s`);
  }
}

/** Completion events per request id, as a client subscribed to the queue sees them. */
function countCompletions(events: QueueEvents): Map<string, number> {
  const completions = new Map<string, number>();
  events.on("completed", ({ jobId }) => completions.set(jobId, (completions.get(jobId) ?? 0) + 1));
  return completions;
}

async function samplesOf(server: RunningServer, id: string): Promise<Float32Array> {
  const res = await api(server, `/v1/jobs/${id}/samples`);
  assert.equal(res.status, 200);
  return new Float32Array(await res.arrayBuffer());
}

describe("ditto serve + ditto worker on a real Redis", { timeout: 240_000 }, () => {
  let redis: LocalRedis;
  let server: RunningServer;
  let reference: Pipeline;
  const workers: WorkerProcess[] = [];
  const prefix = "work";

  before(async () => {
    redis = await startLocalRedis();
    workers.push(startWorkerProcess(redis.url, prefix), startWorkerProcess(redis.url, prefix));
    server = await startServer({
      redis: redis.url,
      prefix,
      port: 0,
      keys: KEYS,
      models: modelPaths([]),
      artifacts: new Map([["c35", ARTIFACT]]),
    });
    reference = await loadPipeline(undefined, { session: { intraOpThreads: 1 } });
    await Promise.all(workers.map((w) => w.waitFor((e) => e.event === "ready", 60_000)));
  });

  after(async () => {
    // Everything is stopped even when a worker misbehaves, so a failure is reported instead of hanging the run.
    const stopped = await Promise.allSettled(workers.map(stopWorkerProcess));
    await server?.close();
    await reference?.release();
    await redis?.stop();
    const failure = stopped.find((r) => r.status === "rejected");
    if (failure) throw failure.reason;
  });

  it("2 workers × 20 jobs: all complete, both workers share them, results bit-identical to one process", async () => {
    const jobs = Array.from({ length: 20 }, (_, k) => ({ classes: [k % 10], seeds: [100 + k], steps: 4, scale: 1 }));
    const events = new QueueEvents(REQUEST_QUEUE, { connection: { url: redis.url }, prefix });
    const completions = countCompletions(events);
    await events.waitUntilReady();
    const ids = await Promise.all(jobs.map((body) => submit(server, body)));
    const statuses = await Promise.all(ids.map((id) => waitDone(server, id)));
    await new Promise((r) => setTimeout(r, 300)); // let the last completion events arrive
    await events.close();
    for (const id of ids) assert.equal(completions.get(id), 1, `job ${id} completed ${completions.get(id)} times`);
    for (const s of statuses) {
      assert.equal(s.state, "completed", JSON.stringify(s));
      assert.deepEqual(s.progress, { step: 4, total: 4 });
    }
    for (const [k, id] of ids.entries()) {
      const local = await reference.generate({ ...jobs[k], batch: 1 });
      assertBitIdentical(await samplesOf(server, id), local.samples, `job ${k}`);
      if (k === 0) {
        const png = Buffer.from(await (await api(server, `/v1/jobs/${id}/result.png`)).arrayBuffer());
        const [, c, h, w] = local.dims;
        const expected = gridPng(
          { data: toUnitRange(local.samples, [-1, 1]), count: 1, channels: c, height: h, width: w },
          1,
          2,
          1,
        );
        assert.ok(png.equals(expected), "the result PNG is the grid of the single-process samples");
      }
    }
    // Each worker ran some; a batch whose lock lapsed on an overloaded machine may run twice, never zero times.
    const done = workers.map((w) => w.events.filter((e) => e.event === "completed").length);
    assert.ok(done[0] + done[1] >= 20, `completions per worker: ${done}`);
    assert.ok(done[0] > 0 && done[1] > 0, `both workers took jobs: ${done}`);
  });

  it("a generation that throws fails with the error's code and is not retried", async () => {
    // The artifact was calibrated for 50 steps; 4 steps is an ARTIFACT_MISMATCH inside the worker.
    const id = await submit(server, { classes: [1], steps: 4, cache: "ertacache:artifact=c35" });
    const status = await waitDone(server, id);
    assert.equal(status.state, "failed");
    assert.equal(status.error.code, "ARTIFACT_MISMATCH");
    assert.doesNotMatch(status.error.message, /\/bench\/artifacts\//, "server paths are not shown to clients");
    const queue = new Queue(BATCH_QUEUE, { connection: { url: redis.url }, prefix });
    const batch = await queue.getJob(`${id}-b0`);
    assert.equal(batch?.attemptsMade, 1);
    await queue.close();
  });

  it("cancel stops an active job; its state is cancelled with code CANCELLED", async () => {
    const id = await submit(server, { classes: [2], seeds: [1], steps: 1000 });
    for (;;) {
      const s = await (await api(server, `/v1/jobs/${id}`)).json();
      if (s.progress.step > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const res = await api(server, `/v1/jobs/${id}`, { method: "DELETE" });
    assert.equal(res.status, 200);
    const status = await waitDone(server, id, 20);
    assert.equal(status.state, "cancelled");
    assert.equal(status.error.code, "CANCELLED");
    assert.ok(status.progress.step < 1000);
    const aborted = (e: Record<string, unknown>) => e.event === "aborted" && e.request === id;
    assert.ok(
      workers.some((w) => w.events.some(aborted)),
      "a worker aborted the running batch",
    );
  });

  it("kill -9 a worker during a job: every job completes exactly once from the client's view", async () => {
    const events = new QueueEvents(REQUEST_QUEUE, { connection: { url: redis.url }, prefix });
    const completions = countCompletions(events);
    await events.waitUntilReady();
    const [victim, survivor] = workers;
    const before = victim.events.length;
    const bodies = Array.from({ length: 3 }, (_, k) => ({ classes: [k], seeds: [7 + k], steps: 40 }));
    const ids = await Promise.all(bodies.map((b) => submit(server, b)));
    const started = await victim.waitFor((e) => e.event === "active" && victim.events.indexOf(e) >= before);
    victim.child.kill("SIGKILL");
    const statuses = await Promise.all(ids.map((id) => waitDone(server, id, 90)));
    await new Promise((r) => setTimeout(r, 500)); // let the last completion events arrive
    await events.close();
    for (const s of statuses) assert.equal(s.state, "completed", JSON.stringify(s));
    for (const id of ids) assert.equal(completions.get(id), 1, `job ${id} completed ${completions.get(id)} times`);
    // The interrupted batch was finished by the other worker and matches a single-process run.
    const k = ids.indexOf(started.request as string);
    assert.ok(k >= 0);
    assert.ok(survivor.events.some((e) => e.event === "completed" && e.job === started.job));
    const local = await reference.generate({ ...bodies[k], batch: 1 });
    assertBitIdentical(await samplesOf(server, ids[k]), local.samples, "the retried job");
  });

  it("rejects requests without a valid key with 401 (health needs none)", async () => {
    assert.equal((await api(server, "/health", { key: null })).status, 200);
    for (const key of [null, "ditto_wrong"]) {
      const res = await api(server, "/v1/jobs", { key, method: "POST", body: "{}" });
      assert.equal(res.status, 401);
      assert.equal((await res.json()).error.code, "UNAUTHORIZED");
      assert.equal((await api(server, "/v1/models", { key })).status, 401);
    }
  });

  it("rejects invalid specs with 400 and the CLI's error code", async () => {
    const cases: [unknown, string, RegExp][] = [
      [{ cache: "nosuch" }, "UNKNOWN_POLICY", /unknown cache policy 'nosuch'/],
      [{ cache: "taylorseer:interval=0" }, "OPTION_INVALID", /interval=0 is invalid: must be ≥ 1/],
      [{ cacheConfig: { policy: "fora", speed: 2 } }, "OPTION_INVALID", /unknown option 'speed'/],
      [{ cache: "ertacache:artifact=/etc/passwd" }, "OPTION_INVALID", /not an artifact registered/],
      [{ steps: 0 }, "OPTION_INVALID", /steps: Too small/],
      [{ classes: [10] }, "OPTION_INVALID", /class 10 is out of range/],
      [{ model: "../../etc" }, "OPTION_INVALID", /is not served here/],
      [{ sampler: "ddim" }, "OPTION_INVALID", /DDIM needs an ε-prediction model/],
      [{ prompt: "a cat" }, "OPTION_INVALID", /Unrecognized key/],
    ];
    for (const [body, code, message] of cases) {
      const res = await api(server, "/v1/jobs", { method: "POST", body: JSON.stringify(body) });
      const json = await res.json();
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(json.error.code, code, JSON.stringify(json));
      assert.match(json.error.message, message);
    }
    const big = await api(server, "/v1/jobs", {
      method: "POST",
      body: JSON.stringify({ seeds: Array(40_000).fill(1) }),
    });
    assert.equal(big.status, 413);
  });

  it("a flood gets 429 with Retry-After: per-key rate limit, then queue back-pressure; queued jobs survive a Redis restart", async () => {
    const limited = await startServer({
      redis: redis.url,
      prefix: "flood", // no workers listen here, so submitted jobs stay queued
      port: 0,
      keys: KEYS,
      models: modelPaths([]),
      limits: { ratePerMinute: 5, maxQueued: 2 },
    });
    try {
      const codes = [];
      for (let i = 0; i < 8; i++) {
        const res = await fetch(`${limited.url}/v1/models`, { headers: AUTH });
        codes.push(res.status);
        if (res.status === 429) {
          assert.ok(Number(res.headers.get("retry-after")) >= 1);
          assert.equal((await res.json()).error.code, "RATE_LIMITED");
        }
      }
      assert.deepEqual(codes, [200, 200, 200, 200, 200, 429, 429, 429]);
    } finally {
      await limited.close();
    }
    const queued = await startServer({
      redis: redis.url,
      prefix: "flood",
      port: 0,
      keys: new Map([[hashKey("ditto_other"), "other"]]),
      models: modelPaths([]),
      limits: { maxQueued: 2, queueRetryAfterS: 7 },
    });
    try {
      const post = () =>
        fetch(`${queued.url}/v1/jobs`, {
          method: "POST",
          headers: { authorization: "Bearer ditto_other", "content-type": "application/json" },
          body: JSON.stringify({ classes: [0], steps: 2 }),
        });
      const first = await (await post()).json();
      await post();
      const full = await post();
      assert.equal(full.status, 429);
      assert.equal(full.headers.get("retry-after"), "7");
      assert.equal((await full.json()).error.code, "QUEUE_FULL");
      // AOF on: a restarted Redis still holds the queued job.
      await redis.restart();
      let status: { state?: string } = {};
      for (let i = 0; i < 50 && status.state === undefined; i++) {
        const res = await fetch(`${queued.url}/v1/jobs/${first.id}`, {
          headers: { authorization: "Bearer ditto_other" },
          signal: AbortSignal.timeout(10_000),
        });
        if (res.status === 200) status = await res.json();
        else await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status.state, "waiting");
    } finally {
      await queued.close();
    }
  });
});

describe("API keys", () => {
  it("are stored only as SHA-256 hashes and authenticate by name", () => {
    const file = join(tempDir(), "keys.txt");
    const key = addKey(file, "alice");
    const text = readFileSync(file, "utf8");
    assert.ok(!text.includes(key), "the key itself is not written");
    assert.match(text, /^alice sha256:[0-9a-f]{64}\n$/);
    const keys = readKeyFile(file);
    assert.equal(authenticate(keys, key), "alice");
    assert.equal(authenticate(keys, `${key}x`), undefined);
    assert.equal(authenticate(keys, undefined), undefined);
  });

  it("reject a malformed keys file with its line number", async () => {
    const file = join(tempDir(), "keys.txt");
    writeFileSync(file, "# comment\nbob plaintext-key\n");
    await assertRejectsWith(() => readKeyFile(file), "OPTION_INVALID", /keys\.txt:2: expected "NAME sha256:HEX"/);
  });
});
