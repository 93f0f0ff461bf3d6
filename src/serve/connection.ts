/**
 * Redis connections for BullMQ (ioredis, which BullMQ 6 takes as an optional peer). BullMQ's blocking commands
 * need maxRetriesPerRequest: null. A start-up check warns when Redis would lose queued jobs on a restart (no AOF)
 * or evict job keys under memory pressure.
 */
import { Redis } from "ioredis";
import { DittoError, InputError } from "../errors.ts";

export function redisConnection(url: string): Redis {
  if (!/^rediss?:\/\//.test(url))
    throw new InputError("OPTION_INVALID", `--redis expects a URL like redis://host:6379 (got '${url}')`);
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  // BullMQ's queues and workers report connection errors on their own "error" events.
  redis.on("error", () => {});
  return redis;
}

/** Problems with the Redis set-up, as sentences (empty when all is well or CONFIG is not allowed). */
export async function redisWarnings(redis: Redis): Promise<string[]> {
  const warnings: string[] = [];
  try {
    const [, aof] = (await redis.config("GET", "appendonly")) as string[];
    if (aof !== "yes")
      warnings.push("Redis runs without AOF: queued jobs are lost if it restarts (start it with --appendonly yes)");
    const [, policy] = (await redis.config("GET", "maxmemory-policy")) as string[];
    if (policy !== "noeviction")
      warnings.push(`Redis maxmemory-policy is ${policy}: it may evict job keys (set it to noeviction)`);
  } catch {
    // Managed Redis often forbids CONFIG; nothing to check then.
  }
  return warnings;
}

/** Fails with a clear message instead of retrying forever when nothing answers at the URL. */
export async function assertReachable(redis: Redis, url: string, timeoutMs = 10_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("timeout")), timeoutMs);
  });
  try {
    await Promise.race([redis.ping(), timeout]);
  } catch {
    redis.disconnect();
    throw new DittoError(
      "RUNTIME_FAILED",
      `no Redis answers at ${url.replace(/\/\/[^@]*@/, "//***@")} within ${timeoutMs / 1000} s: start one with ` +
        "`redis-server --appendonly yes` or pass --redis URL",
    );
  } finally {
    clearTimeout(timer);
  }
}
