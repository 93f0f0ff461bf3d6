/**
 * Which linears Ditto quantizes (shared/specs/tfmq.md, "Ditto's reading"): the token path's matmuls with a constant
 * 2-D weight inside the transformer blocks (QKV, attention out-projection, MLP fc1 and fc2). The patch embedding and
 * the head stay float, and so does the modulation path (timestep MLP, every adaLN projection): those read only
 * the timestep and condition, run once per step and are cached per step, so quantizing them saves no time and
 * disturbs the model's sense of "which step this is" (TFMQ's temporal features). `--modulation int8` lists them
 * too, as the ablation that shows why.
 */
import type { ModelStructure } from "../model/discover.ts";
import type { GraphIndex } from "../onnx/graph.ts";
import { type AttributeProto, type TensorProto, toNumber } from "../onnx/proto.ts";

export type LinearPath = "token" | "modulation";

export interface Linear {
  /** Index of the MatMul/Gemm node in the float graph. */
  node: number;
  name: string;
  path: LinearPath;
  /** The float activation input. */
  input: string;
  output: string;
  weight: string;
  /** "kn": MatMul weight [K, N]; "nk": Gemm weight with transB = 1, [N, K]. */
  layout: "kn" | "nk";
  /** Gemm only: its bias input (MatMuls are followed by the exporter's own bias Add, left as it is). */
  bias?: string;
  inner: number;
  channels: number;
}

export interface LinearSelection {
  modulation: "float" | "int8";
  /** Substrings or /regex/ patterns of node names to keep float. */
  exclude?: string[];
}

export function findLinears(g: GraphIndex, s: ModelStructure, selection: LinearSelection): Linear[] {
  const inAtom = new Set(s.atoms.flatMap((a) => a.nodes));
  const excluded = (name: string) => (selection.exclude ?? []).some((p) => namePattern(p).test(name));
  const linears: Linear[] = [];
  g.nodes.forEach((node, i) => {
    const path: LinearPath | undefined =
      s.nodeClass[i] === "token" && inAtom.has(i)
        ? "token"
        : s.nodeClass[i] === "context" && selection.modulation === "int8"
          ? "modulation"
          : undefined;
    if (!path || excluded(node.name ?? "")) return;
    const linear = describeLinear(g, i, path);
    if (linear) linears.push(linear);
  });
  return linears;
}

/** "qkv" matches names containing qkv; "/mlp\.2/" is a regular expression. */
export function namePattern(pattern: string): RegExp {
  const re = /^\/(.+)\/$/.exec(pattern);
  return re ? new RegExp(re[1]) : new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
}

function describeLinear(g: GraphIndex, i: number, path: LinearPath): Linear | undefined {
  const node = g.nodes[i];
  const weight = g.initializers.get(node.input[1] ?? "");
  if (weight?.dataType !== 1 || weight.dims.length !== 2) return undefined;
  const [rows, cols] = weight.dims.map((d) => toNumber(d));
  const base = { node: i, name: node.name ?? `node${i}`, path, input: node.input[0], output: node.output[0] };
  if (node.opType === "MatMul") {
    return { ...base, weight: weight.name ?? "", layout: "kn", inner: rows, channels: cols };
  }
  if (node.opType !== "Gemm") return undefined;
  const attr = (name: string, fallback: number) => {
    const a = (node.attribute as AttributeProto[]).find((x) => x.name === name);
    if (!a) return fallback;
    return a.type === 1 ? (a.f ?? 0) : toNumber(a.i); // AttributeType FLOAT = 1, INT = 2
  };
  // Only the plain y = x·Wᵀ + b form that torch exports for nn.Linear.
  if (attr("transA", 0) !== 0 || attr("alpha", 1) !== 1 || attr("beta", 1) !== 1) return undefined;
  const transB = attr("transB", 0) === 1;
  const bias = node.input[2] || undefined;
  if (bias && !isVector(g.initializers.get(bias))) return undefined;
  return {
    ...base,
    weight: weight.name ?? "",
    layout: transB ? "nk" : "kn",
    bias,
    inner: transB ? cols : rows,
    channels: transB ? rows : cols,
  };
}

function isVector(t: TensorProto | undefined): boolean {
  return t !== undefined && t.dataType === 1 && t.dims.length === 1;
}

/** A float32 initializer's values, whichever field holds them. */
export function initializerFloats(t: TensorProto): Float32Array {
  if (t.rawData && t.rawData.length > 0) {
    const bytes = t.rawData;
    const copy = new Uint8Array(bytes.length);
    copy.set(bytes);
    return new Float32Array(copy.buffer);
  }
  return Float32Array.from(t.floatData);
}
