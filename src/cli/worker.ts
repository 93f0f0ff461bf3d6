/** `ditto worker`: runs generation jobs from the Redis queues (see src/serve). */
import { parseArgs } from "node:util";
import { InputError } from "../errors.ts";
import { modelPaths, parseNamedPaths } from "../serve/registry.ts";
import { startWorker } from "../serve/worker.ts";
import { parseNumber } from "./args.ts";
import { onShutdown } from "./shutdown.ts";

const HELP = `Usage: ditto worker [options]

Takes generation jobs submitted through \`ditto serve\` from Redis and runs them; start as many as you like, on
one machine or several. Logs one JSON line per event on stdout.

  --redis URL          Redis (default $DITTO_REDIS or redis://127.0.0.1:6379)
  --model NAME=PATH    a model to load, by the name requests use (repeat; default fashion-dit = the shipped model;
                       give every worker the same list as ditto serve)
  --artifact NAME=PATH a calibration artifact that cache specs may name (artifact=NAME; repeat)
  --prefix P           BullMQ key prefix (default bull)
  --concurrency N      batches run at once in this process (default 1)
  --threads N          ONNX Runtime threads per operator (default: all cores)
  --lock-ms MS         lock lifetime: a killed worker's job returns to the queue after about this long (default 30000)
  --grace S            on SIGTERM, seconds to let active jobs finish before handing them back (default 60)
  --quiet              no event log
  -h, --help           this help
`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      redis: { type: "string", default: process.env.DITTO_REDIS ?? "redis://127.0.0.1:6379" },
      model: { type: "string", multiple: true, default: [] },
      artifact: { type: "string", multiple: true, default: [] },
      prefix: { type: "string", default: "bull" },
      concurrency: { type: "string", default: "1" },
      threads: { type: "string" },
      "lock-ms": { type: "string", default: "30000" },
      grace: { type: "string", default: "60" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const concurrency = parseNumber("concurrency", values.concurrency, true) as number;
  if (concurrency < 1) throw new InputError("OPTION_INVALID", `--concurrency must be ≥ 1 (got ${concurrency})`);
  const lockMs = parseNumber("lock-ms", values["lock-ms"], true) as number;
  if (lockMs < 500) throw new InputError("OPTION_INVALID", `--lock-ms must be ≥ 500 (got ${lockMs})`);
  const log = values.quiet
    ? undefined
    : (event: Record<string, unknown>) =>
        process.stdout.write(`${JSON.stringify({ t: Date.now(), pid: process.pid, ...event })}\n`);
  const worker = await startWorker({
    redis: values.redis,
    prefix: values.prefix,
    models: modelPaths(values.model),
    artifacts: parseNamedPaths("artifact", values.artifact),
    concurrency,
    threads: parseNumber("threads", values.threads, true),
    lockMs,
    graceMs: (parseNumber("grace", values.grace) as number) * 1000,
    log,
  });
  log?.({ event: "ready", redis: values.redis.replace(/\/\/[^@]*@/, "//***@") });
  // Active jobs get the grace period, then are handed back; 10 s more bounds the hand-back itself.
  const graceMs = (parseNumber("grace", values.grace) as number) * 1000;
  await onShutdown("worker", () => worker.close(), graceMs + 10_000);
  log?.({ event: "stopped" });
}
