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
