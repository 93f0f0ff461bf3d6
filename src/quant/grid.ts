/**
 * The quantization record a quantized model's manifest carries, and the one run-time rule it implies: static
 * (FSC) scales were calibrated per step of one sampler grid, so any other step count, sampler or shift is refused
 * (shared/specs/tfmq.md, Pitfall 1) — never run with the nearest step's scales.
 */
import { ArtifactError } from "../errors.ts";
import type { ModelManifest } from "../model/manifest.ts";

export interface QuantizationRecord {
  format: "ditto.quant.v1";
  /** The ditto.quant.v1 artifact beside the manifest. */
  artifact: string;
  scheme: "dynamic" | "static";
  modulation: "float" | "int8";
  /** The float model this was made from. */
  floatModel: { name: string; sha256: string };
  /** Static scheme: the grid the per-step scales belong to. */
  grid?: { kind: string; steps: number; shift: number };
}

export function quantizationOf(manifest: ModelManifest): QuantizationRecord | undefined {
  return manifest.quantization as QuantizationRecord | undefined;
}

export function checkQuantizedGrid(
  manifest: ModelManifest,
  sampler: { kind: string; steps: number; shift: number },
): void {
  const q = quantizationOf(manifest);
  if (q?.scheme !== "static" || !q.grid) return;
  for (const key of ["steps", "kind", "shift"] as const) {
    if (q.grid[key] !== sampler[key]) {
      const what = key === "kind" ? "sampler" : key;
      throw new ArtifactError(
        "ARTIFACT_MISMATCH",
        `${manifest.name} has static per-step activation scales calibrated for ${what} ${q.grid[key]}, but this run ` +
          `has ${what} ${sampler[key]}. Use --steps ${q.grid.steps}${q.grid.shift !== 1 ? ` --shift ${q.grid.shift}` : ""}, ` +
          `or re-quantize: \`ditto quantize --scheme static --steps ${sampler.steps} --model <float model> --out <dir>\`, ` +
          "or use --scheme dynamic, which works at any step count.",
        { field: what, calibrated: q.grid[key], run: sampler[key] },
      );
    }
  }
}
