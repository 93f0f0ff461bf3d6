/**
 * `npm run bench:artifacts`: the calibration artifacts bench/sweep.json uses, for the shipped model at its
 * recommended steps and CFG scale, with how long each took (bench/artifacts/costs.json). Rerun after retraining:
 * every artifact is tied to the model's SHA-256.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadPipeline } from "../src/pipeline.ts";
import { writeArtifact } from "../src/profiling/artifact.ts";
import { profileBac } from "../src/profiling/bac.ts";
import { profileErtaCache } from "../src/profiling/ertacache.ts";
import { profileRouter } from "../src/profiling/harmonica.ts";
import { profileMagCache } from "../src/profiling/magcache.ts";
import { profileProfilingDit } from "../src/profiling/profilingdit.ts";
import { profileTeaCache } from "../src/profiling/teacache.ts";

const dir = join(import.meta.dirname, "artifacts");
mkdirSync(dir, { recursive: true });
const pipeline = await loadPipeline();
const steps = pipeline.manifest.recommended?.steps ?? 50;
const cfg = pipeline.manifest.recommended?.cfgScale ?? 3;
const only = process.argv.slice(2);
const costs: Record<string, { seconds: number; settings: object }> = {};

async function make(name: string, settings: object, run: () => Promise<Record<string, object>>) {
  if (only.length && !only.includes(name)) return;
  const started = performance.now();
  const files = await run();
  const seconds = Math.round((performance.now() - started) / 100) / 10;
  for (const [file, artifact] of Object.entries(files))
    writeArtifact(join(dir, file), { ...(artifact as object), profileSeconds: seconds } as never);
  costs[name] = { seconds, settings };
  console.log(`${name}: ${seconds} s → ${Object.keys(files).join(", ")}`);
}

const base = { steps, cfg };
await make("teacache", { ...base, items: 16 }, async () => ({
  "teacache.json": await profileTeaCache(pipeline, { ...base, items: 16 }),
}));
await make("ertacache", { ...base, items: 20, computedSteps: [35, 25, 17] }, async () => {
  const [c35, c25, c17] = await profileErtaCache(pipeline, { ...base, items: 20, computedSteps: [35, 25, 17] });
  return { "ertacache-c35.json": c35, "ertacache-c25.json": c25, "ertacache-c17.json": c17 };
});
await make("profilingdit", { ...base, items: 8 }, async () => ({
  "profilingdit.json": await profileProfilingDit(pipeline, { ...base, items: 8 }),
}));
await make("bac", { ...base, items: 4 }, async () => ({
  "bac.json": await profileBac(pipeline, { ...base, items: 4 }),
}));
await make("harmonica", { ...base, items: 8, rho: 0.6, rounds: 2 }, async () => ({
  "harmonica.json": await profileRouter(pipeline, { ...base, items: 8, rho: 0.6, rounds: 2 }),
}));
await make("l2c", { ...base, items: 8, rho: 0.6 }, async () => ({
  "l2c.json": await profileRouter(pipeline, { ...base, items: 8, rho: 0.6, mode: "l2c" }),
}));
await make("magcache", { ...base, items: 2 }, async () => ({
  "magcache.json": await profileMagCache(pipeline, { ...base, items: 2 }),
}));
const costPath = join(dir, "costs.json");
let previous: Record<string, unknown> = {};
try {
  previous = JSON.parse((await import("node:fs")).readFileSync(costPath, "utf8"));
} catch {}
writeFileSync(costPath, `${JSON.stringify({ ...previous, ...costs }, null, 1)}\n`);
await pipeline.release();
