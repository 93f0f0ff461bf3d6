/**
 * Fuses multi-head self-attention as torch.onnx exports the timm/DiT `Attention` module into ONNX Runtime's
 * com.microsoft `Attention` operator:
 *
 *   qkv = x·W (+ b) → Reshape [B, T, 3, H, d] → Transpose (2, 0, 3, 1, 4) → Gather 0 / 1 / 2 = q, k, v
 *   softmax(q·kᵀ · s) · v → Transpose (0, 2, 1, 3) → Reshape [B, T, H·d]
 *
 * becomes Attention(x, W, b; num_heads = H, scale = s). ONNX Runtime's CPU optimizer leaves the exported form
 * apart: per block it copies the whole qkv tensor twice (the Transpose, then the three Gathers), transposes k and
 * the output again, and scales the scores in a pass of their own — at network batch 40 on the shipped model that
 * was 40 % of the attention branch's time beside its products (bench/gemm-floor.ts sets that floor). The fused
 * kernel reads q, k and v in place. Both W's column order (q | k | v, heads within each) and the default
 * scale 1/√d match the export, so the weights are used as they are.
 *
 * The exporter computes the head size and the scale from the input's shape at run time (Shape → Gather → Div →
 * Cast → Pow); a small evaluator reads them given the input's static token count and width, and a pattern whose
 * numbers it cannot read is left alone. Matched only when every intermediate tensor is read inside the pattern, so
 * a session that taps the attention probabilities (ProfilingDiT's profiler) keeps the exported form.
 */
import {
  constantTensor,
  type GraphLookup,
  indexGraph,
  MS_DOMAIN,
  producerOf,
  replaceNodes,
  soleReader,
  tensorValues,
} from "./fusion.ts";
import { graphOf, type ModelProto, type NodeProto, onnx, type TensorProto, toNumber } from "./proto.ts";

/** A dimension the evaluator knows (a number) or only names (the batch of the attention input, "batch"). */
type Dim = number | "batch";

/**
 * Rewrites every exported self-attention of the model's main graph in place; returns how many were fused.
 * `dimsOf` gives a tensor's static dims where known (the batch entry may be anything): the attention input's
 * token count and width are needed to read the exporter's shape arithmetic.
 */
export function fuseAttention(model: ModelProto, dimsOf: (tensor: string) => number[] | undefined): number {
  const g = indexGraph(model);
  const drop = new Set<number>();
  const replace = new Map<number, NodeProto>();
  g.nodes.forEach((softmax, i) => {
    if (softmax.opType !== "Softmax" || (softmax.domain ?? "") !== "") return;
    const match = matchAttention(i, g, dimsOf);
    if (!match || match.nodes.some((n) => drop.has(n))) return;
    for (const n of match.nodes) drop.add(n);
    const attribute = [
      onnx.AttributeProto.create({ name: "num_heads", type: 2, i: match.heads }),
      onnx.AttributeProto.create({ name: "scale", type: 1, f: match.scale }),
    ];
    replace.set(
      match.last,
      onnx.NodeProto.create({
        name: `${g.nodes[match.last].name || match.output}_attention`,
        opType: "Attention",
        domain: MS_DOMAIN,
        input: [match.x, match.weight, match.bias],
        output: [match.output],
        attribute,
      }),
    );
  });
  if (replace.size === 0) return 0;
  const zeroBiases = [...replace.values()].filter((n) => n.input[2] === "");
  for (const node of zeroBiases) {
    // Attention's bias is optional only in newer schemas: a pattern without one gets explicit zeros.
    const width = g.initializers.get(node.input[1])?.dims.map(toNumber)[1] ?? 0;
    node.input[2] = `${node.name}_zero_bias`;
    (graphOf(model).initializer as TensorProto[]).push(
      onnx.TensorProto.create({ name: node.input[2], dims: [width], dataType: 1, floatData: new Array(width).fill(0) }),
    );
  }
  replaceNodes(model, drop, replace);
  return replace.size;
}

interface AttentionMatch {
  x: string;
  weight: string;
  /** The qkv bias initializer, or "" when the projection has none. */
  bias: string;
  heads: number;
  scale: number;
  output: string;
  nodes: number[];
  last: number;
}

/** Walks out from a Softmax: back to the scores and the q/k/v split, forward to the merged heads. */
function matchAttention(
  softmaxIndex: number,
  g: GraphLookup,
  dimsOf: (tensor: string) => number[] | undefined,
): AttentionMatch | undefined {
  const only = (tensor: string) => soleReader(g, tensor);
  const producer = (tensor: string, opType: string) => producerOf(g, tensor, opType);
  const softmax = g.nodes[softmaxIndex];
  const axis = intAttr(softmax, "axis", -1);
  if (axis !== -1 && axis !== 3) return undefined;

  // Scores: MatMul(q, kᵀ), then · s or ÷ s (or unscaled).
  const nodes = [softmaxIndex];
  let scores = softmax.input[0];
  let scale = 1;
  let scoreScale: { node: number; factor: string; divide: boolean } | undefined;
  const scaling = producer(scores, "Mul") ?? producer(scores, "Div");
  if (scaling !== undefined) {
    if (only(scores) !== softmaxIndex) return undefined;
    const [a, b] = g.nodes[scaling].input;
    const divide = g.nodes[scaling].opType === "Div";
    // s·(q·kᵀ) in either order, or (q·kᵀ) ÷ s.
    const product = producer(a, "MatMul") !== undefined || divide ? a : b;
    scoreScale = { node: scaling, factor: product === a ? b : a, divide };
    nodes.push(scaling);
    scores = product;
  }
  const qk = producer(scores, "MatMul");
  if (qk === undefined || only(scores) !== (scoreScale?.node ?? softmaxIndex)) return undefined;
  nodes.push(qk);
  const [q, kT] = g.nodes[qk].input;
  const kTranspose = producer(kT, "Transpose");
  if (kTranspose === undefined || only(kT) !== qk || !samePerm(g.nodes[kTranspose], [0, 1, 3, 2])) return undefined;
  nodes.push(kTranspose);
  const k = g.nodes[kTranspose].input[0];

  // Forward: probabilities · v, heads merged back.
  const pv = only(softmax.output[0]);
  if (pv === undefined || g.nodes[pv].opType !== "MatMul" || g.nodes[pv].input[0] !== softmax.output[0])
    return undefined;
  const v = g.nodes[pv].input[1];
  const merge = only(g.nodes[pv].output[0]);
  if (merge === undefined || g.nodes[merge].opType !== "Transpose" || !samePerm(g.nodes[merge], [0, 2, 1, 3]))
    return undefined;
  const flatten = only(g.nodes[merge].output[0]);
  if (flatten === undefined || g.nodes[flatten].opType !== "Reshape") return undefined;
  nodes.push(pv, merge, flatten);

  // q, k, v: Gather 0 / 1 / 2 of one Transpose (2, 0, 3, 1, 4) of Reshape(x·W (+ b), [B, T, 3, H, d]).
  const picks = [q, k, v].map((t) => producer(t, "Gather"));
  if (picks.some((p) => p === undefined)) return undefined;
  const gathers = picks as number[];
  const split = g.nodes[gathers[0]].input[0];
  const heads = producer(split, "Transpose");
  const consumersOf = (t: string) => g.consumers.get(t) ?? [];
  if (
    heads === undefined ||
    !samePerm(g.nodes[heads], [2, 0, 3, 1, 4]) ||
    g.outputs.has(split) ||
    consumersOf(split).length !== 3 ||
    gathers.some((p, i) => {
      const node = g.nodes[p];
      const index = constantValues(node.input[1], g);
      return (
        node.input[0] !== split ||
        intAttr(node, "axis", 0) !== 0 ||
        index?.length !== 1 ||
        index[0] !== i ||
        only(node.output[0]) !== [qk, kTranspose, pv][i]
      );
    })
  )
    return undefined;
  const unflatten = producer(g.nodes[heads].input[0], "Reshape");
  if (unflatten === undefined || only(g.nodes[heads].input[0]) !== heads) return undefined;
  nodes.push(...gathers, heads, unflatten);
  let qkv = g.nodes[unflatten].input[0];
  if (only(qkv) !== unflatten) return undefined;
  let bias = "";
  const addBias = producer(qkv, "Add");
  if (addBias !== undefined) {
    const [a, b] = g.nodes[addBias].input;
    bias = g.initializers.has(a) ? a : b;
    qkv = bias === a ? b : a;
    if (!isFloatTensor(g.initializers.get(bias), 1) || only(qkv) !== addBias) return undefined;
    nodes.push(addBias);
  }
  const project = producer(qkv, "MatMul");
  if (project === undefined) return undefined;
  nodes.push(project);
  const [x, weight] = g.nodes[project].input;
  const w = g.initializers.get(weight);
  if (!isFloatTensor(w, 2)) return undefined;
  const [width, width3] = (w as TensorProto).dims.map(toNumber);
  if (width3 !== 3 * width || (bias && toNumber(g.initializers.get(bias)?.dims[0]) !== width3)) return undefined;

  // The numbers the exporter computes at run time: [B, T, 3, H, d], the scale, and [B, T, H·d] after the merge.
  const xDims = dimsOf(x);
  if (xDims?.length !== 3 || xDims[2] !== width) return undefined;
  const tokens = xDims[1];
  const shapes = new Map<string, Dim[]>([[x, ["batch", tokens, width]]]);
  const target = evaluate(g.nodes[unflatten].input[1], g, shapes);
  const sameBatch = (d: Dim | undefined) => d === 0 || d === "batch";
  const sameTokens = (d: Dim | undefined) => d === 0 || d === -1 || d === tokens;
  if (target?.length !== 5 || !sameBatch(target[0]) || !sameTokens(target[1]) || target[2] !== 3) return undefined;
  const [h, d] = [target[3], target[4]];
  if (typeof h !== "number" || typeof d !== "number" || h * d !== width) return undefined;
  const merged = evaluate(g.nodes[flatten].input[1], g, shapes);
  if (merged?.length !== 3 || !sameBatch(merged[0]) || !sameTokens(merged[1]) || merged[2] !== width) return undefined;
  if (scoreScale) {
    const factor = evaluate(scoreScale.factor, g, shapes);
    if (factor?.length !== 1 || typeof factor[0] !== "number" || !Number.isFinite(factor[0])) return undefined;
    scale = scoreScale.divide ? 1 / factor[0] : factor[0];
  }
  return {
    x,
    weight,
    bias,
    heads: h,
    scale,
    output: g.nodes[flatten].output[0],
    nodes,
    last: Math.max(...nodes),
  };
}

function isFloatTensor(t: TensorProto | undefined, rank: number): boolean {
  return t !== undefined && t.dataType === 1 && t.dims.length === rank;
}

function intAttr(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? toNumber(a.i) : fallback;
}

function samePerm(node: NodeProto, perm: number[]): boolean {
  const p = (node.attribute.find((a) => a.name === "perm")?.ints ?? []).map(toNumber);
  return p.length === perm.length && p.every((v, i) => v === perm[i]);
}

/** The values of a constant tensor (initializer or Constant node), when it holds a few numbers. */
function constantValues(name: string, g: GraphLookup): number[] | undefined {
  const tensor = constantTensor(name, g);
  return tensor && tensorValues(tensor);
}

const INT_TYPES = new Set([2, 3, 4, 5, 6, 7, 12, 13]);

/**
 * Evaluates the small shape arithmetic exporters write (Shape, Gather, Unsqueeze, Squeeze, Concat, Cast, Div, Mul,
 * Add, Sub, Pow, Sqrt, Reciprocal over constants) given some tensors' shapes; undefined when anything is unknown.
 * Values are 1-D (a scalar is one entry); "batch" survives Gather, Unsqueeze, Squeeze and Concat only.
 */
function evaluate(name: string, g: GraphLookup, shapes: Map<string, Dim[]>, depth = 0): Dim[] | undefined {
  const constant = constantValues(name, g);
  if (constant) return constant;
  const p = g.producer.get(name);
  if (p === undefined || depth > 24) return undefined;
  const node = g.nodes[p];
  const arg = (i: number) => evaluate(node.input[i], g, shapes, depth + 1);
  const numbers = (v: Dim[] | undefined) => (v?.every((d) => typeof d === "number") ? (v as number[]) : undefined);
  const elementwise = (f: (a: number, b: number) => number, integer: boolean) => {
    const [a, b] = [numbers(arg(0)), numbers(arg(1))];
    if (!a || !b || (a.length !== b.length && a.length !== 1 && b.length !== 1)) return undefined;
    const n = Math.max(a.length, b.length);
    return Array.from({ length: n }, (_, i) => {
      const r = f(a[a.length === 1 ? 0 : i], b[b.length === 1 ? 0 : i]);
      return integer ? Math.trunc(r) : r;
    });
  };
  // Integer division truncates in ONNX; a value is integral here when it came from Shape or an integer constant.
  const integral = (i: number) => isIntegral(node.input[i], g);
  switch (node.opType) {
    case "Shape":
      return shapes.get(node.input[0]);
    case "Identity":
    case "Unsqueeze":
    case "Squeeze":
      return arg(0);
    case "Gather": {
      const [data, index] = [arg(0), numbers(arg(1))];
      if (!data || !index || intAttr(node, "axis", 0) !== 0) return undefined;
      return index.map((i) => data[i < 0 ? i + data.length : i]);
    }
    case "Concat": {
      const parts = node.input.map((_, i) => arg(i));
      return parts.every((v) => v !== undefined) ? (parts as Dim[][]).flat() : undefined;
    }
    case "Cast": {
      const v = numbers(arg(0));
      return v && INT_TYPES.has(intAttr(node, "to", 1)) ? v.map(Math.trunc) : v;
    }
    case "Div":
      return elementwise((a, b) => a / b, integral(0) && integral(1));
    case "Mul":
      return elementwise((a, b) => a * b, false);
    case "Add":
      return elementwise((a, b) => a + b, false);
    case "Sub":
      return elementwise((a, b) => a - b, false);
    case "Pow":
      return elementwise((a, b) => a ** b, false);
    case "Sqrt":
      return numbers(arg(0))?.map(Math.sqrt);
    case "Reciprocal":
      return numbers(arg(0))?.map((a) => 1 / a);
    default:
      return undefined;
  }
}

/** Whether a tensor of the shape arithmetic holds integers (from Shape, an integer Cast or an integer constant). */
function isIntegral(name: string, g: GraphLookup, depth = 0): boolean {
  const init = g.initializers.get(name);
  if (init) return INT_TYPES.has(init.dataType);
  const p = g.producer.get(name);
  if (p === undefined || depth > 24) return false;
  const node = g.nodes[p];
  switch (node.opType) {
    case "Shape":
      return true;
    case "Constant": {
      const t = node.attribute.find((a) => a.name === "value")?.t;
      return t ? INT_TYPES.has(t.dataType ?? 1) : false;
    }
    case "Cast":
      return INT_TYPES.has(intAttr(node, "to", 1));
    case "Gather":
    case "Unsqueeze":
    case "Squeeze":
    case "Concat":
    case "Identity":
    case "Div":
    case "Mul":
    case "Add":
    case "Sub":
      return isIntegral(node.input[0], g, depth + 1);
    default:
      return false;
  }
}
