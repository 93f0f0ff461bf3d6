/**
 * ProfilingDiT's profiler (shared/specs/profilingdit.md, "Offline profiling"; the authors never released theirs):
 * uncached calibration runs expose every block's attention probabilities; per block, the tokens receiving more
 * than average attention (ā_k = column mean > θ = 1/n) are compared with a foreground mask of the generated
 * image; R(b) = |H ∩ FG| / |FG|, averaged over items and steps s ≥ s0, ranks blocks from foreground- to
 * background-focused. The |B| lowest-R blocks are cached.
 */
import type { Tensor } from "onnxruntime-common";
import type { ProfilingDitArtifact } from "../cache/policies/profilingdit.ts";
import { decreasingSchedule, splitRuns } from "../cache/policies/profilingdit.ts";
import type { CachePolicy, ModelInfo } from "../cache/policy.ts";
import { InputError } from "../errors.ts";
import { requireImage } from "../model/manifest.ts";
import type { Pipeline } from "../pipeline.ts";
import { makeHeader } from "./artifact.ts";
import { type CalibrationOptions, calibrationContext, calibrationSet, record } from "./calibration.ts";

export type MaskSource = "intensity" | "pca-otsu";

export interface ProfilingDitOptions extends CalibrationOptions {
  maskSource?: MaskSource;
  /** Number of blocks to cache (default round(0.6·L)). */
  cachedBlocks?: number;
  /** Warm-up s0 (default round(0.12·S)). */
  s0?: number;
}

export async function profileProfilingDit(
  pipeline: Pipeline,
  options: ProfilingDitOptions = {},
): Promise<ProfilingDitArtifact> {
  const set = calibrationSet(pipeline, options, 8);
  const model = pipeline.model;
  const { structure } = model;
  const L = structure.blocks.length;
  const m = pipeline.manifest;
  const softmax = structure.blocks.map((b) => b.atoms.flatMap((a) => structure.atoms[a].softmax).slice(0, 1));
  if (softmax.some((s) => s.length === 0)) {
    throw new InputError(
      "OPTION_INVALID",
      "profilingdit needs each block's attention probabilities, but some blocks have no Softmax node (fused attention?)",
    );
  }
  const taps = softmax.flat();
  const profilingPolicy: CachePolicy = {
    name: "profiling",
    spec: "profiling",
    units: (info: ModelInfo) => [{ start: 0, end: info.atoms.length, cache: "delta", taps }],
    createState: () => ({ decide: () => "compute", update: () => {}, approximate: () => undefined, bytes: () => 0 }),
  };
  // received[s][b]: per batch row, the column-mean attention over queries (averaged over heads), length n.
  const received: Float64Array[][][] = [];
  const result = await record(
    pipeline,
    set,
    (event) => {
      const perBlock = taps.map((name) => receivedAttention(event.store.get(name) as Tensor));
      if (event.pass === "uncond")
        received[event.step] = received[event.step].map((rows, b) => [...rows, ...perBlock[b]]);
      else received[event.step] = perBlock;
    },
    options,
    profilingPolicy,
  );
  const tokens = received[0][0][0].length;
  const masks = foregroundMasks(
    result.samples,
    set.seeds.length,
    requireImage(m, "ProfilingDiT calibration"),
    tokens,
    options.maskSource ?? "intensity",
  );
  const S = set.steps;
  const s0 = options.s0 ?? Math.round(0.12 * S);
  const heat = received.map((blocks) => blocks.map((rows) => foregroundRatio(rows, masks)));
  const R = Array.from({ length: L }, (_, b) => mean(heat.slice(s0).map((row) => row[b])));
  const count = options.cachedBlocks ?? Math.round(0.6 * L);
  const order = R.map((r, b) => ({ r, b })).sort((x, y) => x.r - y.r || x.b - y.b);
  const cached = order
    .slice(0, count)
    .map((o) => o.b)
    .sort((a, b) => a - b);
  const computed = Array.from({ length: L }, (_, b) => b).filter((b) => !cached.includes(b));
  const ctx = await calibrationContext(pipeline, set);
  return {
    ...makeHeader(
      "profilingdit",
      ctx,
      "block",
      { seeds: set.seeds, conditions: set.classes ?? [], batch: set.seeds.length },
      "profile --method profilingdit",
    ),
    blocks: { cached, computed, ...splitRuns(cached, L) },
    s0,
    computeSteps: decreasingSchedule(S, s0, Math.round(0.24 * S), 2),
    profile: {
      R: R.map((r) => round(r)),
      theta: 1 / tokens,
      maskSource: options.maskSource ?? "intensity",
      conditions: set.classes ?? [],
      stepsUsed: [s0, S - 1],
      heat: heat.map((row) => row.map(round)),
      foregroundFraction: round(mean(masks.map((mk) => mk.filter(Boolean).length / tokens))),
    },
  };
}

/** Column means of the attention probabilities, averaged over heads: [rows][n] from a [rows, H, n, n] tensor. */
export function receivedAttention(p: Tensor): Float64Array[] {
  const [rows, heads, n] = [p.dims[0], p.dims[1], p.dims[2]];
  const data = p.data as Float32Array;
  const out: Float64Array[] = [];
  for (let r = 0; r < rows; r++) {
    const acc = new Float64Array(n);
    for (let h = 0; h < heads; h++) {
      const base = (r * heads + h) * n * n;
      for (let q = 0; q < n; q++) for (let k = 0; k < n; k++) acc[k] += data[base + q * n + k];
    }
    for (let k = 0; k < n; k++) acc[k] /= heads * n;
    out.push(acc);
  }
  return out;
}

/**
 * R = |H ∩ FG| / |FG| with H = { k : ā_k > 1/n }, averaged over rows; `masks` has one mask per item, and rows
 * beyond the items (the unconditional CFG half) reuse the masks of the same items.
 */
export function foregroundRatio(rows: Float64Array[], masks: boolean[][]): number {
  let total = 0;
  rows.forEach((a, r) => {
    const mask = masks[r % masks.length];
    const theta = 1 / a.length;
    let fg = 0;
    let hit = 0;
    for (let k = 0; k < a.length; k++) {
      if (!mask[k]) continue;
      fg++;
      if (a[k] > theta) hit++;
    }
    total += fg === 0 ? 0 : hit / fg;
  });
  return total / rows.length;
}

/** Foreground tokens per item from the final image: patch means thresholded by Otsu (bright side), or PCA + Otsu. */
export function foregroundMasks(
  samples: Float32Array,
  items: number,
  image: { channels: number; height: number; width: number },
  tokens: number,
  source: MaskSource,
): boolean[][] {
  const { channels, height, width } = image;
  const patch = Math.round(Math.sqrt((height * width) / tokens));
  const grid = width / patch;
  const per = channels * height * width;
  return Array.from({ length: items }, (_, i) => {
    const vectors: number[][] = Array.from({ length: tokens }, (_, k) => {
      const [gy, gx] = [Math.floor(k / grid), k % grid];
      const v: number[] = [];
      for (let c = 0; c < channels; c++) {
        for (let y = 0; y < patch; y++)
          for (let x = 0; x < patch; x++)
            v.push(samples[i * per + c * height * width + (gy * patch + y) * width + gx * patch + x]);
      }
      return v;
    });
    if (source === "intensity") {
      const means = vectors.map((v) => mean(v));
      const t = otsu(means);
      return means.map((v) => v > t);
    }
    const scores = firstComponent(vectors);
    const t = otsu(scores);
    const above = scores.map((v) => v > t);
    const aboveCount = above.filter(Boolean).length;
    return aboveCount <= tokens / 2 ? above : above.map((a) => !a); // the smaller side is the foreground
  });
}

/** Otsu's threshold: the split maximising the between-class variance of the values. */
export function otsu(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  let best = sorted[0];
  let bestScore = -1;
  const total = sorted.reduce((a, b) => a + b, 0);
  let left = 0;
  for (let i = 0; i < sorted.length - 1; i++) {
    left += sorted[i];
    const wl = (i + 1) / sorted.length;
    const wr = 1 - wl;
    const ml = left / (i + 1);
    const mr = (total - left) / (sorted.length - i - 1);
    const score = wl * wr * (ml - mr) ** 2;
    if (score > bestScore) {
      bestScore = score;
      best = (sorted[i] + sorted[i + 1]) / 2;
    }
  }
  return best;
}

/** Projections of the (centred) vectors on their first principal component, by power iteration. */
function firstComponent(vectors: number[][]): number[] {
  const d = vectors[0].length;
  const mu = Array.from({ length: d }, (_, j) => mean(vectors.map((v) => v[j])));
  const centred = vectors.map((v) => v.map((x, j) => x - mu[j]));
  let w = Array.from({ length: d }, (_, j) => 1 / Math.sqrt(d) + j * 1e-6);
  for (let it = 0; it < 100; it++) {
    const proj = centred.map((v) => v.reduce((s, x, j) => s + x * w[j], 0));
    const next = Array.from({ length: d }, (_, j) => centred.reduce((s, v, k) => s + v[j] * proj[k], 0));
    const norm = Math.sqrt(next.reduce((s, x) => s + x * x, 0)) || 1;
    w = next.map((x) => x / norm);
  }
  return centred.map((v) => v.reduce((s, x, j) => s + x * w[j], 0));
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
}

function round(v: number): number {
  return Math.round(v * 1e5) / 1e5;
}
