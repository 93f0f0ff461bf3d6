/**
 * Cutting a sub-model out of an ONNX graph between named tensors: the TypeScript counterpart of
 * onnx.utils.Extractor. Keeps exactly the nodes reachable backwards from the outputs without crossing the inputs,
 * with the initializers they read (copied into each slice), value_info, opsets and model-local functions.
 */
import { GraphError } from "../errors.ts";
import { GraphIndex } from "./graph.ts";
import { graphOf, type ModelProto, onnx, type TensorProto, type ValueInfoProto } from "./proto.ts";

/** Element type (TensorProto.DataType) and dims; a string dim is symbolic (dim_param). */
export interface TensorType {
  elemType: number;
  dims?: (number | string)[];
}

export interface ExtractOptions {
  inputs: readonly string[];
  outputs: readonly string[];
  /** Types for boundary tensors that the graph's value_info does not describe (from a probe run). */
  types?: ReadonlyMap<string, TensorType>;
  name?: string;
}

export interface Extraction {
  model: ModelProto;
  /** Indices (in the source graph) of the nodes kept, in their original topological order. */
  nodeIndices: number[];
}

export function extractSubModel(model: ModelProto, options: ExtractOptions, index?: GraphIndex): Extraction {
  const graph = graphOf(model);
  if (!graph) throw new GraphError("GRAPH_CUT_INVALID", "model has no graph to cut");
  const g = index ?? new GraphIndex(graph);
  for (const name of [...options.inputs, ...options.outputs]) checkCutTensor(g, name);

  const inputSet = new Set(options.inputs);
  const keptNodes = new Set<number>();
  const keptInits = new Set<string>();
  for (const output of options.outputs) {
    const stack = [output];
    const seen = new Set<string>();
    while (stack.length > 0) {
      const name = stack.pop() as string;
      if (seen.has(name) || inputSet.has(name)) continue;
      seen.add(name);
      if (g.initializers.has(name)) {
        keptInits.add(name);
        continue;
      }
      const producer = g.producer.get(name);
      if (producer === undefined) {
        const why = g.graphInputs.has(name) ? `graph input '${name}'` : `tensor '${name}', which no node produces`;
        throw new GraphError(
          "GRAPH_CUT_INVALID",
          `cannot compute output '${output}' from the inputs [${options.inputs.join(", ")}]: it depends on ${why}. ` +
            "Add that tensor to the cut's inputs.",
          { output, missing: name },
        );
      }
      if (keptNodes.has(producer)) continue;
      keptNodes.add(producer);
      for (const input of g.nodeInputs[producer]) stack.push(input);
    }
  }

  const nodeIndices = [...keptNodes].sort((a, b) => a - b);
  const nodes = nodeIndices.map((i) => g.nodes[i]);
  const produced = new Set(nodes.flatMap((n) => n.output));
  const boundary = new Set([...options.inputs, ...options.outputs]);
  const valueInfo = graph.valueInfo.filter((vi) => produced.has(vi.name ?? "") && !boundary.has(vi.name ?? ""));
  const usedOps = new Set(nodes.map((n) => `${n.domain ?? ""}:${n.opType}`));

  const sub = onnx.ModelProto.create({
    irVersion: model.irVersion,
    opsetImport: model.opsetImport,
    producerName: "ditto",
    producerVersion: model.producerVersion,
    domain: model.domain,
    modelVersion: model.modelVersion,
    functions: model.functions.filter((f) => usedOps.has(`${f.domain ?? ""}:${f.name}`)),
    metadataProps: model.metadataProps,
    graph: onnx.GraphProto.create({
      name: options.name ?? `${graph.name ?? "graph"}_slice`,
      node: nodes,
      initializer: graph.initializer.filter((t) => keptInits.has(t.name ?? "")),
      input: options.inputs.map((name) => boundaryValueInfo(g, name, options.types, true)),
      output: options.outputs.map((name) => boundaryValueInfo(g, name, options.types, false)),
      valueInfo,
    }),
  });
  return { model: sub, nodeIndices };
}

function checkCutTensor(g: GraphIndex, name: string): void {
  if (g.hasTensor(name)) return;
  const owner = g.subgraphTensors.get(name);
  if (owner !== undefined) {
    const node = g.nodes[owner];
    throw new GraphError(
      "GRAPH_CUT_INVALID",
      `tensor '${name}' lives inside the ${node.opType} node '${node.name}'s subgraph; a cut cannot cross a control-flow ` +
        "subgraph. Cut before or after that node instead.",
      { tensor: name, node: node.name },
    );
  }
  const near = g
    .tensorNames()
    .filter((t) => t.includes(name.split("/").pop() ?? name))
    .slice(0, 5);
  throw new GraphError(
    "GRAPH_CUT_INVALID",
    `tensor '${name}' does not exist in the graph${near.length ? ` (similar names: ${near.join(", ")})` : ""}. ` +
      "List the graph's tensors with `ditto inspect MODEL.onnx --tensors`.",
    { tensor: name },
  );
}

function boundaryValueInfo(
  g: GraphIndex,
  name: string,
  types: ReadonlyMap<string, TensorType> | undefined,
  required: boolean,
): ValueInfoProto {
  const type = types?.get(name);
  if (type) return makeValueInfo(name, type);
  const known = g.valueInfo.get(name);
  if (known?.type) return onnx.ValueInfoProto.create({ name, type: known.type });
  if (g.initializers.has(name)) {
    const init = g.initializers.get(name);
    return makeValueInfo(name, { elemType: init?.dataType ?? 1, dims: ((init as TensorProto).dims ?? []).map(Number) });
  }
  if (required) {
    throw new GraphError(
      "GRAPH_CUT_INVALID",
      `no type is known for the cut input '${name}': the graph has no value_info for it. Pass its type ` +
        "(Ditto's segment planner gets it from a probe run of the whole model).",
      { tensor: name },
    );
  }
  return onnx.ValueInfoProto.create({ name }); // ONNX Runtime infers an untyped output
}

export function makeValueInfo(name: string, type: TensorType): ValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: type.elemType,
        shape: type.dims
          ? { dim: type.dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) }
          : undefined,
      },
    },
  });
}
