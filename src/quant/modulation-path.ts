/**
 * The check behind "the modulation path is never quantized" (shared/specs/tfmq.md, How to test it, 2): walk back
 * from every tensor the token path reads from the timestep/condition side — each block's shift, scale and gate,
 * and the head's modulation — and list any quantization node on the way.
 */
import type { ModelStructure } from "../model/discover.ts";
import type { GraphIndex } from "../onnx/graph.ts";

const QUANTIZATION_OPS = new Set([
  "MatMulInteger",
  "QuantizeLinear",
  "DequantizeLinear",
  "DynamicQuantizeLinear",
  "DynamicQuantizeMatMul",
  "MatMulIntegerToFloat",
  "QLinearMatMul",
  "ConvInteger",
]);

/** Context tensors (timestep/condition only) that token-path nodes read: gates, shifts, scales. */
export function modulationTensors(g: GraphIndex, s: ModelStructure): string[] {
  const isContext = (t: string) => {
    const p = g.producer.get(t);
    return p !== undefined && s.nodeClass[p] === "context";
  };
  const out = new Set<string>();
  g.nodes.forEach((_, i) => {
    if (s.nodeClass[i] !== "token") return;
    for (const t of g.nodeInputs[i]) if (isContext(t)) out.add(t);
  });
  for (const a of s.atoms) if (a.gate) out.add(a.gate);
  return [...out];
}

/** Names of quantization nodes on any path from the graph inputs to a modulation tensor (empty: none). */
export function quantizationOnModulationPath(g: GraphIndex, s: ModelStructure): string[] {
  const found: string[] = [];
  const seen = new Set<number>();
  const stack = modulationTensors(g, s);
  while (stack.length > 0) {
    const p = g.producer.get(stack.pop() as string);
    if (p === undefined || seen.has(p)) continue;
    seen.add(p);
    const node = g.nodes[p];
    if (QUANTIZATION_OPS.has(node.opType)) found.push(node.name || `${node.opType}#${p}`);
    stack.push(...g.nodeInputs[p]);
  }
  return found;
}
