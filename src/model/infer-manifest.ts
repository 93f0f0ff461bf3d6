/**
 * `ditto init-manifest`: a manifest guessed from the graph alone (input names, dtypes, shapes, the class
 * embedding's size). Everything the graph cannot tell is listed under `needsReview` for a person to confirm.
 *
 * What the graph says and what is guessed from it:
 * - an integer timestep input with a large range is a train-step index 0…N−1, which only DDPM-style (ε-prediction)
 *   models take; a flow model's time is a float. So: objective epsilon, DDIM, scale 1, and N = the rows of the
 *   table the index gathers from (when it gathers from one, it must have ≥ 100 rows), else 1000 (DiT and most
 *   ε-DiTs train on 1000 steps) — all to review.
 * - a class table of R rows holds a null (guidance) row only when something says so: R − 1 is a round class count
 *   (10, 100, 1000) while R is not, as in DiT's `num_classes + 1` label table. Otherwise all R rows are classes and
 *   the model gets no guidance (cfg 1), since feeding a real class as "unconditional" gives wrong images silently.
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
    rest.find((i) => /time|step|sigma/i.test(i.name)) ??
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
  review.push("image.range");
  // A step index spans the training steps (hundreds or more); an integer indexing a small table is something else.
  const stepRows = gatherTableRows(g, timestep.name);
  const stepIndex = isInteger(timestep) && (stepRows === undefined || stepRows >= 100);
  const manifest: ModelManifest = {
    format: "ditto.model.v1",
    name: fileName(onnxPath).replace(/\.onnx$/, ""),
    onnx: fileName(onnxPath),
    objective: stepIndex
      ? {
          kind: "epsilon",
          schedule: {
            betaSchedule: "linear",
            betaStart: 0.0001,
            betaEnd: 0.02,
            trainSteps: stepRows ?? 1000,
          },
        }
      : { kind: "flow-velocity", timeAtNoise: 1, timeAtData: 0 },
    inputs: {
      sample: { name: sample.name, dtype: sample.dtype, shape: sample.dims },
      timestep: { name: timestep.name, dtype: timestep.dtype, shape: timestep.dims, scale: 1 },
    },
    output: { name: g.graphOutputs[0] },
    image,
    recommended: stepIndex
      ? { sampler: "ddim", steps: 50, cfgScale: 1 }
      : { sampler: "euler", steps: 50, cfgScale: 1, shift: 1 },
  };
  review.push("objective.kind");
  if (stepIndex) review.push("objective.schedule", "objective.schedule.trainSteps", "recommended.sampler");
  else review.push("objective.timeAtNoise");
  review.push("inputs.timestep.scale");
  if (condInput) {
    const rows = gatherTableRows(g, condInput.name);
    const nullRow = rows !== undefined && hasNullRow(rows);
    const numClasses = rows === undefined ? 1 : nullRow ? rows - 1 : rows;
    manifest.inputs.condition = {
      name: condInput.name,
      dtype: condInput.dtype,
      shape: condInput.dims,
      kind: "class",
      numClasses,
      nullClass: nullRow ? numClasses : undefined,
    };
    if (nullRow && manifest.recommended) manifest.recommended.cfgScale = 3;
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

function isInteger(input: GraphInput): boolean {
  return /^u?int/.test(input.dtype);
}

/** A null row is evident when R − 1 is a round class count and R is not (DiT: num_classes + 1 rows). */
export function hasNullRow(rows: number): boolean {
  const round = (n: number) => n >= 2 && n % 10 === 0;
  return round(rows - 1) && !round(rows);
}

/** Rows of the embedding table a Gather indexes with this input (a class table, or a timestep table). */
function gatherTableRows(g: GraphIndex, input: string): number | undefined {
  for (const n of g.consumers.get(input) ?? []) {
    const node = g.nodes[n];
    if (node.opType !== "Gather" || node.input[1] !== input) continue;
    const table = g.initializers.get(node.input[0]);
    if (table?.dims?.length) return toNumber(table.dims[0]);
  }
  return undefined;
}

/** The last component of a path or URL (either separator). */
function fileName(path: string): string {
  return path.split(/[\\/]/).pop() ?? path;
}
