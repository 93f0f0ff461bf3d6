#!/usr/bin/env node
/**
 * The `ditto` command line: a thin facade over the library. Parses arguments, calls the same functions users
 * call, and maps error classes to exit codes (2: bad input or model, 1: unexpected). Heavy modules load lazily so
 * `ditto --help` is instant.
 */
import { DittoError } from "../errors.ts";

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<void> }> }> = {
  generate: { summary: "generate images (default: the shipped model, uncached)", load: () => import("./generate.ts") },
  inspect: {
    summary: "show a model's discovered blocks, units, cut tensors and FLOPs",
    load: () => import("./inspect.ts"),
  },
  "init-manifest": { summary: "write a manifest.json for your own ONNX DiT", load: () => import("./init-manifest.ts") },
  policies: { summary: "list the cache policies and their options", load: () => import("./policies.ts") },
  bench: { summary: "fidelity and speed of cache policies, side by side", load: () => import("./bench.ts") },
  adapt: {
    summary: "plain vs TFUP-adapted classifier accuracy on shifted image sets",
    load: () => import("./adapt.ts"),
  },
  quantize: {
    summary: "int8 copy of a model, modulation path kept float (TFMQ)",
    load: () => import("./quantize.ts"),
  },
  rollout: {
    summary: "closed-loop task success of a diffusion policy, cached vs uncached",
    load: () => import("./rollout.ts"),
  },
  profile: {
    summary: "offline calibration for a cache policy (writes a JSON artifact)",
    load: () => import("./profile.ts"),
  },
  serve: { summary: "HTTP API for generation jobs over Redis (BullMQ)", load: () => import("./serve.ts") },
  worker: { summary: "run generation jobs from Redis; start one or many", load: () => import("./worker.ts") },
  web: { summary: "serve the browser page: cached vs uncached, side by side", load: () => import("./web.ts") },
  tune: { summary: "find the fastest cache setting that keeps a quality bar", load: () => import("./tune.ts") },
  video: {
    summary: "CDT video tokenizer: encode, decode, reconstruct chunk by chunk",
    load: () => import("./video.ts"),
  },
};

const HELP = `ditto — feature caching for diffusion transformers on ONNX Runtime

Usage: ditto <command> [options]     (ditto <command> --help for its options)

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(15)}${c.summary}`)
  .join("\n")}
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(HELP);
    return 0;
  }
  const entry = COMMANDS[command];
  if (!entry) {
    process.stderr.write(`ditto: unknown command '${command}'\n\n${HELP}`);
    return 2;
  }
  try {
    await (await entry.load()).run(rest);
    return 0;
  } catch (err) {
    if (err instanceof DittoError) {
      process.stderr.write(`ditto ${command}: ${err.message} [${err.code}]\n`);
      return 2;
    }
    if (err instanceof Error && "code" in err && (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`ditto ${command}: ${err.message} (see ditto ${command} --help) [OPTION_INVALID]\n`);
      return 2;
    }
    const detail = process.env.DITTO_DEBUG ? (err as Error).stack : (err as Error).message;
    process.stderr.write(
      `ditto ${command}: unexpected error: ${detail}\n(set DITTO_DEBUG=1 for the stack trace; please report it)\n`,
    );
    return 1;
  }
}

const isEntry = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, "/").split("/").pop() ?? "");
if (isEntry) process.exitCode = await main(process.argv.slice(2));
