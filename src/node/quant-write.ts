/**
 * Node-only: writes a quantized model as a normal Ditto model folder (model.onnx, manifest.json, quant.json), and
 * asks ONNX Runtime what its CPU optimizer made of the integer pattern (session option optimizedModelFilePath).
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { onnx } from "../onnx/proto.ts";
import type { QuantizedModel } from "../quant/quantize.ts";

export function writeQuantizedModel(dir: string, q: QuantizedModel): { sha256: string } {
  mkdirSync(dir, { recursive: true });
  const sha256 = createHash("sha256").update(q.onnx).digest("hex");
  writeFileSync(join(dir, "model.onnx"), q.onnx);
  q.artifact.onnx.sha256 = sha256;
  writeFileSync(join(dir, "quant.json"), `${JSON.stringify(q.artifact, null, 1)}\n`);
  writeFileSync(join(dir, "manifest.json"), `${JSON.stringify(q.manifest, null, 2)}\n`);
  return { sha256 };
}

/** Op counts of the graph ONNX Runtime actually runs after its optimizations ("domain:op" → count). */
export async function optimizedOpCounts(model: Uint8Array): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), "ditto-ort-"));
  try {
    const path = join(dir, "optimized.onnx");
    const session = await ort.InferenceSession.create(model, { optimizedModelFilePath: path, logSeverityLevel: 3 });
    await session.release();
    const counts: Record<string, number> = {};
    for (const n of onnx.ModelProto.decode(readFileSync(path)).graph?.node ?? []) {
      const key = `${n.domain ? `${n.domain}:` : ""}${n.opType}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
