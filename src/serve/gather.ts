/** Gathering a request's per-batch results into all samples, one report and the PNG grid (`ditto generate`'s). */
import { gridPng, toUnitRange } from "../image/png.ts";
import type { BatchReport, BatchResult, RequestJobData, RequestResult } from "./jobs.ts";
import { fromBase64, toBase64 } from "./jobs.ts";

/** Totals over the batches, as `ditto generate --json` reports them (ideal speedup from FLOPs). */
export function mergeReports(reports: BatchReport[]): RequestResult["report"] {
  const sum = (pick: (r: BatchReport) => number) => reports.reduce((a, r) => a + pick(r), 0);
  const flopsFull = sum((r) => r.flopsFull);
  const flopsDone = sum((r) => r.flopsDone);
  return {
    policy: reports[0].policy,
    spec: reports[0].spec,
    unitsComputed: sum((r) => r.unitsComputed),
    unitsSkipped: sum((r) => r.unitsSkipped),
    flopsFull,
    flopsDone,
    idealSpeedup: Math.round((flopsFull / flopsDone) * 1000) / 1000,
    cachePeakBytes: Math.max(...reports.map((r) => r.cachePeakBytes)),
    nonFiniteFallbacks: sum((r) => r.nonFiniteFallbacks),
    wallMs: Math.round(sum((r) => r.wallMs) * 10) / 10,
    batches: reports.length,
  };
}

/** `parts` in batch order. */
export function gather(request: RequestJobData, parts: BatchResult[]): RequestResult {
  const arrays = parts.map((p) => fromBase64(p.samples));
  const total = arrays.reduce((a, x) => a + x.length, 0);
  const samples = new Float32Array(total);
  let offset = 0;
  for (const x of arrays) {
    samples.set(x, offset);
    offset += x.length;
  }
  const [, c, h, w] = parts[0].dims;
  const n = total / (c * h * w);
  const png = gridPng(
    { data: toUnitRange(samples, request.range), count: n, channels: c, height: h, width: w },
    request.columns,
    2,
    request.scale,
  );
  return {
    png: png.toString("base64"),
    samples: toBase64(samples),
    dims: [n, c, h, w],
    report: mergeReports(parts.map((p) => p.report)),
  };
}
