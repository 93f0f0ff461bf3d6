/**
 * The int8 rewrite of an ONNX DiT (shared/specs/tfmq.md, Ditto form, steps 3–5). Each chosen linear y = x·W is
 * replaced, under its own node name plus "/DittoQuant/…", by an integer matmul with per-output-channel int8 weights:
 *
 * - dynamic (option A): DynamicQuantizeLinear(x) → MatMulInteger(x_u8, W_q, z_x) → Cast → × (s_x·s_w[n]), the
 *   pattern ONNX Runtime's own dynamic quantizer emits and its CPU optimizer fuses (DynamicQuantizeMatMul).
 * - static (option B, FSC): x_u8 = Cast(Clip(Round((x − c)·(1/s_t)) + 128, 0, 255)), MatMulInteger(x_u8, W_q, 128)
 *   → Cast → × s_w[n] × s_t (+ c·Σ_k Ŵ[k, n]). The per-step step sizes s_t reach the block sessions as inputs: a
 *   lookup from the timestep input computes them, so they sit in the timestep/condition-only part of the graph, which
 *   the engine runs once for all steps (its conditioning table — TFMQ's cached temporal features) and feeds to every
 *   block session. The centre c is one constant per linear, so its correction folds into a per-channel constant
 *   instead of a per-step tensor ([Ditto choice]: a per-step zero point would need a per-step [N] correction).
 *
 * The graph keeps every other node, name and tensor, so structure discovery, the cuts and every policy see the
 * same model.
 */
import { QUANT_SCOPE } from "../model/discover.ts";
import { graphOf, type ModelProto, type NodeProto, onnx, type TensorProto } from "../onnx/proto.ts";
import { initializerFloats, type Linear } from "./linears.ts";
import { INT8_MAX, type QuantizedMatrix, quantizeMatrix } from "./range-search.ts";

const FLOAT = 1;
const UINT8 = 2;
const INT8 = 3;
const INT64 = 7;

export interface StaticScales {
  /** Timestep input values of the calibrated grid, as fed to the graph (time × scale), one per step. */
  grid: number[];
  /** Per linear (by node name): the input range [min, max] at each step of the grid. */
  ranges: Record<string, [number, number][]>;
  /** Rank of each linear's input (by node name), so the per-sample step broadcasts as [B, 1, …, 1]. */
  ranks: Record<string, number>;
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
  /** Static scheme: the constant centre c of the activation grid. */
  center?: number;
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
    let center: number | undefined;
    if (useStatic) {
      const scales = options.scales as StaticScales;
      center = staticLinear(nodes, added, prelude, p, linear, weights, scales, stepIndex as string, matmulOut);
    } else {
      dynamicLinear(nodes, p, linear, matmulOut);
    }
    if (linear.bias) nodes.push(node("Add", [matmulOut, linear.bias], [linear.output], `${p}AddBias`));
    replacement.set(linear.node, nodes);
    quantized.push({ linear, weights, center });
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

/** The static pattern; returns the centre c it used. */
function staticLinear(
  nodes: NodeProto[],
  added: TensorProto[],
  prelude: NodeProto[],
  p: string,
  linear: Linear,
  weights: QuantizedMatrix,
  scales: StaticScales,
  stepIndex: string,
  out: string,
): number {
  const ranges = scales.ranges[linear.name];
  const rank = scales.ranks[linear.name];
  if (!ranges || !rank) throw new Error(`no calibrated range for ${linear.name}`);
  const lo = Math.min(...ranges.map((r) => r[0]));
  const hi = Math.max(...ranges.map((r) => r[1]));
  const center = Math.fround((lo + hi) / 2);
  // Step s_t = half-width of step t's range around c over 127 (a grid of 256 levels centred on code 128).
  const steps = ranges.map(([a, b]) => Math.max(Math.max(b - center, center - a) / INT8_MAX, 1e-12));
  const bcast = [steps.length, ...Array(rank - 1).fill(1)];
  // x_q = Round(x·(1/s_t) + (128 − c/s_t)): one multiply and one add per element; both per-step factors are
  // [B, 1, …, 1] tensors looked up from the timestep (so they are computed with the modulation, once per step).
  added.push(
    tensor(`${p}step_table`, FLOAT, bcast, Float32Array.from(steps)),
    tensor(
      `${p}inv_step_table`,
      FLOAT,
      bcast,
      Float32Array.from(steps, (s) => 1 / s),
    ),
    tensor(
      `${p}offset_table`,
      FLOAT,
      bcast,
      Float32Array.from(steps, (s) => 128 - center / s),
    ),
    tensor(`${p}code_min`, FLOAT, [], Float32Array.of(0)),
    tensor(`${p}code_max`, FLOAT, [], Float32Array.of(255)),
    tensor(`${p}x_zero`, UINT8, [], Uint8Array.of(128)),
  );
  for (const table of ["step", "inv_step", "offset"])
    prelude.push(
      node("Gather", [`${p}${table}_table`, stepIndex], [`${p}${table}`], `${p}Gather_${table}`, { axis: 0 }),
    );
  nodes.push(
    node("Mul", [linear.input, `${p}inv_step`], [`${p}x_s`], `${p}Scale`),
    node("Add", [`${p}x_s`, `${p}offset`], [`${p}x_o`], `${p}Offset`),
    node("Round", [`${p}x_o`], [`${p}x_r`], `${p}Round`),
    node("Clip", [`${p}x_r`, `${p}code_min`, `${p}code_max`], [`${p}x_k`], `${p}Clip`),
    node("Cast", [`${p}x_k`], [`${p}x_q`], `${p}CastU8`, { to: UINT8 }),
    node("MatMulInteger", [`${p}x_q`, `${p}W_q`, `${p}x_zero`], [`${p}acc`], `${p}MatMulInteger`),
    node("Cast", [`${p}acc`], [`${p}acc_f`], `${p}Cast`, { to: FLOAT }),
    node("Mul", [`${p}acc_f`, `${p}W_scale`], [`${p}y_w`], `${p}WeightScale`),
  );
  if (center === 0) {
    nodes.push(node("Mul", [`${p}y_w`, `${p}step`], [out], `${p}StepScale`));
    return center;
  }
  // x ≈ s_t·(x_q − 128) + c, so x·Ŵ = s_t·s_w·((x_q − 128)·W_q) + c·Σ_k Ŵ[k, n].
  const correction = new Float32Array(linear.channels);
  const q = kn(weights.q, linear);
  for (let k = 0; k < linear.inner; k++)
    for (let n = 0; n < linear.channels; n++) correction[n] += q[k * linear.channels + n];
  for (let n = 0; n < linear.channels; n++) correction[n] *= weights.scales[n] * center;
  added.push(tensor(`${p}center_correction`, FLOAT, [linear.channels], correction));
  nodes.push(
    node("Mul", [`${p}y_w`, `${p}step`], [`${p}y_s`], `${p}StepScale`),
    node("Add", [`${p}y_s`, `${p}center_correction`], [out], `${p}CenterCorrection`),
  );
  return center;
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
