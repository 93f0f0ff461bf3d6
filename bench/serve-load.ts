/**
 * `npm run bench:serve`: load on the service. Starts a private redis-server (AOF on), `ditto serve` in this process
 * and W `ditto worker` processes (1 ONNX thread each), then k concurrent clients push a fixed number of jobs through
 * the HTTP API (submit, long-poll to the end). Prints throughput, p50/p95 latency (submit → completed, as a client
 * sees it) and lost jobs for 1 and 2 workers; rounds alternate 1, 2, 1, 2 … and the table shows medians.
 *
 * Env: JOBS (40), CLIENTS (4), STEPS (8), ROUNDS (2), WORKERS ("1,2"). Last line: JSON of the medians.
 * Exits 1 if any job was lost (not completed).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { median } from "../src/bench/harness.ts";
import { hashKey, newApiKey } from "../src/serve/keys.ts";
import { startLocalRedis } from "../src/serve/local-redis.ts";
import { modelPaths } from "../src/serve/registry.ts";
import { type RunningServer, startServer } from "../src/serve/server.ts";

const JOBS = Number(process.env.JOBS ?? 40);
const CLIENTS = Number(process.env.CLIENTS ?? 4);
const STEPS = Number(process.env.STEPS ?? 8);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const WORKER_COUNTS = (process.env.WORKERS ?? "1,2").split(",").map(Number);
const CLI = join(import.meta.dirname, "../bin/ditto.js");
const KEY = newApiKey();
const auth = { authorization: `Bearer ${KEY}`, "content-type": "application/json" };

interface RoundResult {
  workers: number;
  wallS: number;
  jobsPerS: number;
  p50Ms: number;
  p95Ms: number;
  lost: number;
}

function startWorkers(count: number, redis: string, prefix: string): Promise<ChildProcess[]> {
  return Promise.all(
    Array.from({ length: count }, () => {
      const child = spawn(
        process.execPath,
        [CLI, "worker", "--redis", redis, "--prefix", prefix, "--threads", "1", "--lock-ms", "10000"],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      return new Promise<ChildProcess>((ready, fail) => {
        let out = "";
        child.stdout?.on("data", (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('"event":"ready"')) ready(child);
        });
        child.once("exit", (code) => fail(new Error(`worker exited with ${code} before it was ready`)));
      });
    }),
  );
}

async function stopWorkers(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map((c) => {
      const exited = new Promise((done) => c.once("exit", done));
      c.kill("SIGTERM");
      return exited;
    }),
  );
}

/** One client: submit, wait for the end, repeat while jobs remain. Returns latencies of completed jobs. */
async function client(server: RunningServer, next: () => number | undefined, lost: { count: number }) {
  const latencies: number[] = [];
  for (let k = next(); k !== undefined; k = next()) {
    const t0 = performance.now();
    const body = { classes: [k % 10], seeds: [k], steps: STEPS, scale: 1 };
    const res = await fetch(`${server.url}/v1/jobs`, { method: "POST", headers: auth, body: JSON.stringify(body) });
    if (res.status !== 202) {
      lost.count++;
      continue;
    }
    const { id } = await res.json();
    let state = "waiting";
    const deadline = Date.now() + 300_000;
    while (!["completed", "failed", "cancelled"].includes(state) && Date.now() < deadline) {
      state = (await (await fetch(`${server.url}/v1/jobs/${id}?wait=30`, { headers: auth })).json()).state;
    }
    if (state === "completed") latencies.push(performance.now() - t0);
    else lost.count++;
  }
  return latencies;
}

async function round(workers: number, redisUrl: string, r: number): Promise<RoundResult> {
  const prefix = `bench${r}w${workers}`;
  const children = await startWorkers(workers, redisUrl, prefix);
  const server = await startServer({
    redis: redisUrl,
    prefix,
    port: 0,
    keys: new Map([[hashKey(KEY), "bench"]]),
    models: modelPaths([]),
    limits: { ratePerMinute: 1_000_000 },
  });
  try {
    let issued = 0;
    const next = () => (issued < JOBS ? issued++ : undefined);
    const lost = { count: 0 };
    const t0 = performance.now();
    const perClient = await Promise.all(Array.from({ length: CLIENTS }, () => client(server, next, lost)));
    const wallS = (performance.now() - t0) / 1000;
    const latencies = perClient.flat().sort((a, b) => a - b);
    const pick = (q: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
    return {
      workers,
      wallS,
      jobsPerS: latencies.length / wallS,
      p50Ms: pick(0.5),
      p95Ms: pick(0.95),
      lost: lost.count,
    };
  } finally {
    await server.close();
    await stopWorkers(children);
  }
}

const redis = await startLocalRedis();
const results: RoundResult[] = [];
try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const w of WORKER_COUNTS) {
      const res = await round(w, redis.url, r);
      results.push(res);
      process.stderr.write(
        `round ${r + 1}, ${w} worker(s): ${res.jobsPerS.toFixed(2)} jobs/s, p50 ${res.p50Ms.toFixed(0)} ms, p95 ${res.p95Ms.toFixed(0)} ms, lost ${res.lost}\n`,
      );
    }
  }
} finally {
  await redis.stop();
}

const summary = WORKER_COUNTS.map((w) => {
  const rows = results.filter((r) => r.workers === w);
  return {
    workers: w,
    jobsPerS: Math.round(median(rows.map((r) => r.jobsPerS)) * 100) / 100,
    p50Ms: Math.round(median(rows.map((r) => r.p50Ms))),
    p95Ms: Math.round(median(rows.map((r) => r.p95Ms))),
    lost: rows.reduce((a, r) => a + r.lost, 0),
  };
});
process.stdout.write(
  `\n${JOBS} jobs (1 sample, ${STEPS} steps, fashion-dit), ${CLIENTS} concurrent clients, median of ${ROUNDS} rounds\n`,
);
process.stdout.write("| workers | jobs/s | p50 latency | p95 latency | lost jobs |\n|---|---|---|---|---|\n");
for (const s of summary)
  process.stdout.write(`| ${s.workers} | ${s.jobsPerS} | ${s.p50Ms} ms | ${s.p95Ms} ms | ${s.lost} |\n`);
const base = summary.find((s) => s.workers === 1);
const ratio = (s: (typeof summary)[number]) => (base ? Math.round((s.jobsPerS / base.jobsPerS) * 100) / 100 : null);
process.stdout.write(
  `${JSON.stringify({ jobs: JOBS, clients: CLIENTS, steps: STEPS, rounds: ROUNDS, results: summary.map((s) => ({ ...s, throughputVs1: ratio(s) })) })}\n`,
);
if (summary.some((s) => s.lost > 0)) process.exitCode = 1;
