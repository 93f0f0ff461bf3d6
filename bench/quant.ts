/**
 * `npm run bench:quant`: the TFMQ int8 benchmark (bench/quant.json). Makes the int8 model folders with `ditto
 * quantize`'s library call (bench/models/, not committed: the command reproduces them), calibrates the int8 rows'
 * TeaCache and BAC artifacts with the int8 model in the loop (bench/artifacts/int8/, with their costs), then
 * measures every row side by side in one process. Writes bench/results/quant.{json,md}.
 * Overrides: SAMPLES=N REPEATS=N TIMING_SAMPLES=N; PLOT_ONLY=1 redraws bench/results/quant.png from quant.json.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { jsonWithInfinity } from "../src/bench/report.ts";
import { writeQuantizedModel } from "../src/node/quant-write.ts";
import { loadPipeline, type Pipeline } from "../src/pipeline.ts";
import { writeArtifact } from "../src/profiling/artifact.ts";
import { profileBac } from "../src/profiling/bac.ts";
import { profileTeaCache } from "../src/profiling/teacache.ts";
import {
  type QuantBenchResult,
  type QuantBenchSettings,
  quantBenchMarkdown,
  quantBenchPlot,
  runQuantBench,
} from "../src/quant/bench.ts";
import { type QuantizeOptions, quantizeModel } from "../src/quant/quantize.ts";

const root = join(import.meta.dirname, "..");
const sweep = JSON.parse(readFileSync(join(root, "bench/quant.json"), "utf8")) as {
  settings: QuantBenchSettings;
  rows: { model: string; cache: string }[];
};
const settings: QuantBenchSettings = {
  ...sweep.settings,
  samples: Number(process.env.SAMPLES ?? sweep.settings.samples),
  repeats: Number(process.env.REPEATS ?? sweep.settings.repeats),
  timingSamples: Number(process.env.TIMING_SAMPLES ?? sweep.settings.timingSamples),
};
if (process.env.PLOT_ONLY) {
  // PLOT_ONLY=1 redraws bench/results/quant.png from the committed quant.json without measuring again.
  const saved: QuantBenchResult = JSON.parse(readFileSync(join(root, "bench/results/quant.json"), "utf8"));
  writeFileSync(join(root, "bench/results/quant.png"), await quantBenchPlot(saved));
  process.exit(0);
}
const log = (s: string) => process.stderr.write(`[bench:quant ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

const VARIANTS: Record<string, QuantizeOptions> = {
  "int8-dynamic": { scheme: "dynamic" },
  "int8-static": { scheme: "static", calibration: { steps: settings.steps, cfg: settings.cfg, items: 8 } },
  "int8-dynamic-int8mod": { scheme: "dynamic", modulation: "int8" },
};

const float = await loadPipeline();
const pipelines = new Map<string, Pipeline>([["float", float]]);
const costs: Record<string, number> = {};
for (const name of new Set(sweep.rows.map((r) => r.model))) {
  if (pipelines.has(name)) continue;
  const dir = join(root, "bench/models", `fashion-dit-${name}`);
  const current =
    existsSync(join(dir, "quant.json")) &&
    JSON.parse(readFileSync(join(dir, "quant.json"), "utf8")).model.sha256 === float.model.onnx.sha256;
  if (!current) {
    const started = performance.now();
    writeQuantizedModel(dir, await quantizeModel(float, { ...VARIANTS[name], command: `quantize (bench ${name})` }));
    costs[`quantize ${name}`] = Math.round((performance.now() - started) / 100) / 10;
    log(`quantized ${name} in ${costs[`quantize ${name}`]} s → ${dir}`);
  }
  pipelines.set(name, await loadPipeline(dir));
}

// Calibrated policies on int8 rows: calibrated on the int8 model itself (its SHA-256 is in each artifact).
const int8 = pipelines.get("int8-dynamic");
const artifactDir = join(root, "bench/artifacts/int8");
mkdirSync(artifactDir, { recursive: true });
const base = { steps: settings.steps, cfg: settings.cfg };
const calibrations: Record<string, () => Promise<object>> = {
  "teacache.json": async () => profileTeaCache(int8 as Pipeline, { ...base, items: 16 }),
  "bac.json": async () => profileBac(int8 as Pipeline, { ...base, items: 4 }),
};
for (const [file, make] of Object.entries(calibrations)) {
  const path = join(artifactDir, file);
  const stale = !existsSync(path) || JSON.parse(readFileSync(path, "utf8")).model.sha256 !== int8?.model.onnx.sha256;
  if (!int8 || !stale || !sweep.rows.some((r) => r.cache.includes(`int8/${file}`))) continue;
  const started = performance.now();
  const artifact = await make();
  const seconds = Math.round((performance.now() - started) / 100) / 10;
  writeArtifact(path, { ...artifact, profileSeconds: seconds } as never);
  costs[`calibrate ${file}`] = seconds;
  log(`calibrated ${file} on int8-dynamic in ${seconds} s`);
}
if (Object.keys(costs).length > 0) {
  const costPath = join(artifactDir, "costs.json");
  const previous = existsSync(costPath) ? JSON.parse(readFileSync(costPath, "utf8")) : {};
  writeFileSync(costPath, `${JSON.stringify({ ...previous, ...costs }, null, 1)}\n`);
}

const result = await runQuantBench(
  sweep.rows.map((r) => ({ ...r, pipeline: pipelines.get(r.model) as Pipeline })),
  settings,
  log,
);
writeFileSync(join(root, "bench/results/quant.png"), await quantBenchPlot(result));
const env = ["SAMPLES", "REPEATS", "TIMING_SAMPLES"]
  .filter((k) => process.env[k])
  .map((k) => `${k}=${process.env[k]} `);
const markdown = quantBenchMarkdown(result, `${env.join("")}npm run bench:quant`);
mkdirSync(join(root, "bench/results"), { recursive: true });
writeFileSync(join(root, "bench/results/quant.json"), `${jsonWithInfinity(result, 1)}\n`);
writeFileSync(join(root, "bench/results/quant.md"), markdown);
process.stdout.write(markdown);
for (const p of pipelines.values()) await p.release();
