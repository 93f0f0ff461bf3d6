/** `ditto profile --method M`: offline calibration, writing a JSON artifact a cache policy loads. */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { InputError, listChoices } from "../errors.ts";
import { loadPipeline, type Pipeline } from "../pipeline.ts";
import { type ArtifactHeader, writeArtifact } from "../profiling/artifact.ts";
import type { CalibrationOptions } from "../profiling/calibration.ts";
import { parseNumber } from "./args.ts";
import { MODEL_HELP, MODEL_OPTIONS, modelLoadOptions } from "./common.ts";
import { Progress } from "./progress.ts";

interface ProfileMethod {
  summary: string;
  run(
    pipeline: Pipeline,
    options: CalibrationOptions,
    extra: Record<string, string | undefined>,
  ): Promise<ArtifactHeader>;
  /** A PNG of what was profiled. */
  plot?(artifact: ArtifactHeader): Promise<Buffer>;
  /** One line of what was found, for the terminal. */
  summarize(artifact: ArtifactHeader): string;
}

const METHODS: Record<string, () => Promise<ProfileMethod>> = {
  teacache: async () => (await import("../profiling/teacache-cli.ts")).teacacheMethod,
  ertacache: async () => (await import("../profiling/ertacache-cli.ts")).ertacacheMethod,
  profilingdit: async () => (await import("../profiling/profilingdit-cli.ts")).profilingditMethod,
  bac: async () => (await import("../profiling/bac-cli.ts")).bacMethod,
  harmonica: async () => (await import("../profiling/harmonica-cli.ts")).harmonicaMethod,
  l2c: async () => (await import("../profiling/harmonica-cli.ts")).l2cMethod,
};

const HELP = `Usage: ditto profile --method METHOD [options]

Runs calibration generations (uncached unless the method says otherwise) and writes the artifact a cache policy
loads, e.g. --cache teacache:calibration=FILE.json.

  --method NAME      ${Object.keys(METHODS).join(", ")}
  --steps N          sampling steps the artifact is for (default: the manifest's)
  --cfg W            guidance scale the artifact is for (default: the manifest's)
  --seeds N          number of calibration items (seed, class) (default: the method's)
  --out FILE.json    the artifact (default ditto-<method>.json)
  --plot FILE.png    a picture of what was profiled
  --set KEY=VALUE    method-specific settings (repeatable), e.g. --set lambda=0.1
${MODEL_HELP}
`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...MODEL_OPTIONS,
      method: { type: "string" },
      steps: { type: "string" },
      cfg: { type: "string" },
      seeds: { type: "string" },
      out: { type: "string" },
      plot: { type: "string" },
      set: { type: "string", multiple: true },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const name = values.method;
  const load = name ? METHODS[name] : undefined;
  if (!name || !load) {
    throw new InputError(
      "OPTION_INVALID",
      `--method must be ${listChoices(Object.keys(METHODS))} (got ${JSON.stringify(name ?? null)})`,
    );
  }
  const method = await load();
  const extra: Record<string, string | undefined> = {};
  for (const kv of values.set ?? []) {
    const [key, value] = kv.split("=");
    if (!key || value === undefined) throw new InputError("OPTION_INVALID", `--set expects KEY=VALUE (got '${kv}')`);
    extra[key] = value;
  }
  const pipeline = await loadPipeline(values.model, modelLoadOptions(values));
  const started = performance.now();
  let bar: Progress | undefined;
  let pass = 0;
  const artifact = await method.run(
    pipeline,
    {
      steps: parseNumber("steps", values.steps, true),
      cfg: parseNumber("cfg", values.cfg),
      items: parseNumber("seeds", values.seeds, true),
      onProgress: (done, total) => {
        if (done === 1 || !bar) {
          pass++;
          bar = new Progress(`profile ${name} run ${pass}`, total, !values.quiet);
        }
        bar.update(done);
      },
    },
    extra,
  );
  const seconds = (performance.now() - started) / 1000;
  const out = resolve(values.out ?? `ditto-${name}.json`);
  writeArtifact(out, { ...artifact, profileSeconds: Math.round(seconds * 10) / 10 } as ArtifactHeader);
  if (values.plot && method.plot) writeFileSync(resolve(values.plot), await method.plot(artifact));
  process.stdout.write(`wrote ${out} in ${seconds.toFixed(1)} s: ${method.summarize(artifact)}\n`);
  await pipeline.release();
}
