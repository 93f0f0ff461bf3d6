/**
 * Fuses the tanh-approximation GELU, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), into ONNX Runtime's
 * com.microsoft FastGelu. Exporters (torch.onnx at opset 17) write it as nine element-wise nodes; ONNX Runtime's
 * CPU optimizer leaves them apart, so every MLP spends ~10 passes over its widest activation on them (12 % of an
 * uncached step's kernel time on the shipped model). A bias Add in front (the first MLP linear's bias) joins the
 * fused node as FastGelu's bias input. The opset-20 `Gelu(approximate="tanh")` would need the whole cut re-stamped
 * at opset 20, which changes other operators' signatures (ReduceMean's axes, Split's outputs), so Ditto uses the
 * contrib operator, which every ONNX Runtime build (native, WASM, WebGPU) carries.
 */
import {
  consumedOnlyBy,
  type GraphLookup,
  indexGraph,
  isScalar,
  MS_DOMAIN,
  producerOf,
  replaceNodes,
  soleReader,
} from "./fusion.ts";
import { graphOf, type ModelProto, type NodeProto, onnx } from "./proto.ts";

export { MS_DOMAIN };

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const CUBIC = 0.044715;

/** Rewrites every tanh-GELU of the model's main graph in place; returns how many were fused. */
export function fuseTanhGelu(model: ModelProto): number {
  const graph = graphOf(model);
  const nodes = graph.node as NodeProto[];
  const index = indexGraph(model);
  const drop = new Set<number>();
  const replace = new Map<number, NodeProto>();
  nodes.forEach((tanh, i) => {
    if (tanh.opType !== "Tanh" || (tanh.domain ?? "") !== "") return;
    const match = matchAround(i, index);
    if (!match || match.nodes.some((n) => drop.has(n))) return;
    for (const n of match.nodes) drop.add(n);
    const input = match.bias ? [match.bias.input, match.bias.bias] : [match.x];
    if (match.bias) drop.add(match.bias.node);
    replace.set(
      match.last,
      onnx.NodeProto.create({
        name: `${nodes[match.last].name || match.output}_fastgelu`,
        opType: "FastGelu",
        domain: MS_DOMAIN,
        input,
        output: [match.output],
      }),
    );
  });
  if (replace.size === 0) return 0;
  replaceNodes(model, drop, replace);
  return replace.size;
}

interface GeluMatch {
  x: string;
  output: string;
  /** The pattern's nodes, last one included. */
  nodes: number[];
  last: number;
  bias?: { node: number; input: string; bias: string };
}

/**
 * Walks out from a Tanh node: back through √(2/π)·(x + 0.044715·x·x·x) and forward through 0.5·(x·(1 + tanh)),
 * accepting either operand order of every Mul and Add. Every intermediate tensor must feed only the next node.
 */
function matchAround(tanhIndex: number, g: GraphLookup): GeluMatch | undefined {
  const only = (tensor: string) => soleReader(g, tensor);
  const node = (tensor: string, opType: string) => producerOf(g, tensor, opType);
  /** For a binary node with one constant operand ≈ value, the other operand. */
  const otherThanConstant = (i: number, value: number) => {
    const [a, b] = g.nodes[i].input;
    if (isScalar(a, value, g)) return b;
    if (isScalar(b, value, g)) return a;
    return undefined;
  };
  const tanh = g.nodes[tanhIndex];
  const scaled = tanh.input[0];
  if (only(scaled) !== tanhIndex) return undefined;
  const scale = node(scaled, "Mul");
  if (scale === undefined) return undefined;
  const inner = otherThanConstant(scale, SQRT_2_OVER_PI);
  if (!inner || only(inner) !== scale) return undefined;
  const sum = node(inner, "Add");
  if (sum === undefined) return undefined;
  // x + 0.044715·x³: one operand is x, the other the cubic term built from x.
  for (const [x, cubicTerm] of [g.nodes[sum].input, [...g.nodes[sum].input].reverse()]) {
    if (only(cubicTerm) !== sum) continue;
    const cubicMul = node(cubicTerm, "Mul");
    if (cubicMul === undefined) continue;
    const cube = otherThanConstant(cubicMul, CUBIC);
    if (!cube || only(cube) !== cubicMul) continue;
    const cubeNodes = matchCube(cube, x, g, only, node);
    if (!cubeNodes) continue;
    // Forward: 1 + tanh, x·(…), 0.5·(…) — or 0.5·x first, then ·(…).
    const onePlus = only(tanh.output[0]);
    if (onePlus === undefined || g.nodes[onePlus].opType !== "Add" || otherThanConstant(onePlus, 1) !== tanh.output[0])
      continue;
    const tail = matchTail(g.nodes[onePlus].output[0], x, g, only, otherThanConstant);
    if (!tail) continue;
    const nodes = [...cubeNodes, cubicMul, sum, scale, tanhIndex, onePlus, ...tail.nodes];
    return { x, output: tail.output, nodes, last: Math.max(...nodes), bias: biasOf(x, nodes, g) };
  }
  return undefined;
}

/** x·x·x as Mul(x, Mul(x, x)) in any operand order, or Pow(x, 3). Returns its nodes. */
function matchCube(
  cube: string,
  x: string,
  g: GraphLookup,
  only: (t: string) => number | undefined,
  node: (t: string, op: string) => number | undefined,
): number[] | undefined {
  const pow = node(cube, "Pow");
  if (pow !== undefined)
    return g.nodes[pow].input[0] === x && isScalar(g.nodes[pow].input[1], 3, g) ? [pow] : undefined;
  const outer = node(cube, "Mul");
  if (outer === undefined) return undefined;
  const [a, b] = g.nodes[outer].input;
  const square = a === x ? b : b === x ? a : undefined;
  if (!square || only(square) !== outer) return undefined;
  const inner = node(square, "Mul");
  if (inner === undefined) return undefined;
  const [c, d] = g.nodes[inner].input;
  return c === x && d === x ? [inner, outer] : undefined;
}

/** 0.5·(x·s) or (0.5·x)·s or x·(0.5·s)… written as two Muls after s = 1 + tanh(…). */
function matchTail(
  s: string,
  x: string,
  g: GraphLookup,
  only: (t: string) => number | undefined,
  otherThanConstant: (i: number, value: number) => string | undefined,
): { nodes: number[]; output: string } | undefined {
  const first = only(s);
  if (first === undefined || g.nodes[first].opType !== "Mul") return undefined;
  const [a, b] = g.nodes[first].input;
  const other = a === s ? b : a;
  if (other === x) {
    // x·s, then 0.5·(x·s)
    const xs = g.nodes[first].output[0];
    const half = only(xs);
    if (half === undefined || g.nodes[half].opType !== "Mul" || otherThanConstant(half, 0.5) !== xs) return undefined;
    return { nodes: [first, half], output: g.nodes[half].output[0] };
  }
  // (0.5·x)·s
  const halfX = g.producer.get(other);
  if (halfX === undefined || g.nodes[halfX].opType !== "Mul" || otherThanConstant(halfX, 0.5) !== x) return undefined;
  if (only(other) !== first) return undefined;
  return { nodes: [halfX, first], output: g.nodes[first].output[0] };
}

/** x = Add(y, b) with b a 1-D initializer and x read only by the GELU: FastGelu(y, b) does both. */
function biasOf(x: string, nodes: number[], g: GraphLookup): GeluMatch["bias"] {
  const add = g.producer.get(x);
  if (add === undefined || g.nodes[add].opType !== "Add" || (g.nodes[add].domain ?? "") !== "") return undefined;
  if (g.outputs.has(x) || !consumedOnlyBy(x, nodes, g)) return undefined;
  const [a, b] = g.nodes[add].input;
  for (const [input, bias] of [
    [a, b],
    [b, a],
  ]) {
    const init = g.initializers.get(bias);
    if (init && init.dims.length === 1 && init.dataType === 1 && !g.initializers.has(input)) {
      return { node: add, input, bias };
    }
  }
  return undefined;
}
