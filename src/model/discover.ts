/**
 * Structure discovery: finds, in a whole-model ONNX DiT, the residual stream, the repeated blocks, the branches
 * (attention / MLP) inside each block with their pre-gate outputs and gates, and which nodes belong to the embed,
 * each branch, and the head. Works from data flow, so it needs no model-specific code:
 *
 * 1. Every node is classed by what it depends on: `token` (the noisy sample), `context` (only timestep/condition:
 *    the modulation path, including values exporters hoist into block 0), or `constant`.
 * 2. Residual adds are `Add(s, X)` with X computed from s. The longest chain of them, each feeding the next, is the
 *    residual stream s_0 … s_K; each add is one branch ("atom").
 * 3. Atoms are grouped into blocks by node-name scopes (`/blocks.N/`, `/layers.N/`, …) or, when names are
 *    stripped, by the period of their repeating op pattern.
 * 4. A token node belongs to the atom of the latest stream tensor it depends on; before s_0 it is embed, after s_K
 *    head. Context nodes are all computed with the embed, so any skipped branch still has its current gate.
 */
import { GraphError } from "../errors.ts";
import type { GraphIndex } from "../onnx/graph.ts";
import type { StructureOverride } from "./manifest.ts";

export type NodeClass = "constant" | "context" | "token";
export type AtomKind = "attn" | "xattn" | "mlp" | "block";

/** One residual branch: stream_out = stream_in + gate ⊙ value (or stream_in + value when ungated). */
export interface Atom {
  index: number;
  block: number;
  kind: AtomKind;
  streamIn: string;
  streamOut: string;
  /** The pre-gate branch output where a gate exists, else the branch output (the residual delta). */
  value: string;
  gate?: string;
  /** The branch's first matmul input (e.g. block 0's modulated input, TeaCache's signal). */
  modulatedInput?: string;
  /** Softmax outputs inside the branch (attention probabilities, for ProfilingDiT's profiler). */
  softmax: string[];
  nodes: number[];
}

export interface Block {
  index: number;
  scope?: string;
  streamIn: string;
  streamOut: string;
  atoms: number[];
}

export interface ModelStructure {
  sample: string;
  nodeClass: NodeClass[];
  atoms: Atom[];
  blocks: Block[];
  embedNodes: number[];
  headNodes: number[];
  /** How blocks were delimited. */
  groupedBy: "scopes" | "repetition" | "override";
}

const SCOPE =
  /(?:^|\/)((?:[\w.]*\/)*?(?:blocks|layers|transformer_blocks|single_transformer_blocks|dits|h|layer|block))\.(\d+)\//;

export function discoverStructure(g: GraphIndex, sample: string, override?: StructureOverride): ModelStructure {
  if (!g.graphInputs.has(sample)) {
    throw new GraphError(
      "STRUCTURE_NOT_FOUND",
      `the manifest's sample input '${sample}' is not a graph input (inputs: ${[...g.graphInputs].join(", ")})`,
    );
  }
  const nodeClass = classifyNodes(g, sample);
  const chain = override ? chainFromOverride(g, nodeClass, override) : findResidualChain(g, nodeClass);
  const streams = [
    chain.length > 0 ? streamInputOf(g, chain[0], nodeClass) : "",
    ...chain.map((i) => g.nodes[i].output[0]),
  ];
  let groups: number[][];
  let groupedBy: ModelStructure["groupedBy"];
  if (override) {
    groups = groupByBoundaries(streams, override.blockBoundaries);
    groupedBy = "override";
  } else {
    const byScope = groupByScope(g, chain);
    groups = byScope ?? [];
    groupedBy = byScope ? "scopes" : "repetition";
  }
  const depOf = streamDependence(g, nodeClass, streams);
  const atomNodes: number[][] = chain.map(() => []);
  const embedNodes: number[] = [];
  const headNodes: number[] = [];
  for (let i = 0; i < g.nodes.length; i++) {
    if (nodeClass[i] === "constant") continue;
    const dep = nodeClass[i] === "context" ? -1 : depOf[i];
    if (dep < 0) embedNodes.push(i);
    else if (dep >= chain.length) headNodes.push(i);
    else atomNodes[dep].push(i);
  }
  if (!override && groups.length === 0) groups = groupByRepetition(g, atomNodes);

  const atoms = chain.map((addIndex, i) => describeAtom(g, nodeClass, addIndex, i, streams, atomNodes[i]));
  const blocks: Block[] = groups.map((atomIdx, b) => {
    for (const a of atomIdx) atoms[a].block = b;
    if (override) for (const a of atomIdx) if (atomIdx.length === 1) atoms[a].kind = "block";
    return {
      index: b,
      scope: scopeOf(g.nodes[chain[atomIdx[0]]].name ?? "")?.key,
      streamIn: streams[atomIdx[0]],
      streamOut: streams[atomIdx[atomIdx.length - 1] + 1],
      atoms: atomIdx,
    };
  });
  return { sample, nodeClass, atoms, blocks, embedNodes, headNodes, groupedBy };
}

function classifyNodes(g: GraphIndex, sample: string): NodeClass[] {
  const rank: Record<NodeClass, number> = { constant: 0, context: 1, token: 2 };
  const tensorClass = new Map<string, NodeClass>();
  for (const name of g.graphInputs) tensorClass.set(name, name === sample ? "token" : "context");
  return g.nodes.map((node, i) => {
    let cls: NodeClass = "constant";
    for (const input of g.nodeInputs[i]) {
      const c = tensorClass.get(input) ?? "constant";
      if (rank[c] > rank[cls]) cls = c;
    }
    for (const out of node.output) tensorClass.set(out, cls);
    return cls;
  });
}

/** True when tensor `target` is an ancestor of tensor `from` (searching only nodes at or after `minNode`). */
function dependsOn(g: GraphIndex, from: string, target: string, minNode: number): boolean {
  const stack = [from];
  const seen = new Set<string>();
  while (stack.length > 0) {
    const name = stack.pop() as string;
    if (name === target) return true;
    if (seen.has(name)) continue;
    seen.add(name);
    const p = g.producer.get(name);
    if (p === undefined || p < minNode) continue;
    for (const input of g.nodeInputs[p]) stack.push(input);
  }
  return false;
}

function residualStreamInput(g: GraphIndex, nodeClass: NodeClass[], i: number): string | undefined {
  const node = g.nodes[i];
  if (node.opType !== "Add" || nodeClass[i] !== "token" || node.input.length !== 2) return undefined;
  const [a, b] = node.input;
  const isToken = (t: string) => {
    const p = g.producer.get(t);
    return p !== undefined ? nodeClass[p] === "token" : false;
  };
  if (!isToken(a) || !isToken(b)) return undefined;
  const pa = g.producer.get(a) ?? 0;
  const pb = g.producer.get(b) ?? 0;
  if (dependsOn(g, b, a, pa)) return a;
  if (dependsOn(g, a, b, pb)) return b;
  return undefined;
}

function streamInputOf(g: GraphIndex, addIndex: number, nodeClass: NodeClass[]): string {
  return residualStreamInput(g, nodeClass, addIndex) ?? g.nodes[addIndex].input[0];
}

/** The longest chain of residual adds, each reading the previous one's output as its stream input. */
function findResidualChain(g: GraphIndex, nodeClass: NodeClass[]): number[] {
  const best = new Map<number, { length: number; prev: number }>();
  let end = -1;
  g.nodes.forEach((_, i) => {
    const streamIn = residualStreamInput(g, nodeClass, i);
    if (streamIn === undefined) return;
    const p = g.producer.get(streamIn);
    const prev = p !== undefined ? best.get(p) : undefined;
    best.set(i, { length: (prev?.length ?? 0) + 1, prev: prev ? (p as number) : -1 });
    if (end < 0 || (best.get(i)?.length ?? 0) > (best.get(end)?.length ?? 0)) end = i;
  });
  const chain: number[] = [];
  for (let i = end; i >= 0; i = best.get(i)?.prev ?? -1) chain.unshift(i);
  if (chain.length < 2) {
    throw new GraphError(
      "STRUCTURE_NOT_FOUND",
      `no transformer blocks found: the graph has ${chain.length} residual add(s) on a chain (a DiT has one per branch, ` +
        `two or more per block) among ${g.nodes.length} nodes. If this is a DiT whose residual stream Ditto cannot read, ` +
        'name the tensors between blocks in manifest.json: "structure": { "blockBoundaries": ["h_0", "h_1", …, "h_L"] } ' +
        "(list tensor names with `ditto inspect MODEL.onnx --tensors`).",
      { residualAdds: chain.length },
    );
  }
  return chain;
}

/** With an override, the stream is the named boundaries; each block is one atom unless residual adds are found inside. */
function chainFromOverride(g: GraphIndex, nodeClass: NodeClass[], override: StructureOverride): number[] {
  for (const name of override.blockBoundaries) {
    if (!g.producer.has(name)) {
      throw new GraphError(
        "STRUCTURE_NOT_FOUND",
        `structure.blockBoundaries names '${name}', which no node in the graph produces`,
        { tensor: name },
      );
    }
  }
  let residual: number[] = [];
  try {
    residual = findResidualChain(g, nodeClass);
  } catch {
    residual = [];
  }
  const outputs = residual.map((i) => g.nodes[i].output[0]);
  const first = residual.length ? streamInputOf(g, residual[0], nodeClass) : "";
  const onChain = override.blockBoundaries.every((b) => b === first || outputs.includes(b));
  if (onChain && residual.length > 0) {
    const start = override.blockBoundaries[0] === first ? 0 : outputs.indexOf(override.blockBoundaries[0]) + 1;
    const stop = outputs.indexOf(override.blockBoundaries[override.blockBoundaries.length - 1]);
    return residual.slice(start, stop + 1);
  }
  // Boundaries off the residual chain: each block becomes one opaque atom whose "add" is the boundary's producer.
  return override.blockBoundaries.slice(1).map((name) => g.producer.get(name) as number);
}

function groupByBoundaries(streams: string[], boundaries: string[]): number[][] {
  const positions = boundaries.map((b) => streams.indexOf(b));
  if (positions.some((p) => p < 0)) {
    throw new GraphError(
      "STRUCTURE_NOT_FOUND",
      `structure.blockBoundaries are not all on one residual stream (${boundaries.join(", ")})`,
    );
  }
  const groups: number[][] = [];
  for (let b = 0; b + 1 < positions.length; b++) {
    const atoms: number[] = [];
    for (let a = positions[b]; a < positions[b + 1]; a++) atoms.push(a);
    groups.push(atoms);
  }
  return groups;
}

function scopeOf(name: string): { key: string; index: number } | undefined {
  const m = SCOPE.exec(name);
  return m ? { key: `${m[1]}.${m[2]}`, index: Number(m[2]) } : undefined;
}

/** Groups consecutive residual adds by their block scope; undefined when the names carry no usable scope. */
function groupByScope(g: GraphIndex, chain: number[]): number[][] | undefined {
  const keys = chain.map((i) => scopeOf(g.nodes[i].name ?? "")?.key);
  if (keys.some((k) => k === undefined)) return undefined;
  const groups: number[][] = [];
  keys.forEach((key, i) => {
    if (i > 0 && key === keys[i - 1]) groups[groups.length - 1].push(i);
    else groups.push([i]);
  });
  if (new Set(keys).size !== groups.length) return undefined; // a scope reappears later: names are unreliable
  const size = groups[0].length;
  return groups.every((grp) => grp.length === size) ? groups : undefined;
}

/** Without names: the smallest period p (dividing the atom count) at which the atoms' op patterns repeat. */
function groupByRepetition(g: GraphIndex, atomNodes: number[][]): number[][] {
  const signature = atomNodes.map((nodes) =>
    nodes
      .map((n) => g.nodes[n].opType)
      .sort()
      .join(","),
  );
  const k = signature.length;
  for (let p = 1; p <= Math.min(4, k); p++) {
    if (k % p !== 0 || k / p < 2) continue;
    let pairs = 0;
    let matches = 0;
    for (let i = 0; i + p < k; i++) {
      pairs++;
      if (signature[i] === signature[i + p]) matches++;
    }
    if (pairs > 0 && matches / pairs >= 0.8) {
      return Array.from({ length: k / p }, (_, b) => Array.from({ length: p }, (_, j) => b * p + j));
    }
  }
  throw new GraphError(
    "STRUCTURE_NOT_FOUND",
    `found a residual stream of ${k} branches but no repeating block pattern and no block scopes in node names. ` +
      'Name the tensors between blocks in manifest.json: "structure": { "blockBoundaries": [...] }.',
    { branches: k },
  );
}

/** For each node, the index of the latest stream tensor it depends on (-1: none; K: the last, i.e. head). */
function streamDependence(g: GraphIndex, nodeClass: NodeClass[], streams: string[]): number[] {
  const streamIndex = new Map(streams.map((s, i) => [s, i]));
  const tensorDep = new Map<string, number>();
  return g.nodes.map((node, i) => {
    let dep = -1;
    if (nodeClass[i] === "token") {
      for (const input of g.nodeInputs[i]) dep = Math.max(dep, streamIndex.get(input) ?? tensorDep.get(input) ?? -1);
    }
    for (const out of node.output) tensorDep.set(out, dep);
    return dep;
  });
}

function describeAtom(
  g: GraphIndex,
  nodeClass: NodeClass[],
  addIndex: number,
  index: number,
  streams: string[],
  nodes: number[],
): Atom {
  const add = g.nodes[addIndex];
  const streamIn = streams[index];
  const other =
    add.opType === "Add" && add.input.includes(streamIn) ? add.input.find((t) => t !== streamIn) : undefined;
  let value = other ?? add.output[0];
  let gate: string | undefined;
  const mulIndex = other !== undefined ? g.producer.get(other) : undefined;
  if (mulIndex !== undefined && g.nodes[mulIndex].opType === "Mul") {
    const [a, b] = g.nodes[mulIndex].input;
    const cls = (t: string) => {
      const p = g.producer.get(t);
      return p === undefined ? (g.graphInputs.has(t) ? "context" : "constant") : nodeClass[p];
    };
    if (cls(a) === "context" && cls(b) === "token") [gate, value] = [a, b];
    else if (cls(b) === "context" && cls(a) === "token") [gate, value] = [b, a];
  }
  const matmul = nodes.find((n) => ["MatMul", "Gemm", "MatMulInteger"].includes(g.nodes[n].opType));
  return {
    index,
    block: -1,
    kind: atomKind(g, nodes),
    streamIn,
    streamOut: streams[index + 1],
    value,
    gate,
    modulatedInput: matmul !== undefined ? floatInput(g, matmul) : undefined,
    softmax: nodes.filter((n) => g.nodes[n].opType === "Softmax").map((n) => g.nodes[n].output[0]),
    nodes,
  };
}

/**
 * Names of nodes that `ditto quantize` adds (src/quant): the activation quantization in front of an integer matmul,
 * all named `<original linear>/DittoQuant/…`.
 */
export const QUANT_SCOPE = "/DittoQuant/";

/** A matmul's float input: for a quantized linear, the tensor before its activation quantization. */
function floatInput(g: GraphIndex, matmul: number): string {
  let name = g.nodes[matmul].input[0];
  for (let p = g.producer.get(name); p !== undefined && g.nodes[p].name?.includes(QUANT_SCOPE); ) {
    name = g.nodes[p].input[0];
    p = g.producer.get(name);
  }
  return name;
}

function atomKind(g: GraphIndex, nodes: number[]): AtomKind {
  const names = nodes.map((n) => (g.nodes[n].name ?? "").toLowerCase());
  const count = (re: RegExp) => names.filter((n) => re.test(n)).length;
  const cross = count(/cross|attn2|xattn/);
  const attn = count(/attn|attention/);
  const mlp = count(/mlp|ffn|feed_forward|\/ff\//);
  if (cross > 0 && cross >= mlp) return "xattn";
  if (attn > mlp) return "attn";
  if (mlp > attn) return "mlp";
  return nodes.some((n) => g.nodes[n].opType === "Softmax") ? "attn" : "mlp";
}
