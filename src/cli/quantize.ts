/** `ditto quantize`: an int8 copy of a float DiT with its modulation path kept float (TFMQ), as a model folder. */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { InputError } from "../errors.ts";
import { optimizedOpCounts, writeQuantizedModel } from "../node/quant-write.ts";
import { loadPipeline } from "../pipeline.ts";
import { type ActivationScheme, type ModulationPrecision, quantizeModel } from "../quant/quantize.ts";
import { parseNumber } from "./args.ts";
import { MODEL_HELP, MODEL_OPTIONS, sessionOptions } from "./common.ts";
import { Progress } from "./progress.ts";

const HELP = `Usage: ditto quantize --out DIR [options]

Writes DIR/model.onnx, DIR/manifest.json and DIR/quant.json (ditto.quant.v1): the token-path linears (QKV,
out-projection, MLP) in int8 with per-output-channel weight scales from TFMQ's range search; the modulation path
(timestep/condition → adaLN shift, scale, gate) stays float32. DIR is a normal model folder: pass it to
generate, bench or profile with --model DIR.

  --out DIR              the quantized model folder (required)
  --scheme dynamic       activation ranges measured at run time, per tensor (default; any step count)
  --scheme static        per-step activation ranges (FSC) calibrated on float runs; only for that step grid
  --modulation float     keep the modulation path float (default)
  --modulation int8      quantize it too — an ablation that shows why not to
  --exclude LIST         node-name substrings or /regex/ patterns of linears to keep float (comma-separated,
                         repeatable), e.g. --exclude blocks.0/,mlp.2
  --steps N, --cfg W     static scheme: the sampler grid and guidance of the calibration runs (default: the manifest's)
  --seeds N              static scheme: calibration items (default 8)
${MODEL_HELP}
`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...MODEL_OPTIONS,
      out: { type: "string" },
      scheme: { type: "string", default: "dynamic" },
      modulation: { type: "string", default: "float" },
      exclude: { type: "string", multiple: true },
      steps: { type: "string" },
      cfg: { type: "string" },
      seeds: { type: "string" },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (!values.out) throw new InputError("OPTION_INVALID", "--out DIR is required: the folder to write the model to");
  const scheme = values.scheme as ActivationScheme;
  if (scheme !== "static" && (values.steps || values.cfg || values.seeds))
    throw new InputError(
      "OPTION_INVALID",
      "--steps, --cfg and --seeds calibrate the static scheme: add --scheme static",
    );
  const started = performance.now();
  const pipeline = await loadPipeline(values.model, { session: sessionOptions(values) });
  let bar: Progress | undefined;
  const quantized = await quantizeModel(pipeline, {
    scheme,
    modulation: values.modulation as ModulationPrecision,
    exclude: (values.exclude ?? []).flatMap((e) => e.split(",")).filter(Boolean),
    calibration: {
      steps: parseNumber("steps", values.steps, true),
      cfg: parseNumber("cfg", values.cfg),
      items: parseNumber("seeds", values.seeds, true),
      onProgress: (done, total) => {
        bar ??= new Progress("calibrating per-step ranges", total, !values.quiet);
        bar.update(done);
      },
    },
    command: `quantize ${argv.join(" ")}`,
  });
  const dir = resolve(values.out);
  writeQuantizedModel(dir, quantized);
  await pipeline.release();
  const ops = await optimizedOpCounts(quantized.onnx);
  const a = quantized.artifact;
  const count = Object.values(a.weights).length;
  const fused = ops["com.microsoft:DynamicQuantizeMatMul"] ?? 0;
  const integerOps = Object.entries(ops)
    .filter(([op]) => /Integer|Quantize/.test(op))
    .map(([op, n]) => `${n}× ${op}`)
    .join(", ");
  process.stdout.write(
    `wrote ${dir} in ${((performance.now() - started) / 1000).toFixed(1)} s: ${count} linears int8 (${a.scheme} activations, ` +
      `modulation ${a.modulation}), ${a.keptFloat.length} kept float; ${(a.onnx.bytes / 2 ** 20).toFixed(1)} MiB\n` +
      `ONNX Runtime's optimized graph: ${integerOps}` +
      (a.scheme === "dynamic" ? ` (${fused} of ${count} fused into DynamicQuantizeMatMul)\n` : "\n"),
  );
}
