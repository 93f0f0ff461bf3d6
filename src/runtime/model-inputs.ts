/** Building the graph's input tensors from the manifest's roles: sample, timestep, condition. */
import { Tensor } from "onnxruntime-common";
import { InputError } from "../errors.ts";
import type { ModelManifest } from "../model/manifest.ts";

export interface ModelCall {
  /** [B, C, H, W] in the model's sample space. */
  sample: Tensor;
  /** Model time per batch item, before the manifest's timestep scale. */
  time: Float64Array;
  /** Class index per batch item (the null class for unconditional items). */
  condition?: Int32Array;
}

export function timestepTensor(manifest: ModelManifest, time: Float64Array): Tensor {
  const spec = manifest.inputs.timestep;
  const scale = spec.scale ?? 1;
  const values = Array.from(time, (t) => t * scale);
  return typedTensor(spec.dtype ?? "float32", values, [time.length], "inputs.timestep");
}

export function conditionTensor(manifest: ModelManifest, classes: Int32Array): Tensor {
  const spec = manifest.inputs.condition;
  if (!spec) throw new InputError("INPUT_INVALID", "this model has no condition input, so classes cannot be given");
  return typedTensor(spec.dtype ?? "int64", Array.from(classes), [classes.length], "inputs.condition");
}

/** The condition fed when a call gives none: the manifest's null class (0 if it names none). */
export function defaultCondition(manifest: ModelManifest): number {
  return manifest.inputs.condition?.nullClass ?? 0;
}

export function feedsFor(manifest: ModelManifest, call: ModelCall): Record<string, Tensor> {
  const { sample, timestep, condition } = manifest.inputs;
  const feeds: Record<string, Tensor> = {
    [sample.name]: call.sample,
    [timestep.name]: timestepTensor(manifest, call.time),
  };
  if (condition) {
    const classes = call.condition ?? new Int32Array(call.time.length).fill(defaultCondition(manifest));
    feeds[condition.name] = conditionTensor(manifest, classes);
  }
  return feeds;
}

export function checkSampleShape(manifest: ModelManifest, dims: readonly number[]): void {
  const { channels, height, width } = manifest.image;
  const ok = dims.length === 4 && dims[1] === channels && dims[2] === height && dims[3] === width;
  if (!ok) {
    throw new InputError(
      "INPUT_INVALID",
      `wrong sample shape [${dims.join(", ")}]: this model (${manifest.name}) takes [batch, ${channels}, ${height}, ${width}] ` +
        "as its manifest's image field says.",
      { got: [...dims], expected: ["batch", channels, height, width] },
    );
  }
}

function typedTensor(dtype: string, values: number[], dims: number[], field: string): Tensor {
  switch (dtype) {
    case "float32":
      return new Tensor("float32", Float32Array.from(values), dims);
    case "float64":
      return new Tensor("float64", Float64Array.from(values), dims);
    case "int64":
      return new Tensor(
        "int64",
        BigInt64Array.from(values, (v) => BigInt(Math.round(v))),
        dims,
      );
    case "int32":
      return new Tensor(
        "int32",
        Int32Array.from(values, (v) => Math.round(v)),
        dims,
      );
    default:
      throw new InputError(
        "INPUT_INVALID",
        `${field}.dtype '${dtype}' is not supported; use float32, float64, int64 or int32`,
      );
  }
}
