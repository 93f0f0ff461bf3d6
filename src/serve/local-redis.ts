/**
 * A throwaway `redis-server` on a free loopback port in a temporary folder, with AOF on (tests and bench:serve).
 * Production runs its own Redis; see the README's "Ditto as a service".
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DittoError } from "../errors.ts";

export interface LocalRedis {
  url: string;
  port: number;
  dir: string;
  /** Stops Redis cleanly (it rewrites nothing: AOF is already on disk) and starts it again on the same files. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolvePort(port));
    });
  });
}

export function hasRedisServer(): boolean {
  return spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
}

export async function startLocalRedis(): Promise<LocalRedis> {
  if (!hasRedisServer()) {
    throw new DittoError(
      "RUNTIME_FAILED",
      "redis-server is not installed: run `bash scripts/system-deps.sh` (as root it installs Debian's redis-server)",
    );
  }
  const dir = mkdtempSync(join(tmpdir(), "ditto-redis-"));
  const port = await freePort();
  let child = await launch(port, dir);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async restart() {
      await stopChild(child);
      child = await launch(port, dir);
    },
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function launch(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn(
    "redis-server",
    // AOF on so queued jobs survive a restart; no RDB snapshots; noeviction as BullMQ requires.
    ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--save", ""].concat([
      "--maxmemory-policy",
      "noeviction",
      "--protected-mode",
      "yes",
    ]),
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  await new Promise<void>((ready, fail) => {
    const timer = setTimeout(() => fail(new Error(`redis-server did not start within 10 s:\n${log}`)), 10_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes("Ready to accept connections")) {
        clearTimeout(timer);
        ready();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`redis-server exited with ${code}:\n${log}`));
    });
  });
  child.stdout?.resume();
  child.stderr?.resume();
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  child.kill("SIGTERM");
  await exited;
}
