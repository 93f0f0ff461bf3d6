/**
 * What the kernel fusions (fuse-gelu.ts, fuse-attention.ts) share: a producer/consumer index of a graph, reading
 * small constants, and swapping matched nodes for a fused one.
 */
import { graphOf, type ModelProto, type NodeProto, onnx, subGraphs, type TensorProto, toNumber } from "./proto.ts";

/** ONNX Runtime's contrib operators (FastGelu, Attention), carried by every ONNX Runtime build. */
export const MS_DOMAIN = "com.microsoft";

export interface GraphLookup {
  nodes: NodeProto[];
  producer: Map<string, number>;
  consumers: Map<string, number[]>;
  outputs: Set<string>;
  initializers: Map<string, TensorProto>;
}

export function indexGraph(model: ModelProto): GraphLookup {
  const graph = graphOf(model);
  const nodes = graph.node as NodeProto[];
  const producer = new Map<string, number>();
  const consumers = new Map<string, number[]>();
  nodes.forEach((n, i) => {
    for (const o of n.output) producer.set(o, i);
    for (const t of n.input) {
      if (!t) continue;
      const list = consumers.get(t) ?? [];
      if (!list.includes(i)) list.push(i);
      consumers.set(t, list);
    }
  });
  const initializers = new Map((graph.initializer as TensorProto[]).map((t) => [t.name ?? "", t]));
  return { nodes, producer, consumers, outputs: new Set(graph.output.map((o) => o.name ?? "")), initializers };
}

/** The one node reading `tensor`, when exactly one does and it is not a graph output. */
export function soleReader(g: GraphLookup, tensor: string): number | undefined {
  const c = g.consumers.get(tensor) ?? [];
  return c.length === 1 && !g.outputs.has(tensor) ? c[0] : undefined;
}

/** The node producing `tensor`, when it is a default-domain `opType`. */
export function producerOf(g: GraphLookup, tensor: string, opType: string): number | undefined {
  const p = g.producer.get(tensor);
  return p !== undefined && g.nodes[p].opType === opType && (g.nodes[p].domain ?? "") === "" ? p : undefined;
}

/** Whether every reader of `x` is one of `nodes`. */
export function consumedOnlyBy(x: string, nodes: number[], g: GraphLookup): boolean {
  return (g.consumers.get(x) ?? []).every((c) => nodes.includes(c));
}

/** The tensor of an initializer or of a Constant node's `value`, if `name` is one. */
export function constantTensor(name: string, g: GraphLookup): TensorProto | undefined {
  const init = g.initializers.get(name);
  if (init) return init;
  const p = g.producer.get(name);
  if (p === undefined || g.nodes[p].opType !== "Constant") return undefined;
  return g.nodes[p].attribute.find((a) => a.name === "value")?.t as TensorProto | undefined;
}

/** Whether a tensor is a one-element float constant (initializer or Constant node) within 1e-6 of `value`. */
export function isScalar(name: string, value: number, g: GraphLookup): boolean {
  const p = g.producer.get(name);
  const floatAttr = p === undefined ? undefined : g.nodes[p].attribute.find((a) => a.name === "value_float");
  if (g.nodes[p ?? -1]?.opType === "Constant" && floatAttr)
    return Math.abs((floatAttr.f ?? Number.NaN) - value) <= 1e-6 * Math.abs(value);
  const tensor = constantTensor(name, g);
  const v = tensor ? tensorValues(tensor, 1) : undefined;
  return v?.length === 1 && Math.abs(v[0] - value) <= 1e-6 * Math.abs(value);
}

/**
 * The numbers a float32/float64/int64/int32 tensor holds, from its typed fields or its raw little-endian bytes (how
 * exporters usually store constants); undefined for other types or more than `limit` elements.
 */
export function tensorValues(t: TensorProto, limit = 16): number[] | undefined {
  const size = t.dims.reduce((a, d) => a * toNumber(d), 1);
  if (size > limit) return undefined;
  const raw = t.rawData;
  if (raw && raw.length > 0) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const read: Record<number, [number, (at: number) => number]> = {
      1: [4, (at) => view.getFloat32(at, true)],
      11: [8, (at) => view.getFloat64(at, true)],
      7: [8, (at) => Number(view.getBigInt64(at, true))],
      6: [4, (at) => view.getInt32(at, true)],
    };
    const reader = read[t.dataType ?? 0];
    if (!reader || raw.byteLength < size * reader[0]) return undefined;
    return Array.from({ length: size }, (_, i) => reader[1](i * reader[0]));
  }
  const typed = [t.floatData, t.doubleData, t.int64Data.map(toNumber), t.int32Data].find((v) => v.length > 0);
  return typed ? Array.from(typed as ArrayLike<number>).slice(0, size) : undefined;
}

/**
 * Drops the matched nodes, puts each fused node where its pattern's last node stood (every input of the pattern
 * is produced before it), then removes what only the dropped nodes read: nodes left without a reader (the shape
 * arithmetic an exporter writes around a pattern, Constant nodes) and the initializers they released.
 */
export function replaceNodes(model: ModelProto, drop: Set<number>, replace: Map<number, NodeProto>): void {
  const graph = graphOf(model);
  const nodes = graph.node as NodeProto[];
  const released = new Set([...drop].flatMap((i) => nodes[i].input));
  graph.node = nodes.flatMap((n, i) => replace.get(i) ?? (drop.has(i) ? [] : [n]));
  dropUnread(model, released);
  if (!model.opsetImport.some((o) => o.domain === MS_DOMAIN)) {
    model.opsetImport.push(onnx.OperatorSetIdProto.create({ domain: MS_DOMAIN, version: 1 }));
  }
}

function dropUnread(model: ModelProto, released: Set<string>): void {
  const graph = graphOf(model);
  // Backwards from the outputs: a node is kept when a kept node, a subgraph or the graph output reads one of its
  // outputs. ONNX operators have no side effects, so nothing else can need it.
  const read = new Set(graph.output.map((o) => o.name ?? ""));
  const readsOf = (n: NodeProto): string[] => [
    ...n.input,
    ...subGraphs(n).flatMap((g) => (g.node as NodeProto[]).flatMap(readsOf)),
  ];
  const kept: NodeProto[] = [];
  for (const n of [...(graph.node as NodeProto[])].reverse()) {
    if (!n.output.some((o) => read.has(o))) continue;
    kept.push(n);
    for (const t of readsOf(n)) read.add(t);
  }
  graph.node = kept.reverse();
  const unused = (name: string) => released.has(name) && !read.has(name);
  const dropped = new Set((graph.initializer as TensorProto[]).map((t) => t.name ?? "").filter(unused));
  graph.initializer = (graph.initializer as TensorProto[]).filter((t) => !dropped.has(t.name ?? ""));
  graph.input = graph.input.filter((i) => !dropped.has(i.name ?? "")); // old IRs list initializers as inputs
}
