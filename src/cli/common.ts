/** Options shared by the commands that load a model. */
import { checkReviewed, loadManifest, type ResolvedManifest } from "../model/manifest.ts";
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

/** For commands that run the model: a manifest with unreviewed guesses is refused unless --accept-guesses. */
export const REVIEW_OPTIONS = { "accept-guesses": { type: "boolean", default: false } } as const;

export const REVIEW_HELP = `  --accept-guesses   run a manifest that still lists guessed fields under "needsReview" (init-manifest's)`;

/** Reads the manifest (cheap, before the model loads) and refuses unreviewed guesses; warns when they are accepted. */
export async function refuseUnreviewed(
  values: { model?: string; "accept-guesses"?: boolean },
  modelPath = values.model,
): Promise<ResolvedManifest> {
  const manifest = await loadManifest(modelPath);
  const unchecked = checkReviewed(manifest, `${manifest.dir}/manifest.json`, values["accept-guesses"] ?? false);
  if (unchecked.length)
    process.stderr.write(
      `warning: running on unreviewed manifest guesses (--accept-guesses): ${unchecked.join(", ")}\n`,
    );
  return manifest;
}
