/** Options shared by the commands that load a model. */
import { checkReviewed, loadManifest, type ResolvedManifest } from "../model/manifest.ts";
import { FileGraphStore } from "../node/graph-cache.ts";
import type { SessionOptions } from "../runtime/backend.ts";
import type { DiT, LoadOptions } from "../runtime/dit.ts";
import { parseNumber } from "./args.ts";

export const MODEL_OPTIONS = {
  model: { type: "string" },
  threads: { type: "string" },
  "graph-cache": { type: "string" },
  "no-graph-cache": { type: "boolean", default: false },
  verbose: { type: "boolean", default: false },
  quiet: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

export const MODEL_HELP = `  --model PATH       model folder (with manifest.json) or .onnx file; default: the shipped fashion-dit
  --threads N        ONNX Runtime threads per operator (default: every core, os.availableParallelism())
  --graph-cache DIR  keep cut and optimized graphs here (default: $DITTO_CACHE_DIR or ~/.cache/ditto)
  --no-graph-cache   cut the model anew at this start (nothing read or written)
  --verbose          print start-up timings (loading, cutting, session creation) on stderr
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

/** Session options and the graph cache, as the model-loading flags ask. */
export function modelLoadOptions(values: {
  threads?: string;
  "graph-cache"?: string;
  "no-graph-cache"?: boolean;
}): LoadOptions {
  const graphCache = values["no-graph-cache"] ? false : new FileGraphStore(values["graph-cache"]);
  return { session: sessionOptions(values), graphCache };
}

/** --verbose: where the start went, and the time since the process started (time to first image after a run). */
export function reportStartup(model: DiT, verbose: boolean | undefined, what = "done"): void {
  if (!verbose) return;
  const s = model.startup;
  const ms = (x: number) => `${(x / 1000).toFixed(2)} s`;
  process.stderr.write(
    `start-up: load ${ms(s.loadMs)}, probe ${ms(s.probeMs)}, cutting graphs ${ms(s.cutMs)}, ` +
      `session creation ${ms(s.sessionMs)} (${s.sessions} sessions); graph cache ` +
      `${model.graphCache ? `${s.cacheHits} hits, ${s.cacheMisses} misses in ${model.graphCache.location}` : "off"}\n` +
      `${what} ${ms(performance.now())} after the process started (CPU time ${ms(cpuMs())}, of it system ` +
      `${ms(process.cpuUsage().system / 1000)})\n`,
  );
}

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
