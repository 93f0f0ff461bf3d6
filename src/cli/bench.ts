/** `ditto bench`: fidelity and speed of cache policies, measured side by side in one run. */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { type BenchSettings, checkEvaluation, DEFAULT_SETTINGS, QUICK_SETTINGS, runBench } from "../bench/harness.ts";
import { benchJson, benchMarkdown, benchPlot } from "../bench/report.ts";
import { parseCacheSpec } from "../cache/registry.ts";
import { InputError } from "../errors.ts";
import { loadPipeline, type Pipeline } from "../pipeline.ts";
import { readSweep } from "../schema/sweep.ts";
import { parseNumber } from "./args.ts";
import {
  MODEL_HELP,
  MODEL_OPTIONS,
  modelLoadOptions,
  REVIEW_HELP,
  REVIEW_OPTIONS,
  refuseUnreviewed,
} from "./common.ts";
import { checkOutputFile } from "./output-path.ts";
import { Progress } from "./progress.ts";

const HELP = `Usage: ditto bench [options]

Speed (median and range of interleaved repeats, each cached run repeated back to back to span the uncached run's
time; a warning when repeats disagree by over 15 %) and quality vs the uncached run: PSNR, SSIM and NLPD for any
model; accuracy, FD, KID and TFUP only with the evaluation classifier the model's manifest names
("evaluation": {"classifier": DIR}), otherwise "n/a".

  --policies LIST    cache specs separated by ';' (repeatable), e.g. "none;fora:interval=3;taylorseer:interval=4,order=1"
  --sweep FILE.json  {"settings": {...}, "policies": [specs]} (bench/sweep.json)
  --samples N        samples for the quality metrics (default ${DEFAULT_SETTINGS.samples})
  --steps N          sampling steps (default ${DEFAULT_SETTINGS.steps})
  --cfg W            guidance scale (default ${DEFAULT_SETTINGS.cfg})
  --repeats N        interleaved timing repeats per policy (default ${DEFAULT_SETTINGS.repeats})
  --timing-samples N samples per timed generation (default ${DEFAULT_SETTINGS.timingSamples})
  --quick            few samples and steps: a smoke test of the table, not of speed
  --json FILE        write {"rows": [...], "settings": {...}}
  --plot FILE.png    Pareto chart: measured speedup vs PSNR, one labelled point per setting
  --markdown         print the table as Markdown
  --out PREFIX       write PREFIX.json, PREFIX.md and PREFIX.png
${REVIEW_HELP}
${MODEL_HELP}
`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...MODEL_OPTIONS,
      ...REVIEW_OPTIONS,
      policies: { type: "string", multiple: true },
      sweep: { type: "string" },
      samples: { type: "string" },
      steps: { type: "string" },
      cfg: { type: "string" },
      repeats: { type: "string" },
      "timing-samples": { type: "string" },
      quick: { type: "boolean", default: false },
      json: { type: "string" },
      plot: { type: "string" },
      markdown: { type: "boolean", default: false },
      out: { type: "string" },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  // Everything is checked before the model loads: the sweep file, every policy spec (and its artifact), the numbers
  // and the output paths.
  let settings: BenchSettings = values.quick ? { ...QUICK_SETTINGS } : { ...DEFAULT_SETTINGS };
  let specs: string[] = (values.policies ?? [])
    .flatMap((p) => p.split(";"))
    .map((p) => p.trim())
    .filter(Boolean);
  if (values.sweep) {
    const sweep = readSweep(values.sweep);
    if (!values.quick) settings = { ...settings, ...sweep.settings };
    specs = specs.concat(sweep.policies);
  }
  if (specs.length === 0)
    throw new InputError(
      "OPTION_INVALID",
      'name the policies to compare: --policies "none;taylorseer" or --sweep bench/sweep.json',
    );
  for (const spec of specs) parseCacheSpec(spec);
  settings.samples = parseNumber("samples", values.samples, true, { min: 1 }) ?? settings.samples;
  settings.steps = parseNumber("steps", values.steps, true, { min: 1, max: 10_000 }) ?? settings.steps;
  settings.cfg = parseNumber("cfg", values.cfg, false, { min: 0 }) ?? settings.cfg;
  settings.repeats = parseNumber("repeats", values.repeats, true, { min: 1 }) ?? settings.repeats;
  settings.timingSamples =
    parseNumber("timing-samples", values["timing-samples"], true, { min: 1 }) ?? settings.timingSamples;
  if (values.json) checkOutputFile("json", values.json, "bench.json");
  if (values.plot) checkOutputFile("plot", values.plot, "bench.png");
  if (values.out) for (const ext of ["json", "md", "png"]) checkOutputFile("out", `${values.out}.${ext}`, "bench");

  await checkEvaluation(await refuseUnreviewed(values));
  const pipeline = await loadPipeline(values.model, modelLoadOptions(values));
  if (!values.quiet) process.stderr.write(`${await estimate(pipeline, specs.length, settings)}\n`);
  let bar: Progress | undefined;
  const result = await runBench(pipeline, specs, settings, (p) => {
    bar ??= new Progress("bench", p.total, !values.quiet);
    bar.update(p.done, p.label);
  });
  for (const warning of result.warnings) process.stderr.write(`${warning}\n`);
  const command = `ditto bench ${argv.map(shellQuote).join(" ")}`;
  const write = (path: string, data: string | Buffer) => writeFileSync(path, data);
  const markdown = benchMarkdown(result, command);
  if (values.json) write(values.json, benchJson(result));
  if (values.plot) write(values.plot, await benchPlot(result));
  if (values.out) {
    write(`${values.out}.json`, benchJson(result));
    write(`${values.out}.md`, markdown);
    write(`${values.out}.png`, await benchPlot(result));
  }
  if (values.markdown || (!values.json && !values.out)) process.stdout.write(markdown);
  await pipeline.release();
}

/**
 * How long the bench will take, printed first: the work in sample-steps (as runBench schedules it) times the
 * uncached cost of one sample-step, measured on a short probe at the timing batch size. Each cached timing window
 * spans about one uncached run (runsToSpan, plus one calibration run per policy); the quality runs of cached
 * policies are faster, so this is an upper bound.
 */
async function estimate(pipeline: Pipeline, policies: number, s: BenchSettings): Promise<string> {
  const seeds = Array.from({ length: Math.min(s.timingSamples, s.batch) }, (_, i) => i);
  const classes = pipeline.manifest.inputs.condition ? seeds.map(() => 0) : undefined;
  const probe = { seeds, classes, steps: 3, cfg: s.cfg, cfgMode: s.cfgMode, batch: s.batch };
  await pipeline.generate(probe); // sessions and first-run allocations
  const { wallMs } = await pipeline.generate(probe);
  const perSampleStep = wallMs / (3 * seeds.length);
  const sampleSteps = s.steps * ((1 + policies) * (1 + s.samples) + policies * s.repeats * 2 * s.timingSamples);
  const minutes = (perSampleStep * sampleSteps) / 60_000;
  return (
    `bench: ${policies} settings × (${s.samples} quality samples + ${s.repeats} × 2 timed runs of ${s.timingSamples}) ` +
    `at ${s.steps} steps: at most ~${minutes < 1 ? "1" : minutes.toFixed(0)} min on this machine ` +
    "(uncached rate measured just now; cached quality runs are faster)"
  );
}

/** An argument as a shell reads it back: quoted when it holds anything but plain characters. */
export function shellQuote(arg: string): string {
  if (/^[\w./:=,@%+-]+$/.test(arg)) return arg;
  return /["$`\\]/.test(arg) ? `'${arg.replace(/'/g, "'\\''")}'` : `"${arg}"`;
}
