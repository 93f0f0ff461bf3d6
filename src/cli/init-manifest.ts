/** `ditto init-manifest`: write a manifest.json for a user's own ONNX DiT, listing the guesses to confirm. */
import { existsSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { DittoError, GraphError, InputError } from "../errors.ts";
import { discoverStructure } from "../model/discover.ts";
import { inferManifest } from "../model/infer-manifest.ts";
import { GraphIndex } from "../onnx/graph.ts";
import { loadOnnx } from "../onnx/load.ts";
import { graphOf } from "../onnx/proto.ts";
import { checkOutputFile } from "./output-path.ts";

const HELP = `Usage: ditto init-manifest MODEL.onnx [--out manifest.json] [--force]

Guesses the input roles (sample, timestep, class), the class count and the image layout from the graph, and
writes them with a "needsReview" list of fields you must check (objective, time convention, value range).
An integer timestep input is taken as a DDPM step index (epsilon objective, DDIM, trainSteps 1000); a class table
gets a null (guidance) row only when its size says so (11 = 10 classes + null), otherwise no guidance.
generate, bench and profile refuse the manifest until "needsReview" is deleted (or --accept-guesses is given).
`;

export async function run(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      out: { type: "string" },
      force: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    allowPositionals: true,
  });
  if (values.help || positionals.length === 0) {
    process.stdout.write(HELP);
    if (!values.help) throw new InputError("OPTION_INVALID", "name the .onnx file: ditto init-manifest MODEL.onnx");
    return;
  }
  const path = resolve(positionals[0]);
  const out = checkOutputFile("out", values.out ?? join(dirname(path), "manifest.json"), "manifest.json");
  if (existsSync(out) && !values.force) {
    throw new InputError("OPTION_INVALID", `${out} exists; pass --force to overwrite it`);
  }
  const loaded = await loadOnnx(path);
  const graph = new GraphIndex(graphOf(loaded.proto));
  const manifest = inferManifest(graph, path);
  // A manifest for a graph Ditto cannot split would only fail later: run structure discovery first.
  try {
    discoverStructure(graph, manifest.inputs.sample.name, manifest.structure);
  } catch (err) {
    if (!(err instanceof DittoError)) throw err;
    throw new GraphError(
      "STRUCTURE_NOT_FOUND",
      `${path} does not look like a diffusion transformer Ditto can cache: ${err.message} ` +
        "No manifest written. If it is a DiT, name its block boundaries: `ditto inspect MODEL.onnx --tensors` lists " +
        'the tensors; write them as "structure": {"blockBoundaries": [h_0, …, h_L]} in a manifest (README, "Bring your own ONNX DiT").',
      { path },
    );
  }
  writeFileSync(out, `${JSON.stringify(manifest, null, 2)}\n`);
  process.stdout.write(
    `wrote ${out}\nCheck these fields, then delete "needsReview" (generate, bench and profile refuse the manifest until ` +
      `then, unless --accept-guesses): ${manifest.needsReview?.join(", ")}\n`,
  );
}
