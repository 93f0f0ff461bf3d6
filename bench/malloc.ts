/**
 * `npm run bench:malloc`: what the malloc tuning of bin/malloc-tuning.js does to a cached generation whose full steps
 * hand out large stacked values. Runs `ditto generate` (FORA N=2, 20 samples in one batch = network batch 40, 50
 * steps, CFG 3) with the tuning and with DITTO_MALLOC_TUNING=off, alternating, and prints medians of the denoising
 * wall time and of the process's CPU and system time.
 *
 *   npm run bench:malloc -- [--repeats 3] [--cache fora:interval=2] [--samples 20]
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { median } from "../src/bench/harness.ts";

const { values } = parseArgs({
  options: {
    repeats: { type: "string", default: "3" },
    cache: { type: "string", default: "fora:interval=2" },
    samples: { type: "string", default: "20" },
  },
});
const repeats = Number(values.repeats);
const samples = Number(values.samples);
const out = join(mkdtempSync(join(tmpdir(), "ditto-malloc-")), "grid.png");
const seeds = `0..${Math.ceil(samples / 10) - 1}`;
const args = ["bin/ditto.js", "generate", "--classes", "all", "--seeds", seeds, "--batch", String(samples)];
args.push("--cache", values.cache, "--json", "--verbose", "--quiet", "--out", out);

function run(tuned: boolean) {
  const env = { ...process.env, DITTO_MALLOC_TUNING: tuned ? "" : "off" };
  const r = spawnSync(process.execPath, args, { encoding: "utf8", env });
  if (r.status !== 0) throw new Error(`ditto generate failed: ${r.stderr}`);
  return {
    wall: JSON.parse(r.stdout).wallMs / 1000,
    cpu: Number(/CPU time ([\d.]+) s/.exec(r.stderr)?.[1]),
    system: Number(/of it system ([\d.]+) s/.exec(r.stderr)?.[1]),
  };
}

const runs = { tuned: [] as ReturnType<typeof run>[], untuned: [] as ReturnType<typeof run>[] };
for (let r = 0; r < repeats; r++) {
  for (const tuned of r % 2 === 0 ? [true, false] : [false, true]) runs[tuned ? "tuned" : "untuned"].push(run(tuned));
}
console.log(
  `ditto ${args.slice(1, -2).join(" ")}; medians of ${repeats}; load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`,
);
for (const [name, list] of Object.entries(runs)) {
  const m = (k: "wall" | "cpu" | "system") => median(list.map((x) => x[k])).toFixed(2);
  console.log(`${name}: denoising ${m("wall")} s, process CPU ${m("cpu")} s, of it system ${m("system")} s`);
}
