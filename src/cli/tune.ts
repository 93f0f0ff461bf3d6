/** `ditto tune`: search every policy's settings for the fastest one that keeps a quality bar; write its config. */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { jsonWithInfinity } from "../bench/report.ts";
import { InputError } from "../errors.ts";
import { Classifier } from "../metrics/classifier.ts";
import { loadPipeline } from "../pipeline.ts";
import { type Candidate, type TuneResult, tune, tunedConfig } from "../tune/tune.ts";
import { parseNumber } from "./args.ts";
import { MODEL_HELP, MODEL_OPTIONS, sessionOptions } from "./common.ts";
import { Progress } from "./progress.ts";

const HELP = `Usage: ditto tune --min-psnr DB [options]

Searches every cache policy's settings (successive halving on calibration seeds; TeaCache and MagCache are
calibrated first), times the finalists against uncached with interleaved repeats, and validates the fastest on
held-out seeds. Prints the Pareto front and writes the winner as a --cache-config file.

  --min-psnr DB      PSNR vs uncached the setting must keep (required), e.g. 30
  --min-ssim X       SSIM vs uncached it must keep (optional)
  --max-kid X        KID of its held-out samples vs the test set it must stay under (optional)
  --budget T         time budget, e.g. 10m, 90s (default 10m)
  --steps N          sampling steps (default: the manifest's)
  --cfg W            guidance scale (default: the manifest's)
  --seeds N          calibration seeds (default 8); --holdout N held-out seeds (default 16)
  --policies LIST    only these, e.g. magcache,easycache (default: all searched)
  --repeats N        timing rounds (default 3)
  --out FILE.json    the --cache-config file (default ditto-tuned.json)
  --json             print the full result as JSON on stdout
${MODEL_HELP}
`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...MODEL_OPTIONS,
      "min-psnr": { type: "string" },
      "min-ssim": { type: "string" },
      "max-kid": { type: "string" },
      budget: { type: "string", default: "10m" },
      steps: { type: "string" },
      cfg: { type: "string" },
      seeds: { type: "string" },
      holdout: { type: "string" },
      policies: { type: "string" },
      repeats: { type: "string" },
      out: { type: "string", default: "ditto-tuned.json" },
      json: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const minPsnr = parseNumber("min-psnr", values["min-psnr"]);
  if (minPsnr === undefined) throw new InputError("OPTION_INVALID", "--min-psnr is required, e.g. --min-psnr 30");
  const budgetMs = parseDuration(values.budget);
  const pipeline = await loadPipeline(values.model, { session: sessionOptions(values) });
  const classifier = await Classifier.load();
  let bar: Progress | undefined;
  let barTotal = 0;
  const result = await tune(pipeline, {
    minPsnr,
    minSsim: parseNumber("min-ssim", values["min-ssim"]),
    maxKid: parseNumber("max-kid", values["max-kid"]),
    budgetMs,
    steps: parseNumber("steps", values.steps, true),
    cfg: parseNumber("cfg", values.cfg),
    calibrationSeeds: positive("seeds", values.seeds),
    holdoutSeeds: positive("holdout", values.holdout),
    repeats: positive("repeats", values.repeats),
    policies: values.policies?.split(",").map((p) => p.trim()),
    classifier,
    onProgress: (done, total, note) => {
      // The total is re-planned once the search rungs end (timing and validation left): start a fresh bar then.
      if (!bar || total !== barTotal) {
        bar = new Progress(bar ? "tune (timing, validation)" : "tune (search)", total, !values.quiet);
        barTotal = total;
      }
      bar.update(done, note);
    },
  });
  const config = tunedConfig(result);
  const out = resolve(values.out);
  if (config) writeFileSync(out, `${JSON.stringify(config, null, 2)}\n`);
  if (values.json) process.stdout.write(`${jsonWithInfinity(jsonResult(result, config ? out : undefined))}\n`);
  else process.stdout.write(report(result, config ? out : undefined));
  await classifier.release();
  await pipeline.release();
}

/** "10m", "90s", "1h", or plain seconds. */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(h|m|min|s)?\s*$/.exec(text);
  if (!match) throw new InputError("OPTION_INVALID", `--budget expects a duration like 10m, 90s or 1h (got '${text}')`);
  const unit = match[2] ?? "s";
  const seconds = Number(match[1]) * (unit === "h" ? 3600 : unit.startsWith("m") ? 60 : 1);
  if (seconds <= 0) throw new InputError("OPTION_INVALID", `--budget must be positive (got '${text}')`);
  return seconds * 1000;
}

function positive(flag: string, text?: string): number | undefined {
  const n = parseNumber(flag, text, true);
  if (n !== undefined && n < 1) throw new InputError("OPTION_INVALID", `--${flag} must be at least 1 (got ${n})`);
  return n;
}

function row(c: Candidate): string {
  const speed = c.measuredSpeedup !== undefined ? `${c.measuredSpeedup.toFixed(2)}×` : "–";
  return `| \`${c.label}\` | ${speed} | ${c.idealSpeedup.toFixed(2)}× | ${c.psnr.toFixed(2)} | ${c.ssim.toFixed(4)} |`;
}

function report(r: TuneResult, out?: string): string {
  const lines = [
    `tune: ${r.evaluated} evaluations in ${(r.elapsedMs / 1000).toFixed(0)} s (calibration ${r.calibration.seconds} s), ${r.steps} steps, CFG ${r.cfg}`,
    "",
    "Pareto front (calibration seeds; measured speedup where timed):",
    "| setting | measured | ideal | PSNR (dB) | SSIM |",
    "|---|---:|---:|---:|---:|",
    ...r.front.map(row),
    "",
    "Timed finalists:",
    ...r.timed.map(row),
    "",
  ];
  if (r.chosen) {
    const k = r.chosen.holdout.kid;
    lines.push(`chosen: ${r.verdict}, SSIM ${r.chosen.holdout.ssim.toFixed(4)}`);
    if (k)
      lines.push(
        `KID (held-out vs test set): cached ${k.cached}, uncached ${k.uncached} ± ${k.uncachedSpread} → ${k.withinSpread ? "within" : "outside"} the uncached spread`,
      );
    lines.push(`wrote ${out}: use it with --cache-config ${out}`);
  } else lines.push(r.verdict);
  return `${lines.join("\n")}\n`;
}

function jsonResult(r: TuneResult, out?: string) {
  const strip = ({ policy: _p, config, ...c }: Candidate) => ({
    ...c,
    config: { ...config, ratios: undefined, coefficients: undefined },
  });
  return {
    ...r,
    front: r.front.map(strip),
    timed: r.timed.map(strip),
    chosen: r.chosen ? { ...strip(r.chosen), holdout: r.chosen.holdout } : null,
    out: out ?? null,
  };
}
