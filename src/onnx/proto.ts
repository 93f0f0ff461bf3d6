/** The ONNX protobuf messages (onnx-proto, a CommonJS package) with typed aliases for the rest of Ditto. */
import onnxProto from "onnx-proto";

export const onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.ModelProto;
export type GraphProto = onnxProto.onnx.GraphProto;
export type NodeProto = onnxProto.onnx.NodeProto;
export type TensorProto = onnxProto.onnx.TensorProto;
export type ValueInfoProto = onnxProto.onnx.ValueInfoProto;
export type AttributeProto = onnxProto.onnx.AttributeProto;

/**
 * Decoded messages are class instances whose repeated fields are always arrays; the generated typings only promise
 * the looser I-interfaces for nested fields, so nested access goes through these casts.
 */
export function graphOf(model: ModelProto): GraphProto {
  return model.graph as GraphProto;
}

export function subGraphs(node: NodeProto): GraphProto[] {
  const graphs: GraphProto[] = [];
  for (const attr of node.attribute as AttributeProto[]) {
    if (attr.g) graphs.push(attr.g as GraphProto);
    for (const g of attr.graphs ?? []) graphs.push(g as GraphProto);
  }
  return graphs;
}

/** int64 fields decode as Long objects (or numbers): convert explicitly. */
export function toNumber(value: number | { toNumber(): number } | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === "number" ? value : value.toNumber();
}

/** ONNX element types (TensorProto.DataType) that Ditto moves between sessions, with ONNX Runtime's names. */
export const ELEMENT_TYPES: Record<number, string> = {
  1: "float32",
  2: "uint8",
  3: "int8",
  5: "int16",
  6: "int32",
  7: "int64",
  9: "bool",
  10: "float16",
  11: "float64",
  12: "uint32",
  13: "uint64",
};

export function elementTypeOf(ortType: string): number {
  for (const [code, name] of Object.entries(ELEMENT_TYPES)) if (name === ortType) return Number(code);
  throw new Error(`no ONNX element type for ONNX Runtime type '${ortType}'`);
}
