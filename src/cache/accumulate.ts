/**
 * The "forecast-and-accumulate" step as one small ONNX graph: for a run of units that are not computed,
 * h_out = h_in + Σ_u g_u ⊙ Σ_i c_{u,i}·T_{u,i}. Doing this in ONNX Runtime (vectorised, threaded) instead of a
 * host loop is what keeps a reuse/forecast step a few percent of a full step (TaylorSeer spec, "Mapping onto the
 * Ditto engine"). Graphs are built per shape signature and cached.
 */
import type { Tensor } from "onnxruntime-common";
import { Tensor as OrtTensor } from "onnxruntime-common";
import { type ModelProto, onnx } from "../onnx/proto.ts";
import type { Backend, Session, SessionOptions } from "../runtime/backend.ts";
import type { Approximation } from "./policy.ts";

export interface AccumulateTerm {
  approximation: Approximation;
  gate?: Tensor;
}

export class Accumulator {
  private static readonly shared = new WeakMap<Backend, WeakMap<SessionOptions, Accumulator>>();

  /** One accumulator (and its compiled graphs) per backend and session options, shared by every engine. */
  static for(backend: Backend, options: SessionOptions): Accumulator {
    let byOptions = Accumulator.shared.get(backend);
    if (!byOptions) {
      byOptions = new WeakMap();
      Accumulator.shared.set(backend, byOptions);
    }
    let acc = byOptions.get(options);
    if (!acc) {
      acc = new Accumulator(backend, options);
      byOptions.set(options, acc);
    }
    return acc;
  }

  private readonly backend: Backend;
  private readonly options: SessionOptions;
  private readonly sessions = new Map<string, Promise<Session>>();

  constructor(backend: Backend, options: SessionOptions) {
    this.backend = backend;
    this.options = options;
  }

  run(h: Tensor, units: AccumulateTerm[]): Promise<Tensor> {
    return this.runPiece(h, accumulatePiece(units));
  }

  /** The stacked form (see stackedPiece). */
  runStacked(h: Tensor, gates: Tensor[], approximation: Approximation): Promise<Tensor> {
    return this.runPiece(h, stackedPiece(gates, approximation));
  }

  private async runPiece(h: Tensor, piece: AccumulatePiece): Promise<Tensor> {
    let session = this.sessions.get(piece.signature);
    if (!session) {
      session = this.backend.createSession(onnx.ModelProto.encode(piece.model()).finish(), this.options);
      this.sessions.set(piece.signature, session);
    }
    return (await (await session).run({ h, ...piece.feeds() })).out;
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).release();
    this.sessions.clear();
  }
}

/**
 * One accumulate as a graph from input "h" to output "out": its signature (the graph's shape; equal signatures share
 * a session), the graph, and its other inputs by name (`rename` renames them, e.g. for a copy spliced into a
 * larger graph: see DiT.tail).
 */
export interface AccumulatePiece {
  signature: string;
  model(): ModelProto;
  feeds(rename?: (name: string) => string): Record<string, Tensor>;
}

/** Σ over units of (gate ⊙) Σ_i c_i·T_i, added to h. */
export function accumulatePiece(units: AccumulateTerm[]): AccumulatePiece {
  return {
    // Per unit: gated or not, and which terms are scaled.
    signature: units
      .map((u) => `${u.gate ? "g" : ""}${u.approximation.terms.map((t) => (t.coef === 1 ? "1" : "c")).join("")}`)
      .join("|"),
    model: () => accumulateModel(units),
    feeds: (name = (n) => n) => {
      const feeds: Record<string, Tensor> = {};
      units.forEach((u, i) => {
        if (u.gate) feeds[name(`g${i}`)] = u.gate;
        u.approximation.terms.forEach((t, j) => {
          feeds[name(`t${i}_${j}`)] = t.tensor;
          if (t.coef !== 1) feeds[name(`c${i}_${j}`)] = scalar(t.coef);
        });
      });
      return feeds;
    },
  };
}

/** A whole run of gated branches cached as one [B, D, U, T'] tensor per term: h + Σ_j c_j · MatMul(G, S_j). */
export function stackedPiece(gates: Tensor[], approximation: Approximation): AccumulatePiece {
  const terms = approximation.terms;
  return {
    signature: `stacked:${gates.length}:${terms.map((t) => (t.coef === 1 ? "1" : "c")).join("")}`,
    model: () =>
      stackedModel(
        gates.length,
        terms.map((t) => t.coef !== 1),
      ),
    feeds: (name = (n) => n) => {
      const feeds: Record<string, Tensor> = {};
      gates.forEach((g, i) => {
        feeds[name(`g${i}`)] = g;
      });
      terms.forEach((t, j) => {
        feeds[name(`s${j}`)] = t.tensor;
        if (t.coef !== 1) feeds[name(`c${j}`)] = scalar(t.coef);
      });
      return feeds;
    },
  };
}

function scalar(value: number): Tensor {
  return new OrtTensor("float32", Float32Array.of(value), []);
}

/**
 * Builds the graph for one signature (input h, output out). Coefficients are folded into the gates first (w = c·g is tiny, [B,1,D]), so
 * every cached tensor is read by exactly one Mul and one shared variadic Sum: two passes over the cache instead of
 * one per operation. A term with coefficient 1 and no gate enters the Sum directly, so plain reuse stays exact.
 */
function accumulateModel(units: AccumulateTerm[]): ModelProto {
  const nodes: ReturnType<typeof onnx.NodeProto.create>[] = [];
  const inputs = [floatInput("h")];
  let counter = 0;
  const op = (opType: string, a: string, b: string) => {
    const out = `v${counter++}`;
    nodes.push(onnx.NodeProto.create({ opType, input: [a, b], output: [out] }));
    return out;
  };
  const addends = ["h"];
  units.forEach((u, i) => {
    if (u.gate) inputs.push(floatInput(`g${i}`));
    u.approximation.terms.forEach((t, j) => {
      const name = `t${i}_${j}`;
      inputs.push(floatInput(name));
      let weight = u.gate ? `g${i}` : "";
      if (t.coef !== 1) {
        inputs.push(floatInput(`c${i}_${j}`, []));
        weight = weight ? op("Mul", weight, `c${i}_${j}`) : `c${i}_${j}`;
      }
      addends.push(weight ? op("Mul", weight, name) : name);
    });
  });
  nodes.push(
    onnx.NodeProto.create({ opType: addends.length > 1 ? "Sum" : "Identity", input: addends, output: ["out"] }),
  );
  return graphModel("accumulate", nodes, inputs);
}

function stackedModel(units: number, scaled: boolean[]): ModelProto {
  const nodes: ReturnType<typeof onnx.NodeProto.create>[] = [];
  const inputs = [floatInput("h")];
  const node = (opType: string, input: string[], output: string, attribute: object[] = []) => {
    nodes.push(onnx.NodeProto.create({ opType, input, output: [output], attribute }));
    return output;
  };
  const ints = (name: string, values: number[]) =>
    onnx.TensorProto.create({ name, dims: [values.length], dataType: 7, int64Data: values });
  const columns: string[] = [];
  for (let i = 0; i < units; i++) {
    inputs.push(floatInput(`g${i}`));
    columns.push(node("Reshape", [`g${i}`, "bd11"], `gc${i}`)); // [B, 1…, D] → [B, D, 1, 1]
  }
  const gates = node("Concat", columns, "G", [{ name: "axis", type: 2, i: 3 }]); // [B, D, 1, U]
  const sums = scaled.map((isScaled, j) => {
    inputs.push(floatInput(`s${j}`));
    let weights = gates;
    if (isScaled) {
      inputs.push(floatInput(`c${j}`, []));
      weights = node("Mul", [gates, `c${j}`], `G${j}`);
    }
    return node("MatMul", [weights, `s${j}`], `m${j}`); // [B, D, 1, U] × [B, D, U, T'] → [B, D, 1, T']
  });
  const total = sums.length > 1 ? node("Sum", sums, "msum") : sums[0];
  const flat = node("Reshape", [total, "bd_"], "flat"); // [B, D, T']
  const tokens = node("Transpose", [flat], "tokens", [{ name: "perm", type: 7, ints: [0, 2, 1] }]); // [B, T', D]
  const delta = node("Reshape", [tokens, node("Shape", ["h"], "hshape")], "delta");
  node("Add", ["h", delta], "out");
  return graphModel("stacked_accumulate", nodes, inputs, [ints("bd11", [0, -1, 1, 1]), ints("bd_", [0, 0, -1])]);
}

function graphModel(
  name: string,
  nodes: ReturnType<typeof onnx.NodeProto.create>[],
  inputs: ReturnType<typeof floatInput>[],
  initializer: ReturnType<typeof onnx.TensorProto.create>[] = [],
): ModelProto {
  return onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    producerName: "ditto-accumulate",
    graph: {
      name,
      node: nodes,
      initializer,
      input: inputs,
      output: [{ name: "out", type: { tensorType: { elemType: 1 } } }],
    },
  });
}

function floatInput(name: string, dims?: number[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: 1, shape: dims ? { dim: dims.map((d) => ({ dimValue: d })) } : undefined } },
  });
}

/** Σ_i c_i·T_i on the host (the slow path, used to find which unit holds a non-finite value). */
export function materialize(a: Approximation): Tensor {
  const first = a.terms[0];
  if (a.terms.length === 1 && first.coef === 1) return first.tensor;
  const out = new Float32Array((first.tensor.data as Float32Array).length);
  for (const { tensor, coef } of a.terms) {
    const d = tensor.data as Float32Array;
    for (let k = 0; k < out.length; k++) out[k] += coef * d[k];
  }
  return new OrtTensor("float32", out, first.tensor.dims);
}
