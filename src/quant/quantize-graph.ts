/**
 * The int8 rewrite of an ONNX DiT (shared/specs/tfmq.md, Ditto form, steps 3–5). Each chosen linear y = x·W is
 * replaced, under its own node name plus "/DittoQuant/…", by an integer matmul with per-output-channel int8 weights:
 *
 * - dynamic (option A): DynamicQuantizeLinear(x) → MatMulInteger(x_u8, W_q, z_x) → Cast → × (s_x·s_w[n]), the
 *   pattern ONNX Runtime's own dynamic quantizer emits and its CPU optimizer fuses (DynamicQuantizeMatMul).
 * - static (option B, FSC): QuantizeLinear(x, s_t, z_t) → MatMulInteger(x_u8, W_q, z_t) → Cast → × (s_t·s_w[n]),
 *   with s_t, z_t the calibrated scale and zero point of step t. They reach the block sessions as inputs: a lookup
 *   from the timestep input computes them, so they sit in the timestep/condition-only part of the graph, which the
 *   engine runs once for all steps (its conditioning table — TFMQ's cached temporal features) and feeds to every
 *   block session.
 *
 * The graph keeps every other node, name and tensor, so structure discovery, the cuts and every policy see the
 * same model.
 */
import { QUANT_SCOPE } from "../model/discover.ts";
import { graphOf, type ModelProto, type NodeProto, onnx, type TensorProto } from "../onnx/proto.ts";
import { initializerFloats, type Linear } from "./linears.ts";
import { type QuantizedMatrix, quantizeMatrix } from "./range-search.ts";

const FLOAT = 1;
const UINT8 = 2;
const INT8 = 3;
const INT64 = 7;

export interface StaticScales {
  /** Timestep input values of the calibrated grid, as fed to the graph (time × scale), one per step. */
  grid: number[];
  /** Per linear (by node name): the input range [min, max] at each step of the grid. */
  ranges: Record<string, [number, number][]>;
}

export interface QuantizeGraphOptions {
  /** Activation scheme of token-path linears; modulation linears (ablation only) always use dynamic ranges. */
  scheme: "dynamic" | "static";
  timestepInput: string;
  scales?: StaticScales;
}

export interface QuantizedLinear {
  linear: Linear;
  weights: QuantizedMatrix;
}

/** Quantizes the weights and rewrites a copy of `model`; the input model is left untouched. */
export function quantizeGraph(
  model: ModelProto,
  linears: Linear[],
  options: QuantizeGraphOptions,
): { model: ModelProto; quantized: QuantizedLinear[] } {
  const copy = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  const graph = graphOf(copy);
  const inits = new Map((graph.initializer as TensorProto[]).map((t) => [t.name ?? "", t]));
  const replacement = new Map<number, NodeProto[]>();
  const added: TensorProto[] = [];
  const quantized: QuantizedLinear[] = [];
  const prelude: NodeProto[] = [];
  let stepIndex: string | undefined;
  if (options.scheme === "static") {
    if (!options.scales) throw new Error("static scheme needs calibrated scales");
    stepIndex = gridLookup(prelude, added, options.timestepInput, options.scales.grid);
  }
  for (const linear of linears) {
    const w = inits.get(linear.weight) as TensorProto;
    const [rows, cols] = w.dims.map(Number);
    const weights = quantizeMatrix(initializerFloats(w), rows, cols, linear.layout);
    const p = `${linear.name}${QUANT_SCOPE}`;
    const wq = tensor(`${p}W_q`, INT8, linear.layout === "kn" ? [rows, cols] : [cols, rows], kn(weights.q, linear));
    const ws = tensor(`${p}W_scale`, FLOAT, [linear.channels], weights.scales);
    added.push(wq, ws);
    const nodes: NodeProto[] = [];
    const matmulOut = linear.bias ? `${p}Y` : linear.output;
    const useStatic = options.scheme === "static" && linear.path === "token" && stepIndex !== undefined;
    if (useStatic) {
      staticLinear(nodes, added, prelude, p, linear, options.scales as StaticScales, stepIndex as string, matmulOut);
    } else {
      dynamicLinear(nodes, p, linear, matmulOut);
    }
    if (linear.bias) nodes.push(node("Add", [matmulOut, linear.bias], [linear.output], `${p}AddBias`));
    replacement.set(linear.node, nodes);
    quantized.push({ linear, weights });
  }
  const nodes: NodeProto[] = [...prelude, ...(graph.node as NodeProto[]).flatMap((n, i) => replacement.get(i) ?? [n])];
  graph.node = nodes;
  const read = new Set(nodes.flatMap((n) => n.input));
  graph.initializer = [...(graph.initializer as TensorProto[]).filter((t) => read.has(t.name ?? "")), ...added];
  return { model: copy, quantized };
}

/** W_q in MatMulInteger's [K, N] layout (a Gemm's transB weight is transposed). */
function kn(q: Int8Array, linear: Linear): Int8Array {
  if (linear.layout === "kn") return q;
  const { inner: k, channels: n } = linear;
  const out = new Int8Array(q.length);
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) out[c * n + r] = q[r * k + c];
  return out;
}

function dynamicLinear(nodes: NodeProto[], p: string, linear: Linear, out: string): void {
  nodes.push(
    node(
      "DynamicQuantizeLinear",
      [linear.input],
      [`${p}x_q`, `${p}x_scale`, `${p}x_zero`],
      `${p}DynamicQuantizeLinear`,
    ),
    node("MatMulInteger", [`${p}x_q`, `${p}W_q`, `${p}x_zero`], [`${p}acc`], `${p}MatMulInteger`),
    node("Cast", [`${p}acc`], [`${p}acc_f`], `${p}Cast`, { to: FLOAT }),
    node("Mul", [`${p}x_scale`, `${p}W_scale`], [`${p}scale`], `${p}ScaleProduct`),
    node("Mul", [`${p}acc_f`, `${p}scale`], [out], `${p}Rescale`),
  );
}

/**
 * The static pattern. The per-step scale and zero point arrive per sample ([B], looked up from the timestep with
 * the modulation, so the engine's conditioning table caches them per step); one network call is one step, so the
 * block reads row 0 as a scalar — through an index computed from the activation's own shape, which keeps that read
 * in the block session — and quantizes with plain QuantizeLinear (one pass, no range reduction).
 */
function staticLinear(
  nodes: NodeProto[],
  added: TensorProto[],
  prelude: NodeProto[],
  p: string,
  linear: Linear,
  scales: StaticScales,
  stepIndex: string,
  out: string,
): void {
  const ranges = scales.ranges[linear.name];
  if (!ranges) throw new Error(`no calibrated range for ${linear.name}`);
  // Asymmetric uint8 over [min_t, max_t] ∪ {0}, so that zero is exact (TFMQ's FSC quantizer, step 3).
  const params = ranges.map(([lo, hi]) => {
    const [a, b] = [Math.min(lo, 0), Math.max(hi, 0)];
    const scale = Math.max((b - a) / 255, 1e-12);
    return { scale, zero: Math.min(255, Math.max(0, Math.round(-a / scale))) };
  });
  added.push(
    tensor(
      `${p}step_scale_table`,
      FLOAT,
      [params.length],
      Float32Array.from(params, (q) => q.scale),
    ),
    tensor(
      `${p}step_zero_table`,
      UINT8,
      [params.length],
      Uint8Array.from(params, (q) => q.zero),
    ),
    tensor(`${p}axis0`, INT64, [], [0]),
  );
  prelude.push(
    node("Gather", [`${p}step_scale_table`, stepIndex], [`${p}step_scale`], `${p}GatherStepScale`, { axis: 0 }),
    node("Gather", [`${p}step_zero_table`, stepIndex], [`${p}step_zero`], `${p}GatherStepZero`, { axis: 0 }),
  );
  nodes.push(
    node("Shape", [linear.input], [`${p}x_shape`], `${p}Shape`),
    node("Gather", [`${p}x_shape`, `${p}axis0`], [`${p}batch`], `${p}Batch`, { axis: 0 }),
    node("Sub", [`${p}batch`, `${p}batch`], [`${p}row0`], `${p}Row0`),
    node("Gather", [`${p}step_scale`, `${p}row0`], [`${p}x_scale`], `${p}StepScale`, { axis: 0 }),
    node("Gather", [`${p}step_zero`, `${p}row0`], [`${p}x_zero`], `${p}StepZero`, { axis: 0 }),
    node("QuantizeLinear", [linear.input, `${p}x_scale`, `${p}x_zero`], [`${p}x_q`], `${p}QuantizeLinear`),
    node("MatMulInteger", [`${p}x_q`, `${p}W_q`, `${p}x_zero`], [`${p}acc`], `${p}MatMulInteger`),
    node("Cast", [`${p}acc`], [`${p}acc_f`], `${p}Cast`, { to: FLOAT }),
    node("Mul", [`${p}x_scale`, `${p}W_scale`], [`${p}scale`], `${p}ScaleProduct`),
    node("Mul", [`${p}acc_f`, `${p}scale`], [out], `${p}Rescale`),
  );
}

/** Step index per sample: argmin_s |t − grid[s]| (timestep input [B] → [B] int64). */
function gridLookup(prelude: NodeProto[], added: TensorProto[], t: string, grid: number[]): string {
  const p = `/fsc${QUANT_SCOPE}`;
  added.push(
    tensor(`${p}grid`, FLOAT, [1, grid.length], Float32Array.from(grid)),
    tensor(`${p}axis1`, INT64, [1], [1]),
  );
  prelude.push(
    node("Cast", [t], [`${p}t`], `${p}CastTime`, { to: FLOAT }),
    node("Unsqueeze", [`${p}t`, `${p}axis1`], [`${p}t_col`], `${p}TimeColumn`),
    node("Sub", [`${p}t_col`, `${p}grid`], [`${p}diff`], `${p}Diff`),
    node("Abs", [`${p}diff`], [`${p}dist`], `${p}Dist`),
    node("ArgMin", [`${p}dist`], [`${p}step_index`], `${p}StepIndex`, { axis: 1, keepdims: 0 }),
  );
  return `${p}step_index`;
}

function node(
  opType: string,
  input: string[],
  output: string[],
  name: string,
  attrs: Record<string, number> = {},
): NodeProto {
  const attribute = Object.entries(attrs).map(([key, value]) => ({ name: key, type: 2, i: value }));
  return onnx.NodeProto.create({ opType, input, output, name, attribute });
}

function tensor(name: string, dataType: number, dims: number[], data: ArrayLike<number>): TensorProto {
  if (dataType === INT64) return onnx.TensorProto.create({ name, dataType, dims, int64Data: Array.from(data) });
  const bytes =
    dataType === FLOAT
      ? new Uint8Array(Float32Array.from(data).buffer)
      : dataType === UINT8
        ? Uint8Array.from(data)
        : new Uint8Array(Int8Array.from(data).buffer);
  return onnx.TensorProto.create({ name, dataType, dims, rawData: bytes });
}
