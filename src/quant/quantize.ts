/**
 * `quantizeModel`: the whole TFMQ recipe on a loaded float model (shared/specs/tfmq.md, Ditto form) — find the
 * token-path linears, search each output channel's weight range, calibrate per-step activation ranges for the
 * static scheme, rewrite the graph, and describe the result (manifest + ditto.quant.v1 artifact). No file system
 * here: `writeQuantizedModel` (write.ts) puts it on disk.
 */
import { InputError } from "../errors.ts";
import type { ModelManifest } from "../model/manifest.ts";
import { onnx } from "../onnx/proto.ts";
import type { Pipeline } from "../pipeline.ts";
import type { CalibrationOptions } from "../profiling/calibration.ts";
import { createSampler } from "../sampling/samplers.ts";
import { calibrateStepRanges, type FscCalibration } from "./fsc.ts";
import type { QuantizationRecord } from "./grid.ts";
import { findLinears } from "./linears.ts";
import { quantizeGraph } from "./quantize-graph.ts";

export type ActivationScheme = "dynamic" | "static";
export type ModulationPrecision = "float" | "int8";

export interface QuantizeOptions {
  /** Activation quantization of the token path (default dynamic: option A). */
  scheme?: ActivationScheme;
  /** "float" (default): the modulation path is never quantized; "int8" is the ablation. */
  modulation?: ModulationPrecision;
  /** Node-name substrings or /regex/ patterns of linears to keep float. */
  exclude?: string[];
  /** Static scheme: the calibration runs (steps, CFG, items P; default the manifest's steps and CFG, 8 items). */
  calibration?: CalibrationOptions;
  /** The command line, recorded in the artifact. */
  command?: string;
}

export interface QuantArtifact {
  format: "ditto.quant.v1";
  /** The float model the artifact belongs to (its SHA-256), as in every calibration artifact header. */
  model: { sha256: string; blocks: number; granularity: "branch" };
  sampler: { kind: string; steps: number; shift: number; cfgScale: number; cfgMode: string };
  shape: { batch: number; tokens: number; hidden: number };
  calibration: { seeds: number[]; conditions: number[] };
  createdBy: string;
  scheme: ActivationScheme;
  modulation: ModulationPrecision;
  /** The quantized ONNX file beside the artifact; its sha256 is filled in when it is written. */
  onnx: { file: string; sha256?: string; bytes: number };
  /** Per quantized weight initializer: symmetric int8, one scale per output channel, zero point 0. */
  weights: Record<
    string,
    { node: string; path: "token" | "modulation"; scale: number[]; zeroPoint: number[]; meanAlpha: number }
  >;
  fsc?: { steps: number; ranges: Record<string, [number, number][]> };
  /** Linears left in float (by node name), and why. */
  keptFloat: string[];
  modulationCached: true;
}

export interface QuantizedModel {
  onnx: Uint8Array;
  manifest: ModelManifest;
  artifact: QuantArtifact;
}

export async function quantizeModel(pipeline: Pipeline, options: QuantizeOptions = {}): Promise<QuantizedModel> {
  const scheme = options.scheme ?? "dynamic";
  const modulation = options.modulation ?? "float";
  if (!["dynamic", "static"].includes(scheme))
    throw new InputError("OPTION_INVALID", `--scheme must be dynamic or static (got '${scheme}')`);
  if (!["float", "int8"].includes(modulation))
    throw new InputError("OPTION_INVALID", `--modulation must be float or int8 (got '${modulation}')`);
  const model = pipeline.model;
  const float = model.manifest;
  if (float.quantization)
    throw new InputError("OPTION_INVALID", `${float.name} is already quantized; pass the float model to --model`);
  const linears = findLinears(model.graph, model.structure, { modulation, exclude: options.exclude });
  const token = linears.filter((l) => l.path === "token");
  if (token.length === 0)
    throw new InputError(
      "OPTION_INVALID",
      "no token-path linear left to quantize (a MatMul/Gemm with a constant 2-D float weight inside the blocks)" +
        (options.exclude?.length ? `; --exclude ${options.exclude.join(",")} removed them all` : ""),
    );
  let fsc: FscCalibration | undefined;
  if (scheme === "static") fsc = await calibrateStepRanges(pipeline, token, options.calibration ?? {});
  const { model: proto, quantized } = quantizeGraph(model.onnx.proto, linears, {
    scheme,
    timestepInput: float.inputs.timestep.name,
    scales: fsc?.scales,
  });
  const bytes = onnx.ModelProto.encode(proto).finish();
  const chosen = new Set(linears.map((l) => l.node));
  const keptFloat = model.graph.nodes
    .filter(
      (n, i) => ["MatMul", "Gemm"].includes(n.opType) && !chosen.has(i) && model.graph.initializers.has(n.input[1]),
    )
    .map((n) => n.name ?? "");
  const steps = fsc?.grid.steps ?? float.recommended?.steps ?? 50;
  const grid = fsc?.grid ?? createSampler(float, { steps }).describe;
  const h = model.probeDims(model.structure.atoms[0].streamIn) ?? [];
  const artifact: QuantArtifact = {
    format: "ditto.quant.v1",
    model: { sha256: model.onnx.sha256, blocks: model.structure.blocks.length, granularity: "branch" },
    sampler: { ...grid, cfgScale: fsc?.cfg ?? float.recommended?.cfgScale ?? 1, cfgMode: "batched" },
    shape: { batch: fsc?.seeds.length ?? 0, tokens: h.slice(1, -1).reduce((a, b) => a * b, 1), hidden: h.at(-1) ?? 0 },
    calibration: { seeds: fsc?.seeds ?? [], conditions: fsc?.conditions ?? [] },
    createdBy: `ditto ${options.command ?? "quantize"}`,
    scheme,
    modulation,
    onnx: { file: "model.onnx", bytes: bytes.length },
    weights: Object.fromEntries(
      quantized.map(({ linear, weights }) => [
        `${linear.name}/DittoQuant/W_q`,
        {
          node: linear.name,
          path: linear.path,
          scale: Array.from(weights.scales),
          zeroPoint: Array.from(weights.scales, () => 0),
          meanAlpha: weights.alphas.reduce((a, b) => a + b, 0) / weights.alphas.length,
        },
      ]),
    ),
    fsc: fsc && { steps: fsc.grid.steps, ranges: fsc.scales.ranges },
    keptFloat,
    modulationCached: true,
  };
  const record: QuantizationRecord = {
    format: "ditto.quant.v1",
    artifact: "quant.json",
    scheme,
    modulation,
    floatModel: { name: float.name, sha256: model.onnx.sha256 },
    grid: fsc?.grid,
  };
  const { dir: _dir, onnxPath: _onnxPath, ...floatManifest } = float;
  const suffix = `int8-${scheme}${modulation === "int8" ? "-int8mod" : ""}`;
  const manifest: ModelManifest = {
    ...floatManifest,
    name: `${float.name}-${suffix}`,
    description: `${float.description ?? float.name} Token-path linears int8 (${scheme} activations), made by ditto quantize.`,
    onnx: "model.onnx",
    quantization: record,
  };
  return { onnx: bytes, manifest, artifact };
}
