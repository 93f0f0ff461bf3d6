/** Options shared by the commands that load a model. */
import type { SessionOptions } from "../runtime/backend.ts";
import { parseNumber } from "./args.ts";

export const MODEL_OPTIONS = {
  model: { type: "string" },
  threads: { type: "string" },
  quiet: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

export const MODEL_HELP = `  --model PATH       model folder (with manifest.json) or .onnx file; default: the shipped fashion-dit
  --threads N        ONNX Runtime threads per operator (default: all cores)
  --quiet            no progress output
  -h, --help         this help`;

export function sessionOptions(values: { threads?: string }): SessionOptions {
  return { intraOpThreads: parseNumber("threads", values.threads, true) };
}
