/** `ditto bench`: fidelity and speed of cache policies, measured side by side in one run. */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type BenchSettings, DEFAULT_SETTINGS, QUICK_SETTINGS, runBench } from "../bench/harness.ts";
import { benchJson, benchMarkdown, benchPlot } from "../bench/report.ts";
import { InputError } from "../errors.ts";
import { loadPipeline } from "../pipeline.ts";
import { parseNumber } from "./args.ts";
import { MODEL_HELP, MODEL_OPTIONS, modelLoadOptions } from "./common.ts";
import { Progress } from "./progress.ts";

const HELP = `Usage: ditto bench [options]

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
${MODEL_HELP}
`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...MODEL_OPTIONS,
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
  let settings: BenchSettings = values.quick ? { ...QUICK_SETTINGS } : { ...DEFAULT_SETTINGS };
  let specs: string[] = (values.policies ?? [])
    .flatMap((p) => p.split(";"))
    .map((p) => p.trim())
    .filter(Boolean);
  if (values.sweep) {
    const sweep = JSON.parse(readFileSync(values.sweep, "utf8")) as {
      settings?: Partial<BenchSettings>;
      policies: string[];
    };
    if (!values.quick) settings = { ...settings, ...sweep.settings };
    specs = specs.concat(sweep.policies);
  }
  if (specs.length === 0)
    throw new InputError(
      "OPTION_INVALID",
      'name the policies to compare: --policies "none;taylorseer" or --sweep bench/sweep.json',
    );
  settings.samples = parseNumber("samples", values.samples, true) ?? settings.samples;
  settings.steps = parseNumber("steps", values.steps, true) ?? settings.steps;
  settings.cfg = parseNumber("cfg", values.cfg) ?? settings.cfg;
  settings.repeats = parseNumber("repeats", values.repeats, true) ?? settings.repeats;
  settings.timingSamples = parseNumber("timing-samples", values["timing-samples"], true) ?? settings.timingSamples;

  const pipeline = await loadPipeline(values.model, modelLoadOptions(values));
  let bar: Progress | undefined;
  const result = await runBench(pipeline, specs, settings, (p) => {
    bar ??= new Progress("bench", p.total, !values.quiet);
    bar.update(p.done, p.label);
  });
  const command = `ditto bench ${argv.join(" ")}`;
  const write = (path: string, data: string | Buffer) => {
    mkdirSync(dirname(resolve(path)), { recursive: true });
    writeFileSync(path, data);
  };
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
