/**
 * TeaCache calibration: on uncached runs, pair the relative L1 change of block 0's modulated input between
 * consecutive steps (x) with the relative L1 change of the model output (y), and fit y ≈ poly(x) of degree 4 by
 * least squares (as np.polyfit does in the official scripts).
 */
import { Matrix, solve } from "ml-matrix";
import { Tensor as OrtTensor, type Tensor } from "onnxruntime-common";
import type { TeaCacheArtifact } from "../cache/policies/teacache.ts";
import { polyval, relativeL1 } from "../cache/signals.ts";
import type { Pipeline } from "../pipeline.ts";
import { makeHeader } from "./artifact.ts";
import { type CalibrationOptions, calibrationContext, calibrationSet, record } from "./calibration.ts";

export async function profileTeaCache(
  pipeline: Pipeline,
  options: CalibrationOptions & { degree?: number } = {},
): Promise<TeaCacheArtifact> {
  const set = calibrationSet(pipeline, options, 16);
  const output = pipeline.manifest.output.name;
  const xs: number[] = [];
  const ys: number[] = [];
  let previous: { signal: Tensor; output: Tensor } | undefined;
  await record(
    pipeline,
    set,
    async (event) => {
      const signal = await event.view.tap("block0-modulated");
      const out = event.store.get(output) as Tensor;
      // One pair per batch row (each sample's cond and uncond pass), as the official fits pool prompts.
      if (previous && event.step > 0) {
        for (let row = 0; row < signal.dims[0]; row++) {
          xs.push(relativeL1(batchRow(signal, row), batchRow(previous.signal, row)));
          ys.push(relativeL1(batchRow(out, row), batchRow(previous.output, row)));
        }
      }
      previous = { signal, output: out };
    },
    options,
  );
  const coefficients = polyfit(xs, ys, options.degree ?? 4);
  const ctx = await calibrationContext(pipeline, set);
  return {
    ...makeHeader(
      "teacache",
      ctx,
      "stack",
      { seeds: set.seeds, conditions: set.classes ?? [], batch: set.seeds.length },
      "profile --method teacache",
    ),
    signal: "block0-modulated",
    coefficients,
    fit: { r2: rSquared(xs, ys, coefficients), pairs: xs.length, xRange: [Math.min(...xs), Math.max(...xs)] },
    samples: xs.map((x, i) => [round(x), round(ys[i])]),
  };
}

function batchRow(t: Tensor, row: number): Tensor {
  const per = (t.data as Float32Array).length / t.dims[0];
  return new OrtTensor("float32", (t.data as Float32Array).subarray(row * per, (row + 1) * per), [per]);
}

function round(v: number): number {
  return Math.round(v * 1e6) / 1e6;
}

/** Least-squares polynomial fit; coefficients highest degree first. */
export function polyfit(xs: number[], ys: number[], degree: number): number[] {
  const vandermonde = new Matrix(xs.map((x) => Array.from({ length: degree + 1 }, (_, j) => x ** (degree - j))));
  const solution = solve(vandermonde, Matrix.columnVector(ys), true);
  return solution.to1DArray();
}

export function rSquared(xs: number[], ys: number[], coefficients: number[]): number {
  const mean = ys.reduce((a, b) => a + b, 0) / ys.length;
  let residual = 0;
  let total = 0;
  xs.forEach((x, i) => {
    residual += (ys[i] - polyval(coefficients, x)) ** 2;
    total += (ys[i] - mean) ** 2;
  });
  return total === 0 ? 1 : 1 - residual / total;
}
