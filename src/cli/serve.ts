/** `ditto serve`: the HTTP API over the Redis queues (see src/serve). */
import { parseArgs } from "node:util";
import { InputError } from "../errors.ts";
import { DEFAULT_LIMITS } from "../serve/app.ts";
import { addKey, readKeyFile } from "../serve/keys.ts";
import { modelPaths, parseNamedPaths } from "../serve/registry.ts";
import { startServer } from "../serve/server.ts";
import { parseNumber } from "./args.ts";
import { onShutdown } from "./shutdown.ts";

const HELP = `Usage: ditto serve --keys FILE [options]
       ditto serve --keys FILE --add-key NAME     (prints a new API key once; the file keeps its hash)

HTTP API for generation jobs run by \`ditto worker\` processes through Redis (BullMQ).

  --redis URL          Redis (default $DITTO_REDIS or redis://127.0.0.1:6379)
  --host H             listen address (default 127.0.0.1; 0.0.0.0 for other machines)
  --port N             (default 8080)
  --keys FILE          API keys file: lines "NAME sha256:HEX" (default $DITTO_KEYS)
  --model NAME=PATH    a model served by name (repeat; default fashion-dit = the shipped model)
  --artifact NAME=PATH a calibration artifact that cache specs may name (artifact=NAME; repeat)
  --prefix P           BullMQ key prefix (default bull)
  --rate N             requests per key per minute (default ${DEFAULT_LIMITS.ratePerMinute})
  --max-queued N       waiting batches above which submissions get 429 (default ${DEFAULT_LIMITS.maxQueued})
  --retry-after S      Retry-After sent when the queue is full (default ${DEFAULT_LIMITS.queueRetryAfterS})
  --max-body BYTES     largest request body (default ${DEFAULT_LIMITS.maxBodyBytes})
  --max-samples N      most samples per request (default ${DEFAULT_LIMITS.maxSamples})
  -h, --help           this help
`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      redis: { type: "string", default: process.env.DITTO_REDIS ?? "redis://127.0.0.1:6379" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "8080" },
      keys: { type: "string", default: process.env.DITTO_KEYS },
      "add-key": { type: "string" },
      model: { type: "string", multiple: true, default: [] },
      artifact: { type: "string", multiple: true, default: [] },
      prefix: { type: "string", default: "bull" },
      rate: { type: "string" },
      "max-queued": { type: "string" },
      "retry-after": { type: "string" },
      "max-body": { type: "string" },
      "max-samples": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (!values.keys)
    throw new InputError("OPTION_INVALID", "--keys FILE is required (make one with --add-key NAME --keys FILE)");
  if (values["add-key"]) {
    const key = addKey(values.keys, values["add-key"]);
    process.stdout.write(`${key}\n`);
    process.stderr.write(
      `added key ${values["add-key"]} to ${values.keys} (only its hash is stored; keep the key above)\n`,
    );
    return;
  }
  const positive = (flag: string, text?: string) => {
    const n = parseNumber(flag, text, true);
    if (n !== undefined && n < 1) throw new InputError("OPTION_INVALID", `--${flag} must be ≥ 1 (got ${n})`);
    return n;
  };
  const limits = Object.fromEntries(
    Object.entries({
      ratePerMinute: positive("rate", values.rate),
      maxQueued: positive("max-queued", values["max-queued"]),
      queueRetryAfterS: positive("retry-after", values["retry-after"]),
      maxBodyBytes: positive("max-body", values["max-body"]),
      maxSamples: positive("max-samples", values["max-samples"]),
    }).filter(([, v]) => v !== undefined),
  );
  const server = await startServer({
    redis: values.redis,
    prefix: values.prefix,
    host: values.host,
    port: parseNumber("port", values.port, true),
    keys: readKeyFile(values.keys),
    models: modelPaths(values.model),
    artifacts: parseNamedPaths("artifact", values.artifact),
    limits,
  });
  for (const w of server.warnings) process.stderr.write(`ditto serve: warning: ${w}\n`);
  process.stdout.write(`${JSON.stringify({ event: "listening", url: server.url })}\n`);
  await onShutdown("serve", () => server.close());
}
