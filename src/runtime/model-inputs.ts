/** Building the graph's input tensors from the manifest's roles: sample, timestep, condition. */
import { Tensor } from "onnxruntime-common";
import { InputError } from "../errors.ts";
import {
  classCondition,
  type ModelManifest,
  type ObservationConditionSpec,
  observationSpec,
  sampleShape,
} from "../model/manifest.ts";

export interface ModelCall {
  /** [B, C, H, W] in the model's sample space. */
  sample: Tensor;
  /** Model time per batch item, before the manifest's timestep scale. */
  time: Float64Array;
  /** Class index per batch item (the null class for unconditional items). */
  condition?: Int32Array;
  /** Observation-conditioned policies: [B, dim] row-major float32. */
  observation?: Float32Array;
}

export function timestepTensor(manifest: ModelManifest, time: Float64Array): Tensor {
  const spec = manifest.inputs.timestep;
  const scale = spec.scale ?? 1;
  const values = Array.from(time, (t) => t * scale);
  return typedTensor(spec.dtype ?? "float32", values, [time.length], "inputs.timestep");
}

export function conditionTensor(manifest: ModelManifest, classes: Int32Array): Tensor {
  const spec = classCondition(manifest);
  if (!spec) throw new InputError("INPUT_INVALID", "this model has no class input, so classes cannot be given");
  return typedTensor(spec.dtype ?? "int64", Array.from(classes), [classes.length], "inputs.condition");
}

/** The condition fed when a call gives none: the manifest's null class (0 if it names none). */
export function defaultCondition(manifest: ModelManifest): number {
  return classCondition(manifest)?.nullClass ?? 0;
}

export function feedsFor(manifest: ModelManifest, call: ModelCall): Record<string, Tensor> {
  const { sample, timestep, condition } = manifest.inputs;
  const feeds: Record<string, Tensor> = {
    [sample.name]: call.sample,
    [timestep.name]: timestepTensor(manifest, call.time),
  };
  const observation = observationSpec(manifest);
  if (observation) {
    feeds[observation.name] = observationTensor(observation, call.observation, call.time.length);
  } else if (condition) {
    const classes = call.condition ?? new Int32Array(call.time.length).fill(defaultCondition(manifest));
    feeds[condition.name] = conditionTensor(manifest, classes);
  }
  return feeds;
}

/** Observations [B, dim] as the graph's float32 input; a missing or mis-sized observation is a clear error. */
export function observationTensor(
  spec: ObservationConditionSpec,
  values: Float32Array | undefined,
  batch: number,
): Tensor {
  if (!values || values.length !== batch * spec.dim) {
    throw new InputError(
      "INPUT_INVALID",
      `this policy is conditioned on an observation of ${spec.dim} values per sample: a batch of ${batch} needs ${batch * spec.dim} values (got ${values?.length ?? "none"})`,
    );
  }
  return new Tensor("float32", values, [batch, spec.dim]);
}

export function checkSampleShape(manifest: ModelManifest, dims: readonly number[]): void {
  const shape = sampleShape(manifest);
  const ok = dims.length === shape.length + 1 && shape.every((d, i) => dims[i + 1] === d);
  if (!ok) {
    const field = manifest.inputs.sample.kind === "action-sequence" ? "action" : "image";
    throw new InputError(
      "INPUT_INVALID",
      `wrong sample shape [${dims.join(", ")}]: this model (${manifest.name}) takes [batch, ${shape.join(", ")}] ` +
        `as its manifest's ${field} field says.`,
      { got: [...dims], expected: ["batch", ...shape] },
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
