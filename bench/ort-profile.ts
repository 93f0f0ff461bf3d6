/**
 * `npx tsx bench/ort-profile.ts`: where a generation's time goes inside ONNX Runtime. Runs a warm-up and a timed
 * generation of the shipped model with ONNX Runtime's profiler on for every session (SessionOptions.profilePrefix),
 * then prints, for the timed generation, each session's runs and median run time, and for the session that takes the
 * most time, its kernel time per operator type per run. Profiling adds a little time to every kernel.
 *
 *   npx tsx bench/ort-profile.ts [--samples 10] [--steps 50] [--cfg 3] [--cache SPEC]
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { relaunchWithMallocTuning } from "../bin/malloc-tuning.js";
import { median } from "../src/bench/harness.ts";
import { loadPipeline } from "../src/pipeline.ts";

// The same malloc tuning as the ditto command (bin/malloc-tuning.js).
relaunchWithMallocTuning();
const { values } = parseArgs({
  options: {
    samples: { type: "string", default: "10" },
    steps: { type: "string", default: "50" },
    cfg: { type: "string", default: "3" },
    cache: { type: "string", default: "none" },
  },
});
const dir = mkdtempSync(join(tmpdir(), "ditto-ort-profile-"));
const pipeline = await loadPipeline(undefined, { session: { profilePrefix: join(dir, "session") } });
const seeds = Array.from({ length: Number(values.samples) }, (_, i) => i);
const request = {
  seeds,
  classes: seeds.map((i) => i % 10),
  steps: Number(values.steps),
  cfg: Number(values.cfg),
  batch: seeds.length,
  cache: values.cache,
};
await pipeline.generate(request);
const timed = await pipeline.generate(request);
await pipeline.release(); // writes the profiles

interface ProfileEvent {
  cat?: string;
  name: string;
  dur: number;
  ts: number;
  args?: { op_name?: string };
}
console.log(
  `${seeds.length} samples, ${request.steps} steps, CFG ${request.cfg}, cache ${values.cache}: timed generation ` +
    `${(timed.wallMs / 1000).toFixed(2)} s (profiler on)`,
);
console.log("| session | runs | median run ms | total ms | kernels per run |");
console.log("|---:|---:|---:|---:|---:|");
let heaviest: { name: string; runs: number; kernels: ProfileEvent[]; total: number } | undefined;
for (const file of readdirSync(dir).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))) {
  const events = JSON.parse(readFileSync(join(dir, file), "utf8")) as ProfileEvent[];
  const runs = events.filter((e) => e.cat === "Session" && e.name === "model_run");
  if (runs.length === 0) continue;
  // The second half of a session's runs belongs to the timed generation (both generations run the same sessions).
  const mine = runs.slice(runs.length / 2);
  const from = mine[0].ts;
  const kernels = events.filter((e) => e.cat === "Node" && e.name.endsWith("_kernel_time") && e.ts >= from);
  const total = mine.reduce((a, e) => a + e.dur, 0) / 1000;
  const name = file.replace(/_.*$/, "");
  console.log(
    `| ${name} | ${mine.length} | ${median(mine.map((e) => e.dur / 1000)).toFixed(2)} | ${total.toFixed(0)} | ` +
      `${Math.round(kernels.length / mine.length)} |`,
  );
  if (!heaviest || total > heaviest.total) heaviest = { name, runs: mine.length, kernels, total };
}
if (heaviest) {
  const byOp = new Map<string, number>();
  for (const k of heaviest.kernels) byOp.set(k.args?.op_name ?? "?", (byOp.get(k.args?.op_name ?? "?") ?? 0) + k.dur);
  const sum = [...byOp.values()].reduce((a, b) => a + b, 0);
  console.log(`\n${heaviest.name}: kernel time per run by operator`);
  console.log("| operator | ms per run | share |");
  console.log("|---|---:|---:|");
  for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 12))
    console.log(`| ${op} | ${(us / 1000 / heaviest.runs).toFixed(2)} | ${((100 * us) / sum).toFixed(1)} % |`);
}
rmSync(dir, { recursive: true, force: true });
