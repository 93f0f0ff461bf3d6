/**
 * Switched branches: each cacheable branch of a cut model wrapped in an ONNX `If`, so that one session serves any
 * mix of computed and reused branches. A per-unit schedule table (BAC, HarmoniCa, L2C) changes which branches run
 * from step to step; run as separate sessions it pays a session boundary (and the stream's round trip through
 * JavaScript) at every switch between computed and reused units, and one session per pattern would hold the
 * weights once per pattern. Here boolean inputs per branch pick, inside ONNX Runtime:
 *
 *   `flag`: run the branch's nodes → its result, or else take the cached value passed in (a `delta` branch:
 *           base + cached delta);
 *   `keep`: hand the computed value out ("fresh"; a `delta` branch: result − base), or else an empty tensor — a
 *           value no later step reads costs no copy. This If is nested in the computing arm, so a reused branch
 *           runs one If, not two.
 *
 * Nodes downstream (the residual add, later blocks, the head) are untouched and read the `If`'s result, so the
 * current step's gate still scales a reused pre-gate value. A value branch read only by one Mul (its gate) takes
 * that Mul into both arms: the reuse arm is then `gate ⊙ cached`, written straight into the If's output, where an
 * Identity arm would copy the cached value first. Each reused branch costs work that the FLOP count calls free; at
 * network batch 12 on the shipped model these two changes cut a step that reuses every branch by about a quarter.
 */
import { GraphError } from "../errors.ts";
import { makeValueInfo } from "./extract.ts";
import {
  type AttributeProto,
  type GraphProto,
  graphOf,
  type ModelProto,
  type NodeProto,
  onnx,
  subGraphs,
} from "./proto.ts";

export interface SwitchedBranch {
  /** The tensor the switch yields: a branch's pre-gate value, or the stream after a `delta` range. */
  result: string;
  /** Names the branch's nodes produce in the source graph: the trace back from `result` stays within them. */
  members: ReadonlySet<string>;
  /** For a `delta` range: the stream entering it (reuse adds the cached delta to it; fresh = result − base). */
  base?: string;
  /** Rank of `result` (the empty hand-out of a reused branch has the same rank). */
  rank: number;
  /** Names of the boolean inputs (compute; hand out), the cached-value input and the hand-out output. */
  flag: string;
  keep: string;
  cached: string;
  fresh: string;
}

/** The names of unit u's switch inputs and hand-out output (shared by the graph rewrite and the engine feeding it). */
export function switchNames(u: number): { flag: string; keep: string; cached: string; fresh: string } {
  return { flag: `ditto_on_${u}`, keep: `ditto_keep_${u}`, cached: `ditto_cached_${u}`, fresh: `ditto_fresh_${u}` };
}

const GRAPH_ATTRIBUTE = 5;
const TENSOR_ATTRIBUTE = 4;
const FLOAT = 1;
const BOOL = 9;

/**
 * Rewrites the model in place. Throws a GraphError when a branch's internal tensor is read outside the branch (or
 * the model already has control flow): such a model keeps the unit-by-unit path.
 */
export function switchBranches(model: ModelProto, branches: SwitchedBranch[]): void {
  const graph = graphOf(model);
  const nodes = graph.node as NodeProto[];
  if (nodes.some((n) => subGraphs(n).length > 0))
    throw new GraphError("GRAPH_CUT_INVALID", "the model already holds control-flow subgraphs");
  const producer = new Map<string, number>();
  const consumers = new Map<string, number[]>();
  nodes.forEach((node, i) => {
    for (const out of node.output) producer.set(out, i);
    for (const input of node.input) consumers.set(input, [...(consumers.get(input) ?? []), i]);
  });
  const outputs = new Set(graph.output.map((o) => o.name ?? ""));
  const owner = new Map<number, number>();
  branches.forEach((branch, b) => {
    for (const n of branchNodes(nodes, producer, branch)) owner.set(n, b);
  });
  for (const [n, b] of owner) {
    for (const out of nodes[n].output) {
      if (out === branches[b].result) continue;
      const outside = (consumers.get(out) ?? []).some((c) => owner.get(c) !== b) || outputs.has(out);
      if (outside)
        throw new GraphError("GRAPH_CUT_INVALID", `tensor '${out}' of a switched branch is read outside it`, {
          tensor: out,
        });
    }
  }
  // The If stands where the branch's last node stood, or where its gate Mul stood when that is taken in: every
  // input of the branch and of the Mul is defined by then, and nothing between reads the branch.
  const ifAt = new Map<number, number>();
  const gateMuls = branches.map((branch, b) => {
    const mul = gateMulOf(nodes, consumers, outputs, branch);
    if (mul !== undefined) owner.set(mul, b);
    ifAt.set(mul ?? (producer.get(branch.result) as number), b);
    return mul === undefined ? undefined : nodes[mul];
  });
  graph.node = nodes.flatMap((node, i) => {
    const b = ifAt.get(i);
    if (b !== undefined) {
      const moved = nodes.filter((n, j) => owner.get(j) === b && n !== gateMuls[b]);
      return [switchNode(branches[b], moved, gateMuls[b])];
    }
    return owner.has(i) ? [] : [node];
  });
  for (const branch of branches) {
    graph.input.push(makeValueInfo(branch.flag, { elemType: BOOL, dims: [1] }));
    graph.input.push(makeValueInfo(branch.keep, { elemType: BOOL, dims: [1] }));
    graph.input.push(makeValueInfo(branch.cached, { elemType: FLOAT }));
    graph.output.push(makeValueInfo(branch.fresh, { elemType: FLOAT }));
  }
}

/** The nodes that compute `result` from outside the branch, in graph order. */
function branchNodes(nodes: NodeProto[], producer: Map<string, number>, branch: SwitchedBranch): number[] {
  const found = new Set<number>();
  const stack = [branch.result];
  while (stack.length > 0) {
    const n = producer.get(stack.pop() as string);
    if (n === undefined || found.has(n) || !nodes[n].output.some((o) => branch.members.has(o))) continue;
    found.add(n);
    stack.push(...nodes[n].input.filter((t) => t !== ""));
  }
  if (found.size === 0)
    throw new GraphError("GRAPH_CUT_INVALID", `no node of the branch produces '${branch.result}'`, {
      tensor: branch.result,
    });
  return [...found].sort((a, b) => a - b);
}

/** The one node reading a value branch's result when it is a Mul by a tensor from outside the branch (its gate). */
function gateMulOf(
  nodes: NodeProto[],
  consumers: Map<string, number[]>,
  outputs: Set<string>,
  branch: SwitchedBranch,
): number | undefined {
  const readers = consumers.get(branch.result) ?? [];
  if (branch.base || outputs.has(branch.result) || readers.length !== 1) return undefined;
  const mul = nodes[readers[0]];
  const others = mul.input.filter((t) => t !== branch.result);
  return mul.opType === "Mul" && mul.input.length === 2 && others.length === 1 && !branch.members.has(others[0])
    ? readers[0]
    : undefined;
}

/**
 * One If per branch, outputs [what downstream reads, fresh]. Then: the branch's nodes (and its gate Mul), and the
 * hand-out as an If on `keep` nested inside — a reused branch, the common case, then runs no hand-out If at all.
 * Else: the cached value (gated, or added to the base) and an empty hand-out.
 */
function switchNode(branch: SwitchedBranch, moved: NodeProto[], gateMul?: NodeProto): NodeProto {
  const read = gateMul ? gateMul.output[0] : branch.result;
  // Names defined inside a subgraph must not repeat outer names: only what the If defines outside is renamed (the
  // other moved tensors, the pre-gate result among them when the gate Mul moves in, no longer exist outside).
  const inThen = (t: string) => (t === read ? `${read}__ditto_then` : t);
  const thenNodes = [...moved, ...(gateMul ? [gateMul] : [])].map((n) =>
    onnx.NodeProto.create({ ...n, input: n.input.map(inThen), output: n.output.map(inThen) }),
  );
  const computed = inThen(branch.result);
  const handOut = `${branch.fresh}__ditto_then`;
  const value = branch.base
    ? node("Sub", [computed, branch.base], `${handOut}_keep`)
    : node("Identity", [computed], `${handOut}_keep`);
  thenNodes.push(
    ifOf(
      branch.keep,
      [handOut],
      [[value], [`${handOut}_keep`]],
      [[emptyOf(branch.rank, `${handOut}_drop`)], [`${handOut}_drop`]],
    ),
  );
  const otherwise = `${read}__ditto_else`;
  const reuse = gateMul
    ? onnx.NodeProto.create({
        ...gateMul,
        name: gateMul.name ? `${gateMul.name}__ditto_else` : "",
        input: gateMul.input.map((t) => (t === branch.result ? branch.cached : t)),
        output: [otherwise],
      })
    : branch.base
      ? node("Add", [branch.base, branch.cached], otherwise)
      : node("Identity", [branch.cached], otherwise);
  const noHandOut = `${branch.fresh}__ditto_else`;
  return ifOf(
    branch.flag,
    [read, branch.fresh],
    [thenNodes, [inThen(read), handOut]],
    [
      [reuse, emptyOf(branch.rank, noHandOut)],
      [otherwise, noHandOut],
    ],
  );
}

/** An empty float tensor of the given rank ([0, 1, …]). */
function emptyOf(rank: number, output: string): NodeProto {
  return onnx.NodeProto.create({
    opType: "Constant",
    output: [output],
    attribute: [
      {
        name: "value",
        type: TENSOR_ATTRIBUTE,
        t: onnx.TensorProto.create({ dims: [0, ...new Array(rank - 1).fill(1)], dataType: FLOAT }),
      },
    ],
  });
}

function ifOf(
  cond: string,
  outputs: string[],
  then: [NodeProto[], string[]],
  otherwise: [NodeProto[], string[]],
): NodeProto {
  return onnx.NodeProto.create({
    opType: "If",
    name: `${outputs[0]}__ditto_if`,
    input: [cond],
    output: outputs,
    attribute: [subgraph("then_branch", ...then), subgraph("else_branch", ...otherwise)],
  });
}

function node(opType: string, input: string[], output: string): NodeProto {
  return onnx.NodeProto.create({ opType, input, output: [output] });
}

function subgraph(name: string, nodes: NodeProto[], outputs: string[]): AttributeProto {
  const g: GraphProto = onnx.GraphProto.create({
    name,
    node: nodes,
    output: outputs.map((o) => makeValueInfo(o, { elemType: FLOAT })),
  });
  return onnx.AttributeProto.create({ name, type: GRAPH_ATTRIBUTE, g });
}
