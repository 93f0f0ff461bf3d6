/** `ditto init-manifest`: write a manifest.json for a user's own ONNX DiT, listing the guesses to confirm. */
import { existsSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { InputError } from "../errors.ts";
import { inferManifest } from "../model/infer-manifest.ts";
import { GraphIndex } from "../onnx/graph.ts";
import { loadOnnx } from "../onnx/load.ts";
import { graphOf } from "../onnx/proto.ts";

const HELP = `Usage: ditto init-manifest MODEL.onnx [--out manifest.json] [--force]

Guesses the input roles (sample, timestep, class), the class count and the image layout from the graph, and
writes them with a "needsReview" list of fields you must check (objective, time convention, value range).
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
  const loaded = await loadOnnx(path);
  const manifest = inferManifest(new GraphIndex(graphOf(loaded.proto)), path);
  const out = resolve(values.out ?? join(dirname(path), "manifest.json"));
  if (existsSync(out) && !values.force) {
    throw new InputError("OPTION_INVALID", `${out} exists; pass --force to overwrite it`);
  }
  writeFileSync(out, `${JSON.stringify(manifest, null, 2)}\n`);
  process.stdout.write(
    `wrote ${out}\nCheck these fields, then delete "needsReview": ${manifest.needsReview?.join(", ")}\n`,
  );
}
