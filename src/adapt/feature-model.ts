/**
 * A classifier seen as a feature extractor plus class embeddings, by graph edit — no retraining: the graph is cut
 * so that the tensor the manifest names as `features` (the penultimate layer) is its output, and the class
 * embeddings are read from the initializer it names (the last linear layer's weights), oriented and scaled the way
 * the layer that reads them uses them, with that layer's bias. Works for any classifier whose manifest names the
 * two tensors. No file-system access here (browser builds reuse it); see node/tfup-classifier.ts for loading.
 */
import { Tensor } from "onnxruntime-common";
import { InputError, ModelError } from "../errors.ts";
import { extractSubModel } from "../onnx/extract.ts";
import { GraphIndex } from "../onnx/graph.ts";
import { graphOf, type ModelProto, type NodeProto, onnx, type TensorProto, toNumber } from "../onnx/proto.ts";
import type { Backend, Session, SessionOptions } from "../runtime/backend.ts";
import type { ClassEmbeddings } from "./tfup.ts";

/** The manifest's `featureHead`: which tensor holds the features and which initializer the class embeddings. */
export interface FeatureHeadSpec {
  /** Graph tensor holding the penultimate features [batch, D]. */
  features: string;
  /** Initializer holding the last layer's weights (class embeddings). */
  classEmbeddings: string;
}

/**
 * The feature extractor: the classifier's graph cut from its image input to the features tensor (the same nodes,
 * so the same kernels and bit-identical features to the full model's).
 */
export function featureExtractorGraph(model: ModelProto, spec: FeatureHeadSpec): { model: ModelProto; input: string } {
  const index = new GraphIndex(graphOf(model));
  const inputs = [...index.graphInputs];
  if (inputs.length !== 1)
    throw new ModelError(
      "MODEL_MALFORMED",
      `a feature extractor needs a classifier with one image input; this graph has ${inputs.length} (${inputs.join(", ")})`,
    );
  const { model: cut } = extractSubModel(model, { inputs, outputs: [spec.features], name: "ditto_features" }, index);
  return { model: cut, input: inputs[0] };
}

/** W [C, D] and bias [C] as the layer reading `spec.classEmbeddings` applies them: Gemm (alpha, beta, transB) or MatMul (+ Add). */
export function readClassEmbeddings(model: ModelProto, spec: FeatureHeadSpec): ClassEmbeddings {
  const index = new GraphIndex(graphOf(model));
  const name = spec.classEmbeddings;
  const init = index.initializers.get(name);
  if (!init) {
    const near = [...index.initializers.keys()].filter((n) => /weight|embed/i.test(n)).slice(0, 8);
    throw new ModelError(
      "MANIFEST_INVALID",
      `featureHead.classEmbeddings names '${name}', which is not an initializer of the classifier graph` +
        `${near.length ? ` (weight initializers: ${near.join(", ")})` : ""}. Name the last layer's weight tensor.`,
      { tensor: name },
    );
  }
  const dims = (init.dims ?? []).map((d) => toNumber(d));
  if (dims.length !== 2)
    throw new ModelError("MANIFEST_INVALID", `class embeddings '${name}' must be a matrix; its shape is [${dims}]`);
  const values = floatValues(init, name);
  const readers = (index.consumers.get(name) ?? []).map((i) => index.nodes[i]);
  const layer = readers.find((n) => n.opType === "Gemm" || n.opType === "MatMul");
  if (!layer || readers.length !== 1)
    throw new ModelError(
      "MANIFEST_INVALID",
      `class embeddings '${name}' must be read by exactly one Gemm or MatMul node (the last layer); it is read by ` +
        `[${readers.map((n) => n.opType).join(", ") || "nothing"}]`,
      { tensor: name },
    );
  if (layer.input[1] !== name)
    throw new ModelError(
      "MANIFEST_INVALID",
      `class embeddings '${name}' must be the weight (second) input of '${layer.name}'`,
    );
  const attr = (key: string, fallback: number) => {
    const a = layer.attribute.find((x) => x.name === key);
    return a ? (a.type === 1 ? (a.f ?? fallback) : toNumber(a.i)) : fallback;
  };
  // Gemm: Y = alpha·A·op(B) + beta·C, op(B) = Bᵀ when transB. MatMul: Y = A·B. Rows of W must be classes.
  const transposed = layer.opType === "Gemm" && attr("transB", 0) === 1;
  const [classes, dim] = transposed ? dims : [dims[1], dims[0]];
  const scale = layer.opType === "Gemm" ? attr("alpha", 1) : 1;
  const weights = new Float32Array(classes * dim);
  for (let c = 0; c < classes; c++)
    for (let d = 0; d < dim; d++)
      weights[c * dim + d] = scale * (transposed ? values[c * dim + d] : values[d * classes + c]);
  return { weights, classes, dim, bias: readBias(index, layer, classes) };
}

function readBias(index: GraphIndex, layer: NodeProto, classes: number): Float32Array | undefined {
  let name: string | undefined;
  let scale = 1;
  if (layer.opType === "Gemm") {
    name = layer.input[2] || undefined;
    const beta = layer.attribute.find((a) => a.name === "beta");
    scale = beta?.f ?? 1;
  } else {
    const out = layer.output[0];
    const add = (index.consumers.get(out) ?? []).map((i) => index.nodes[i]).find((n) => n.opType === "Add");
    name = add?.input.find((i) => i !== out && index.initializers.has(i));
  }
  if (!name) return undefined;
  const init = index.initializers.get(name);
  if (!init) return undefined; // a computed bias is not a class constant: leave it out
  const values = floatValues(init, name);
  if (values.length !== classes)
    throw new ModelError("MANIFEST_INVALID", `bias '${name}' has ${values.length} values, expected ${classes} classes`);
  return values.map((v) => v * scale);
}

/** Float32 values of an initializer (raw little-endian bytes or float_data). */
function floatValues(t: TensorProto, name: string): Float32Array {
  if (t.dataType !== 1)
    throw new ModelError("MANIFEST_INVALID", `initializer '${name}' is not float32 (ONNX data type ${t.dataType})`);
  if (t.rawData && t.rawData.length > 0) {
    const view = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
    return Float32Array.from({ length: t.rawData.byteLength / 4 }, (_, i) => view.getFloat32(4 * i, true));
  }
  return Float32Array.from(t.floatData);
}

export interface FeatureModelOptions {
  /** Input values are clamped to this range first (the classifier's training range). */
  range?: readonly [number, number];
  /** Images per session run (default 250). */
  batch?: number;
}

/** Runs the feature extractor over images and carries the class embeddings. */
export class FeatureModel {
  readonly embeddings: ClassEmbeddings;
  readonly spec: FeatureHeadSpec;
  private readonly session: Session;
  private readonly input: string;
  private readonly sampleDims: number[];
  private readonly options: FeatureModelOptions;

  private constructor(
    session: Session,
    input: string,
    sampleDims: number[],
    embeddings: ClassEmbeddings,
    spec: FeatureHeadSpec,
    options: FeatureModelOptions,
  ) {
    this.session = session;
    this.input = input;
    this.sampleDims = sampleDims;
    this.embeddings = embeddings;
    this.spec = spec;
    this.options = options;
  }

  static async create(
    model: ModelProto,
    spec: FeatureHeadSpec,
    backend: Backend,
    options: FeatureModelOptions = {},
    session: SessionOptions = {},
  ): Promise<FeatureModel> {
    const embeddings = readClassEmbeddings(model, spec);
    const cut = featureExtractorGraph(model, spec);
    const inputInfo = graphOf(cut.model).input[0];
    const shape = inputInfo.type?.tensorType?.shape?.dim ?? [];
    const sampleDims = shape.slice(1).map((d) => toNumber(d.dimValue));
    if (shape.length < 2 || sampleDims.some((d) => !(d > 0)))
      throw new ModelError(
        "MODEL_MALFORMED",
        `the classifier's input '${cut.input}' needs a fixed shape after the batch axis to extract features`,
      );
    const bytes = onnx.ModelProto.encode(cut.model).finish();
    return new FeatureModel(
      await backend.createSession(bytes, session),
      cut.input,
      sampleDims,
      embeddings,
      spec,
      options,
    );
  }

  /** Features [count, D] of images [count, …sample shape]. */
  async extract(images: Float32Array, count: number): Promise<Float32Array> {
    const per = this.sampleDims.reduce((a, b) => a * b, 1);
    if (images.length !== count * per)
      throw new InputError(
        "INPUT_INVALID",
        `feature extraction got ${images.length} values for ${count} images of shape [${this.sampleDims}] (${count * per} expected)`,
      );
    const [lo, hi] = this.options.range ?? [Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY];
    const batch = this.options.batch ?? 250;
    const out = new Float32Array(count * this.embeddings.dim);
    for (let start = 0; start < count; start += batch) {
      const n = Math.min(batch, count - start);
      const x = images.slice(start * per, (start + n) * per).map((v) => Math.min(hi, Math.max(lo, v)));
      const result = await this.session.run({ [this.input]: new Tensor("float32", x, [n, ...this.sampleDims]) });
      const f = result[this.spec.features];
      if (f.dims.length !== 2 || f.dims[1] !== this.embeddings.dim)
        throw new ModelError(
          "MANIFEST_INVALID",
          `features '${this.spec.features}' have shape [${f.dims}], but the class embeddings '${this.spec.classEmbeddings}' ` +
            `expect [batch, ${this.embeddings.dim}]. Name the tensor that the last layer reads.`,
        );
      out.set(f.data as Float32Array, start * this.embeddings.dim);
    }
    return out;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
