/** The inputs benchmarks time a forward on: a sin-filled sample batch at t = 0.5 with one class per row. */
import { Tensor } from "onnxruntime-common";
import { type ModelManifest, requireImage } from "../src/model/manifest.ts";
import { feedsFor } from "../src/runtime/model-inputs.ts";

export function syntheticFeeds(manifest: ModelManifest, condition: Int32Array): Record<string, Tensor> {
  const batch = condition.length;
  const { channels: c, height: h, width: w } = requireImage(manifest, "this benchmark");
  return feedsFor(manifest, {
    sample: new Tensor(
      "float32",
      new Float32Array(batch * c * h * w).map((_, i) => Math.sin(i)),
      [batch, c, h, w],
    ),
    time: new Float64Array(batch).fill(0.5),
    condition,
  });
}
