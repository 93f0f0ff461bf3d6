/** An index over an ONNX graph: who produces and who consumes each tensor, including subgraph references. */
import { type GraphProto, type NodeProto, subGraphs, type TensorProto, type ValueInfoProto } from "./proto.ts";

export class GraphIndex {
  readonly graph: GraphProto;
  readonly nodes: NodeProto[];
  /** Inputs of each node, explicit ones plus tensors its subgraphs read from the outer scope; "" removed. */
  readonly nodeInputs: string[][];
  readonly producer = new Map<string, number>();
  readonly consumers = new Map<string, number[]>();
  readonly initializers = new Map<string, TensorProto>();
  /** Graph inputs that are not initializers: what a caller feeds. */
  readonly graphInputs = new Set<string>();
  readonly graphOutputs: string[];
  readonly valueInfo = new Map<string, ValueInfoProto>();
  /** Tensors defined only inside a control-flow subgraph, mapped to the node that owns the subgraph. */
  readonly subgraphTensors = new Map<string, number>();

  constructor(graph: GraphProto) {
    this.graph = graph;
    this.nodes = graph.node as NodeProto[];
    for (const init of graph.initializer as TensorProto[]) this.initializers.set(init.name ?? "", init);
    for (const input of graph.input)
      if (!this.initializers.has(input.name ?? "")) this.graphInputs.add(input.name ?? "");
    this.graphOutputs = graph.output.map((o) => o.name ?? "");
    const infos = [...graph.input, ...graph.output, ...graph.valueInfo] as ValueInfoProto[];
    for (const vi of infos) this.valueInfo.set(vi.name ?? "", vi);
    this.nodeInputs = this.nodes.map((node, i) => {
      const inputs = node.input.filter((name) => name !== "");
      for (const sub of subGraphs(node)) {
        for (const name of outerReferences(sub)) if (!inputs.includes(name)) inputs.push(name);
        for (const name of definedIn(sub)) this.subgraphTensors.set(name, i);
      }
      return inputs;
    });
    this.nodes.forEach((node, i) => {
      for (const out of node.output) if (out !== "") this.producer.set(out, i);
      for (const input of this.nodeInputs[i]) {
        const list = this.consumers.get(input);
        if (list) list.push(i);
        else this.consumers.set(input, [i]);
      }
    });
  }

  hasTensor(name: string): boolean {
    return this.producer.has(name) || this.initializers.has(name) || this.graphInputs.has(name);
  }

  /** Every tensor name in the main graph, for suggestions in error messages. */
  tensorNames(): string[] {
    return [...this.graphInputs, ...this.producer.keys()];
  }
}

/** Names a subgraph (at any depth) reads but does not define itself: implicit inputs from the outer scope. */
function outerReferences(graph: GraphProto): Set<string> {
  const defined = definedIn(graph);
  const refs = new Set<string>();
  for (const node of graph.node as NodeProto[]) {
    for (const name of node.input) if (name !== "" && !defined.has(name)) refs.add(name);
    for (const sub of subGraphs(node)) for (const name of outerReferences(sub)) if (!defined.has(name)) refs.add(name);
  }
  return refs;
}

function definedIn(graph: GraphProto): Set<string> {
  const defined = new Set<string>();
  for (const input of graph.input) defined.add(input.name ?? "");
  for (const init of graph.initializer) defined.add(init.name ?? "");
  for (const node of graph.node as NodeProto[]) {
    for (const out of node.output) defined.add(out);
    for (const sub of subGraphs(node)) for (const name of definedIn(sub)) defined.add(name);
  }
  return defined;
}
