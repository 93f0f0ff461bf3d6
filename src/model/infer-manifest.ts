/**
 * `ditto init-manifest`: a manifest guessed from the graph alone (input names, dtypes, shapes, the class
 * embedding's size). Everything the graph cannot tell is listed under `needsReview` for a person to confirm.
 */
import { GraphError } from "../errors.ts";
import type { GraphIndex } from "../onnx/graph.ts";
import { ELEMENT_TYPES, toNumber } from "../onnx/proto.ts";
import type { ModelManifest } from "./manifest.ts";

interface GraphInput {
  name: string;
  dtype: string;
  dims: (number | string)[];
}

export function inferManifest(g: GraphIndex, onnxPath: string): ModelManifest {
  const inputs = [...g.graphInputs].map((name) => describeInput(g, name));
  const isFloat = (i: GraphInput) => i.dtype.startsWith("float");
  const review: string[] = [];
  const sample = inputs.filter(isFloat).find((i) => i.dims.length === 4) ?? inputs.find(isFloat);
  if (!sample) {
    throw new GraphError(
      "STRUCTURE_NOT_FOUND",
      `${onnxPath} has no floating-point graph input to use as the noisy sample; is it a diffusion transformer?`,
      { path: onnxPath },
    );
  }
  const rest = inputs.filter((i) => i !== sample);
  const timestep =
    rest.find((i) => /^(t|time|times|timestep|timesteps|sigma|sigmas)$/i.test(i.name)) ??
    rest.find((i) => isFloat(i) && i.dims.length <= 1) ??
    rest[0];
  if (!timestep) {
    throw new GraphError(
      "STRUCTURE_NOT_FOUND",
      `${onnxPath} has no graph input left to use as the timestep (inputs: ${inputs.map((i) => i.name).join(", ")}); a DiT takes the noisy sample and a timestep`,
      { path: onnxPath },
    );
  }
  const condInput = rest.find((i) => i !== timestep && !isFloat(i));
  const [, c, h, w] = sample.dims;
  const image = {
    channels: typeof c === "number" ? c : 1,
    height: typeof h === "number" ? h : 0,
    width: typeof w === "number" ? w : 0,
    range: [-1, 1] as [number, number],
  };
  if (typeof c !== "number" || typeof h !== "number" || typeof w !== "number")
    review.push("image.channels/height/width");
  review.push("image.range", "objective.kind", "objective.timeAtNoise", "inputs.timestep.scale");
  const manifest: ModelManifest = {
    format: "ditto.model.v1",
    name: fileName(onnxPath).replace(/\.onnx$/, ""),
    onnx: fileName(onnxPath),
    objective: { kind: "flow-velocity", timeAtNoise: 1, timeAtData: 0 },
    inputs: {
      sample: { name: sample.name, dtype: sample.dtype, shape: sample.dims },
      timestep: { name: timestep.name, dtype: timestep.dtype, shape: timestep.dims, scale: 1 },
    },
    output: { name: g.graphOutputs[0] },
    image,
    recommended: { sampler: "euler", steps: 50, cfgScale: 1, shift: 1 },
  };
  if (condInput) {
    const table = classTableSize(g, condInput.name);
    manifest.inputs.condition = {
      name: condInput.name,
      dtype: condInput.dtype,
      shape: condInput.dims,
      kind: "class",
      numClasses: table ? table - 1 : 1,
      nullClass: table ? table - 1 : undefined,
    };
    if (manifest.recommended) manifest.recommended.cfgScale = 3;
    review.push("inputs.condition.numClasses", "inputs.condition.nullClass", "recommended.cfgScale");
  }
  manifest.needsReview = review;
  return manifest;
}

function describeInput(g: GraphIndex, name: string): GraphInput {
  const t = g.valueInfo.get(name)?.type?.tensorType;
  const dtype = ELEMENT_TYPES[t?.elemType ?? 1] ?? "float32";
  const dims = (t?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : toNumber(d.dimValue)));
  return { name, dtype, dims };
}

/** Rows of the embedding table a Gather indexes with the condition (a DiT's label table has N classes + 1 null). */
function classTableSize(g: GraphIndex, condition: string): number | undefined {
  for (const n of g.consumers.get(condition) ?? []) {
    const node = g.nodes[n];
    if (node.opType !== "Gather" || node.input[1] !== condition) continue;
    const table = g.initializers.get(node.input[0]);
    if (table?.dims?.length) return toNumber(table.dims[0]);
  }
  return undefined;
}

/** The last component of a path or URL (either separator). */
function fileName(path: string): string {
  return path.split(/[\\/]/).pop() ?? path;
}
