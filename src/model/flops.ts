/**
 * Parameter and FLOP counts per segment, from tensor shapes recorded by a probe run. Counts the matrix work
 * (MatMul, MatMulInteger, Gemm, Conv: 2 FLOPs per multiply-add); element-wise ops are left out, as is usual.
 */
import type { GraphIndex } from "../onnx/graph.ts";
import { toNumber } from "../onnx/proto.ts";

/** FLOPs of the given nodes for one sample, from dims recorded at batch `probeBatch`. */
export function countFlops(
  g: GraphIndex,
  nodes: number[],
  dims: ReadonlyMap<string, number[]>,
  probeBatch: number,
): number {
  let flops = 0;
  for (const n of nodes) {
    const node = g.nodes[n];
    const out = dims.get(node.output[0]);
    if (!out) continue;
    const outSize = out.reduce((a, b) => a * b, 1);
    if (node.opType === "MatMul" || node.opType === "Gemm" || node.opType === "MatMulInteger") {
      const a = shapeOf(g, node.input[0], dims);
      if (!a) continue;
      const transA = node.opType === "Gemm" && node.attribute.some((x) => x.name === "transA" && toNumber(x.i) === 1);
      const k = transA ? a[a.length - 2] : a[a.length - 1];
      flops += 2 * outSize * k;
    } else if (node.opType === "Conv") {
      const w = shapeOf(g, node.input[1], dims);
      if (!w) continue;
      const perOutput = w.slice(1).reduce((x, y) => x * y, 1); // C_in/groups × kernel
      flops += 2 * outSize * perOutput;
    }
  }
  return flops / probeBatch;
}

/** Number of parameters in the initializers the nodes read (a shared initializer counts in each reader). */
export function countParams(g: GraphIndex, nodes: number[]): number {
  const seen = new Set<string>();
  let params = 0;
  for (const n of nodes) {
    for (const t of g.nodeInputs[n]) {
      const init = g.initializers.get(t);
      if (!init || seen.has(t)) continue;
      seen.add(t);
      params += (init.dims ?? []).reduce((a: number, d) => a * toNumber(d), 1);
    }
  }
  return params;
}

function shapeOf(g: GraphIndex, name: string, dims: ReadonlyMap<string, number[]>): number[] | undefined {
  const known = dims.get(name);
  if (known) return known;
  const init = g.initializers.get(name);
  return init ? (init.dims ?? []).map((d) => toNumber(d)) : undefined;
}
