/**
 * Graph rewrites Ditto makes on extracted sub-models. `appendStackedValues` adds one output holding several
 * same-shaped branch outputs side by side: [B, D, U, T'] from U tensors [B, T…, D]. In that layout the gated sum
 * Σ_u g_u ⊙ V_u over all branches is a single batched MatMul, G [B, D, 1, U] × S [B, D, U, T'] (see
 * cache/accumulate.ts), which reads the cache once instead of once per operation. Building it costs one
 * concatenation and one transpose per full step.
 */
import { graphOf, type ModelProto, onnx } from "./proto.ts";

export const STACK_OUTPUT = "ditto_stacked_values";

export function appendStackedValues(model: ModelProto, values: string[], rank: number): void {
  const graph = graphOf(model);
  graph.initializer.push(onnx.TensorProto.create({ name: "ditto_stack_axis", dims: [1], dataType: 7, int64Data: [1] }));
  if (rank !== 3) {
    graph.initializer.push(
      onnx.TensorProto.create({ name: "ditto_stack_flat", dims: [3], dataType: 7, int64Data: [0, -1, 0] }),
    );
  }
  // Each value [B, T…, D] → [B, 1, T', D]; concatenated in whole-value blocks → [B, U, T', D]; then one
  // single-axis transpose → [B, D, U, T'] (cheaper than transposing each value and interleaving them).
  const rows = values.map((v, i) => {
    let flat = v;
    if (rank !== 3) {
      flat = `ditto_stack_f${i}`;
      graph.node.push(onnx.NodeProto.create({ opType: "Reshape", input: [v, "ditto_stack_flat"], output: [flat] }));
    }
    const u = `ditto_stack_u${i}`;
    graph.node.push(onnx.NodeProto.create({ opType: "Unsqueeze", input: [flat, "ditto_stack_axis"], output: [u] }));
    return u;
  });
  graph.node.push(
    onnx.NodeProto.create({
      opType: "Concat",
      input: rows,
      output: ["ditto_stack_rows"],
      attribute: [{ name: "axis", type: 2, i: 1 }],
    }),
    onnx.NodeProto.create({
      opType: "Transpose",
      input: ["ditto_stack_rows"],
      output: [STACK_OUTPUT],
      attribute: [{ name: "perm", type: 7, ints: [0, 3, 1, 2] }],
    }),
  );
  graph.output.push(onnx.ValueInfoProto.create({ name: STACK_OUTPUT, type: { tensorType: { elemType: 1 } } }));
}

/**
 * Splices a small graph into a cut model: `piece` reads `from` as its input "h" and produces `to` as its output
 * "out"; its other names are renamed by `rename` (its inputs become inputs of the model, its internal tensors must
 * not collide). `to` stops being a model input and `from` a model output; `from` becomes an input when nothing in
 * the model produces it. Used to end a step in one session: (patch embed →) accumulate → head.
 */
export function spliceBetween(
  model: ModelProto,
  piece: ModelProto,
  from: string,
  to: string,
  rename: (name: string) => string,
): void {
  const graph = graphOf(model);
  const part = graphOf(piece);
  const name = (n: string) => (n === "h" ? from : n === "out" ? to : rename(n));
  for (const node of part.node ?? []) {
    graph.node.push(
      onnx.NodeProto.create({
        ...node,
        input: (node.input ?? []).map(name),
        output: (node.output ?? []).map(name),
        name: "",
      }),
    );
  }
  for (const init of part.initializer ?? [])
    graph.initializer.push(onnx.TensorProto.create({ ...init, name: name(init.name ?? "") }));
  const produced = new Set(graph.node.flatMap((n) => n.output ?? []));
  const present = new Set(graph.input.map((i) => i.name));
  graph.input = graph.input.filter((i) => i.name !== to);
  for (const input of part.input ?? []) {
    const n = name(input.name ?? "");
    if (!produced.has(n) && !present.has(n)) graph.input.push(onnx.ValueInfoProto.create({ ...input, name: n }));
  }
  graph.output = graph.output.filter((o) => o.name !== from);
}

export const PROJECTED_OUTPUT = "ditto_projected_values";
/** The gates of the later steps of a gate projection: [K, U, B, 1…, D], step-major (appendGateProjections). */
export const PROJECTION_GATES = "ditto_projection_gates";

/**
 * Adds one output [K, B, T…, D] holding, for each of K later steps, the gated sum P_k = Σ_u g_{k,u} ⊙ V_u of the
 * branch values computed now, from the input PROJECTION_GATES holding g_{k,u} (K is free). A later step that reuses or
 * forecasts from these values needs Σ_u g_u ⊙ Σ_j c_j·V_{j,u} = Σ_j c_j·P_{j,k} (the sums commute), so it reads K/U
 * of what the stacked values would hand out. Form "direct": one broadcast Mul per value and one Sum (each value read
 * once, K rows written per value: for small K); "stacked": the stacked layout and one batched MatMul,
 * G [B, D, K, U] × S [B, D, U, T'] (an extra pass to stack the values, then K/U of it written).
 */
export function appendGateProjections(
  model: ModelProto,
  values: string[],
  rank: number,
  form: "direct" | "stacked",
): void {
  const graph = graphOf(model);
  const node = (opType: string, input: string[], output: string, attribute: object[] = []) => {
    graph.node.push(onnx.NodeProto.create({ opType, input, output: [output], attribute }));
    return output;
  };
  const ints = (name: string, data: number[]) => {
    graph.initializer.push(onnx.TensorProto.create({ name, dims: [data.length], dataType: 7, int64Data: data }));
    return name;
  };
  graph.input.push(onnx.ValueInfoProto.create({ name: PROJECTION_GATES, type: { tensorType: { elemType: 1 } } }));
  if (form === "direct") {
    const terms = values.map((v, i) => {
      const index = `ditto_projection_index${i}`;
      graph.initializer.push(onnx.TensorProto.create({ name: index, dims: [], dataType: 7, int64Data: [i] }));
      const gate = node("Gather", [PROJECTION_GATES, index], `ditto_projection_gate${i}`, [
        { name: "axis", type: 2, i: 1 },
      ]); // [K, B, 1…, D]
      return node("Mul", [gate, v], `ditto_projection_term${i}`); // [K, B, T…, D]
    });
    node("Sum", terms, PROJECTED_OUTPUT);
  } else {
    appendStackedValues(model, values, rank);
    graph.output.pop(); // the stacked values stay inside the graph
    const flat = node(
      "Reshape",
      [PROJECTION_GATES, ints("ditto_projection_kubd", [0, 0, 0, -1])],
      "ditto_projection_g",
    );
    const gates = node("Transpose", [flat], "ditto_projection_G", [{ name: "perm", type: 7, ints: [2, 3, 0, 1] }]);
    const sums = node("MatMul", [gates, STACK_OUTPUT], "ditto_projection_sums"); // [B, D, K, T']
    // To [K, B, T', D] in two moves, each a fast path of ONNX Runtime's Transpose: D last per sample, then whole
    // [T'·D] rows K-major. The Reshape between keeps the optimizer from merging them into one general permutation
    // (a slow path): the projected session went from 1.22 to 1.10 × the plain one at K = 12 (bench/gate-projections.ts).
    const perSample = node("Transpose", [sums], "ditto_projection_bktd", [
      { name: "perm", type: 7, ints: [0, 2, 3, 1] },
    ]);
    const flatRows = node("Reshape", [perSample, ints("ditto_projection_bk_flat", [0, 0, -1])], "ditto_projection_bkn");
    const rows = node("Transpose", [flatRows], "ditto_projection_rows", [{ name: "perm", type: 7, ints: [1, 0, 2] }]);
    const shape = node(
      "Concat",
      [ints("ditto_projection_k", [-1]), node("Shape", [values[0]], "ditto_projection_value_shape")],
      "ditto_projection_shape",
      [{ name: "axis", type: 2, i: 0 }],
    );
    node("Reshape", [rows, shape], PROJECTED_OUTPUT); // [K, B, T'·D] → [K, B, T…, D]
  }
  graph.output.push(onnx.ValueInfoProto.create({ name: PROJECTED_OUTPUT, type: { tensorType: { elemType: 1 } } }));
}
