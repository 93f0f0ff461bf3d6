/**
 * Graph rewrites Ditto makes on extracted sub-models. `appendStackedValues` adds one output holding several
 * same-shaped branch outputs side by side: [B, D, U, T'] from U tensors [B, T…, D]. In that layout the gated sum
 * Σ_u g_u ⊙ V_u over all branches is a single batched MatMul, G [B, D, 1, U] × S [B, D, U, T'] (see
 * cache/accumulate.ts), which reads the cache once instead of once per operation. Building it costs one
 * last-two-axes transpose per branch and a concatenation in T'-long blocks.
 */
import { graphOf, type ModelProto, onnx } from "./proto.ts";

export const STACK_OUTPUT = "ditto_stacked_values";

export function appendStackedValues(model: ModelProto, values: string[], rank: number): void {
  const graph = graphOf(model);
  graph.initializer.push(onnx.TensorProto.create({ name: "ditto_stack_axis", dims: [1], dataType: 7, int64Data: [2] }));
  if (rank !== 3) {
    graph.initializer.push(
      onnx.TensorProto.create({ name: "ditto_stack_flat", dims: [3], dataType: 7, int64Data: [0, -1, 0] }),
    );
  }
  const columns = values.map((v, i) => {
    let flat = v;
    if (rank !== 3) {
      flat = `ditto_stack_f${i}`; // [B, T…, D] → [B, T', D]
      graph.node.push(onnx.NodeProto.create({ opType: "Reshape", input: [v, "ditto_stack_flat"], output: [flat] }));
    }
    const t = `ditto_stack_t${i}`;
    const u = `ditto_stack_u${i}`;
    graph.node.push(
      onnx.NodeProto.create({
        opType: "Transpose",
        input: [flat],
        output: [t],
        attribute: [{ name: "perm", type: 7, ints: [0, 2, 1] }],
      }),
      onnx.NodeProto.create({ opType: "Unsqueeze", input: [t, "ditto_stack_axis"], output: [u] }), // [B, D, 1, T']
    );
    return u;
  });
  graph.node.push(
    onnx.NodeProto.create({
      opType: "Concat",
      input: columns,
      output: [STACK_OUTPUT],
      attribute: [{ name: "axis", type: 2, i: 2 }],
    }),
  );
  graph.output.push(onnx.ValueInfoProto.create({ name: STACK_OUTPUT, type: { tensorType: { elemType: 1 } } }));
}
