/**
 * `npm run bench:startup`: time to first image of `ditto generate --seeds 0 --classes 0` (one sample, 50 steps) from
 * process start, cold (empty graph cache), warm (second run) and with --no-graph-cache, interleaved, medians; with
 * the start-up split that `--verbose` prints (load, probe, cutting graphs, session creation).
 *
 *   npm run bench:startup -- [--repeats 3]
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { median } from "../src/bench/harness.ts";

const { values } = parseArgs({ options: { repeats: { type: "string", default: "3" } } });
const repeats = Number(values.repeats);
const out = join(mkdtempSync(join(tmpdir(), "ditto-startup-")), "grid.png");

interface Timing {
  total: number;
  cpu: number;
  load: number;
  probe: number;
  cut: number;
  session: number;
}

function run(cacheDir: string | undefined): Timing {
  const args = ["bin/ditto.js", "generate", "--seeds", "0", "--classes", "0", "--verbose", "--quiet", "--out", out];
  if (!cacheDir) args.push("--no-graph-cache");
  const r = spawnSync(process.execPath, args, {
    encoding: "utf8",
    env: { ...process.env, ...(cacheDir ? { DITTO_CACHE_DIR: cacheDir } : {}) },
  });
  if (r.status !== 0) throw new Error(`ditto generate failed: ${r.stderr}`);
  const seconds = (label: string) => Number(new RegExp(`${label} ([\\d.]+) s`).exec(r.stderr)?.[1] ?? Number.NaN);
  return {
    total: Number(/([\d.]+) s after the process started/.exec(r.stderr)?.[1] ?? Number.NaN),
    cpu: Number(/CPU time ([\d.]+) s/.exec(r.stderr)?.[1] ?? Number.NaN),
    load: seconds("load"),
    probe: seconds("probe"),
    cut: seconds("cutting graphs"),
    session: seconds("session creation"),
  };
}

const rows: Record<string, Timing[]> = { cold: [], warm: [], "no cache": [] };
for (let r = 0; r < repeats; r++) {
  const dir = mkdtempSync(join(tmpdir(), "ditto-startup-cache-"));
  rows.cold.push(run(dir));
  rows.warm.push(run(dir));
  rows["no cache"].push(run(undefined));
  rmSync(dir, { recursive: true, force: true });
}
console.log(
  `load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}; medians of ${repeats}`,
);
console.log("| start | time to first image | its CPU time | load | probe | cutting graphs | session creation |");
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const [name, list] of Object.entries(rows)) {
  const m = (k: keyof Timing) => `${median(list.map((t) => t[k])).toFixed(2)} s`;
  console.log(
    `| ${name} | ${m("total")} | ${m("cpu")} | ${m("load")} | ${m("probe")} | ${m("cut")} | ${m("session")} |`,
  );
}
