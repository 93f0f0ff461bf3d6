/**
 * ERTACache's offline stage (shared/specs/ertacache.md, "Offline stage"): P uncached calibration runs record each
 * step's stack residual r_s = h_L − h_0 and guided velocity v_s; the reuse-error matrix E[j][i] gives, by a
 * greedy walk, the reuse set for a threshold λ (or a target number of computed steps); then, teacher-forced on
 * the recorded trajectory, each reuse step's φ and per-channel rectification (a, b) are fitted in closed form.
 */

import { Tensor } from "onnxruntime-common";
import type { ErtaCacheArtifact } from "../cache/policies/ertacache.ts";
import { channelLayout, type PhiMode } from "../cache/policies/ertacache.ts";
import { sampleShape } from "../model/manifest.ts";
import type { Pipeline } from "../pipeline.ts";
import { defaultCondition, feedsFor } from "../runtime/model-inputs.ts";
import type { TensorStore } from "../runtime/segment.ts";
import { guideBatched, usesGuidance } from "../sampling/denoise.ts";
import { createSampler, type Sampler } from "../sampling/samplers.ts";
import { makeHeader } from "./artifact.ts";
import { type CalibrationOptions, calibrationContext, calibrationSet, record } from "./calibration.ts";

const EPS = 1e-8;

export interface ErtaProfileOptions extends CalibrationOptions {
  /** Thresholds λ to derive artifacts for (one recording serves all). */
  lambdas?: number[];
  /** Alternatively: numbers of computed steps to hit (λ found by bisection). */
  computedSteps?: number[];
  forceLast?: boolean;
  phiMin?: number;
  granularity?: "channel" | "tensor";
  /**
   * How φ is estimated (see `PhiMode`): "endpoint" (default) picks the step length whose cached update lands
   * closest to the true update; "notes" and "norm" are the two ratio forms the secondary sources print.
   */
  phiMode?: PhiMode;
  /** Upper clip for an "endpoint" φ (default 1, the paper's range; > 1 lengthens a reuse step). */
  phiMax?: number;
}

interface Recording {
  /** Per step: h_0 and r = h_L − h_0 over all batch rows (both CFG halves), the sample x, the guided v. */
  h0: Float32Array[];
  r: Float32Array[];
  x: Float32Array[];
  v: Float32Array[];
  times: number[];
  rows: number;
}

export async function profileErtaCache(
  pipeline: Pipeline,
  options: ErtaProfileOptions = {},
): Promise<ErtaCacheArtifact[]> {
  const set = calibrationSet(pipeline, options, 20);
  const model = pipeline.model;
  const atoms = model.structure.atoms;
  const h0Name = atoms[0].streamIn;
  const hLName = atoms[atoms.length - 1].streamOut;
  const m = pipeline.manifest;
  const rec: Recording = { h0: [], r: [], x: [], v: [], times: [], rows: 0 };
  const guided = usesGuidance({ cfgScale: set.cfg, classes: set.classes });
  // With separate CFG passes the cond and uncond evaluations of a step arrive one after the other: join them into
  // the batched layout [cond rows; uncond rows] so every later statistic is the same in both modes.
  let pending: { h0: Float32Array; hL: Float32Array; out: Float32Array; sample: Float32Array } | undefined;
  await record(
    pipeline,
    set,
    (event) => {
      const get = (name: string) => event.store.get(name)?.data as Float32Array;
      let part = { h0: get(h0Name), hL: get(hLName), out: get(m.output.name), sample: get(m.inputs.sample.name) };
      if (event.pass === "cond") {
        pending = part;
        return;
      }
      if (event.pass === "uncond" && pending) {
        const join = (a: Float32Array, b: Float32Array) => {
          const out = new Float32Array(a.length + b.length);
          out.set(a);
          out.set(b, a.length);
          return out;
        };
        part = {
          h0: join(pending.h0, part.h0),
          hL: join(pending.hL, part.hL),
          out: join(pending.out, part.out),
          sample: join(pending.sample, part.sample),
        };
        pending = undefined;
      }
      rec.h0.push(part.h0);
      rec.r.push(part.hL.map((v, i) => v - part.h0[i]));
      rec.rows = (event.store.get(h0Name) as Tensor).dims[0] * (event.pass === "uncond" ? 2 : 1);
      const half = guided ? part.sample.length / 2 : part.sample.length;
      rec.x.push(part.sample.slice(0, half));
      rec.v.push(guided ? guideBatched(part.out, set.cfg) : part.out.slice());
      rec.times.push(event.time);
    },
    options,
  );
  const E = reuseErrorMatrix(rec);
  const forceLast = options.forceLast ?? true;
  const targets = [
    ...(options.lambdas ?? []).map((lambda) => ({ lambda, walk: greedyReuse(E, lambda, forceLast) })),
    ...(options.computedSteps ?? []).map((n) => lambdaForComputed(E, n, forceLast)),
  ];
  if (targets.length === 0) targets.push({ lambda: 0.1, walk: greedyReuse(E, 0.1, forceLast) });
  const ctx = await calibrationContext(pipeline, set);
  const header = makeHeader(
    "ertacache",
    ctx,
    "stack",
    { seeds: set.seeds, conditions: set.classes ?? [], batch: set.seeds.length },
    "profile --method ertacache",
  );
  const artifacts: ErtaCacheArtifact[] = [];
  for (const { lambda, walk } of targets) {
    const { src, phi, phiRect, a, b } = await teacherForced(
      pipeline,
      set,
      rec,
      walk.reuse,
      options.phiMin ?? 0,
      options.granularity ?? "channel",
      options.phiMode ?? "norm",
      options.phiMax ?? 1,
    );
    artifacts.push({
      ...header,
      lambda,
      reuse: walk.reuse,
      src,
      phi,
      phiRect,
      phiMode: options.phiMode ?? "norm",
      rect: { granularity: options.granularity ?? "channel", a, b },
      E: E.map((row) => row.map((v) => Math.round(v * 1e6) / 1e6)),
      calibration: { ...header.calibration, P: set.seeds.length },
    });
  }
  return artifacts;
}

/** E[j][i] = mean over rows of ‖r_j − r_i‖₁ / max(‖r_i‖₁, eps), for j < i (rows: items × CFG branches). */
export function reuseErrorMatrix(rec: Pick<Recording, "r" | "rows">): number[][] {
  const S = rec.r.length;
  const per = rec.r[0].length / rec.rows;
  const E = Array.from({ length: S }, () => new Array(S).fill(0));
  for (let i = 1; i < S; i++) {
    const ri = rec.r[i];
    const norms = new Float64Array(rec.rows);
    for (let row = 0; row < rec.rows; row++)
      for (let k = row * per; k < (row + 1) * per; k++) norms[row] += Math.abs(ri[k]);
    for (let j = 0; j < i; j++) {
      const rj = rec.r[j];
      let sum = 0;
      for (let row = 0; row < rec.rows; row++) {
        let d = 0;
        for (let k = row * per; k < (row + 1) * per; k++) d += Math.abs(rj[k] - ri[k]);
        sum += d / Math.max(norms[row], EPS);
      }
      E[j][i] = sum / rec.rows;
    }
  }
  return E;
}

/** The greedy walk: reuse step i while E[src][i] < λ, else compute it and make it the new source. */
export function greedyReuse(E: number[][], lambda: number, forceLast: boolean): { reuse: boolean[]; src: number[] } {
  const S = E.length;
  const reuse = new Array(S).fill(false);
  const src = new Array(S).fill(0);
  let source = 0;
  for (let i = 1; i < S; i++) {
    const last = forceLast && i === S - 1;
    if (!last && E[source][i] < lambda) {
      reuse[i] = true;
      src[i] = source;
    } else {
      source = i;
      src[i] = i;
    }
  }
  return { reuse, src };
}

/** The smallest λ whose walk computes at most n steps (bisection over λ; computed steps fall as λ grows). */
export function lambdaForComputed(E: number[][], n: number, forceLast: boolean) {
  const computed = (l: number) => greedyReuse(E, l, forceLast).reuse.filter((r) => !r).length;
  let lo = 0;
  let hi = 1;
  while (computed(hi) > n && hi < 1e6) hi *= 2;
  for (let k = 0; k < 60; k++) {
    const mid = (lo + hi) / 2;
    if (computed(mid) > n) lo = mid;
    else hi = mid;
  }
  return { lambda: hi, walk: greedyReuse(E, hi, forceLast) };
}

/**
 * Teacher-forced statistics of each reuse step i (on the recorded x_i, with the residual of its source step):
 * ṽ_i = guided Head(h_0(x_i) + r_src); ε = ṽ − v fitted per channel as ε ≈ a·ṽ + b (least squares over items and
 * positions); φ_i by `phiMode`, once on ṽ (`phi`, for rectify=false) and once on the rectified v̂ (`phiRect`).
 */
async function teacherForced(
  pipeline: Pipeline,
  set: ReturnType<typeof calibrationSet>,
  rec: Recording,
  reuse: boolean[],
  phiMin: number,
  granularity: "channel" | "tensor",
  phiMode: PhiMode,
  phiMax: number,
) {
  const model = pipeline.model;
  const m = pipeline.manifest;
  const atoms = model.structure.atoms;
  const embed = await model.embed();
  const head = await model.head();
  const S = reuse.length;
  const shape = sampleShape(m);
  const layout = channelLayout(shape, m.image !== undefined && (m.inputs.sample.kind ?? "image") === "image");
  const C = granularity === "channel" ? layout.channels : 1;
  const channelOf = granularity === "channel" ? layout.channelOf : () => 0;
  const items = set.seeds.length;
  const perItem = shape.reduce((x, y) => x * y, 1);
  const sampler = createSampler(m, { steps: S, shift: set.shift, kind: set.sampler });
  const phi = new Array(S).fill(1);
  const phiRect = new Array(S).fill(1);
  const a = Array.from({ length: S }, () => new Array(C).fill(0));
  const b = Array.from({ length: S }, () => new Array(C).fill(0));
  const src = new Array(S).fill(0);
  let source = 0;
  const guided = usesGuidance({ cfgScale: set.cfg, classes: set.classes });
  for (let i = 0; i < S; i++) {
    if (!reuse[i]) {
      source = i;
      src[i] = i;
      continue;
    }
    src[i] = source;
    const x = rec.x[i];
    const rows = guided ? 2 : 1;
    const sample = new Float32Array(x.length * rows);
    for (let k = 0; k < rows; k++) sample.set(x, k * x.length);
    const classes = set.classes
      ? Int32Array.from(guided ? [...set.classes, ...set.classes.map(() => defaultCondition(m))] : set.classes)
      : undefined;
    const store: TensorStore = new Map(
      Object.entries(
        feedsFor(m, {
          sample: new Tensor("float32", sample, [items * rows, ...shape]),
          time: new Float64Array(items * rows).fill(rec.times[i]),
          condition: classes,
          observation: set.observations,
        }),
      ),
    );
    await embed.run(store);
    const h0 = store.get(atoms[0].streamIn) as Tensor;
    const h0d = h0.data as Float32Array;
    const r = rec.r[source];
    store.set(
      atoms[atoms.length - 1].streamOut,
      new Tensor(
        "float32",
        h0d.map((v, k) => v + r[k]),
        h0.dims,
      ),
    );
    await head.run(store);
    const out = store.get(m.output.name)?.data as Float32Array;
    const vt = guided ? guideBatched(out, set.cfg) : out;
    const v = rec.v[i];
    for (let c = 0; c < C; c++) {
      const [ac, bc] = fitAffineError(vt, v, (k) => channelOf(k) === c);
      a[i][c] = ac;
      b[i][c] = bc;
    }
    const rectified = vt.map((value, k) => value - (a[i][channelOf(k)] * value + b[i][channelOf(k)]));
    const estimate = (approx: Float32Array) => {
      if (phiMode === "endpoint") {
        return endpointPhi(sampler, x, approx, v, sampler.times[i], sampler.times[i + 1], phiMin, phiMax);
      }
      let sum = 0;
      for (let p = 0; p < items; p++) {
        const range = (t: Float32Array) => t.subarray(p * perItem, (p + 1) * perItem);
        sum += phiFactor(range(approx), range(v), phiMode === "norm" ? undefined : range(rec.v[i - 1]), phiMin);
      }
      return sum / items;
    };
    phi[i] = estimate(vt);
    phiRect[i] = estimate(rectified);
  }
  return { src, phi, phiRect, a, b };
}

/**
 * φ ∈ [φ_min, 1] whose shortened step with the cached output lands closest (least squares over all items) to the
 * full step with the true output: argmin_φ ‖update(x, ṽ, t, t + φΔ) − update(x, v, t, t + Δ)‖². This is the
 * per-step remedy for the paper's step-amplification error (δ = Σ Δt_k·ε_k). Under Euler it is the projection
 * ⟨ṽ, v⟩/‖ṽ‖² clipped; under DDIM the same criterion is searched on a grid of 1/200 (ᾱ is interpolated between
 * train steps by the sampler).
 */
export function endpointPhi(
  sampler: Pick<Sampler, "update" | "stochastic">,
  x: Float32Array,
  approx: Float32Array,
  v: Float32Array,
  t: number,
  tNext: number,
  phiMin = 0,
  phiMax = 1,
): number {
  const zero = sampler.stochastic ? new Float32Array(x.length) : undefined;
  const target = sampler.update(x, v, t, tNext, zero);
  let best = 1;
  let bestErr = Number.POSITIVE_INFINITY;
  const grid = 200;
  for (let g = Math.round(phiMax * grid); g >= 0; g--) {
    const f = g / grid;
    if (f < phiMin) break;
    const y = sampler.update(x, approx, t, t + f * (tNext - t), zero);
    let err = 0;
    for (let k = 0; k < y.length; k++) err += (y[k] - target[k]) ** 2;
    if (err < bestErr) {
      bestErr = err;
      best = f;
    }
  }
  return best;
}

/**
 * φ = clip(1 − ‖ṽ − v‖₁ / max(‖v − v_prev‖₁, eps), φ_min, 1) for one item ("notes" form); without `vPrev` the
 * denominator is ‖v‖₁ ("norm" form, the other secondary source).
 */
export function phiFactor(
  vt: ArrayLike<number>,
  v: ArrayLike<number>,
  vPrev: ArrayLike<number> | undefined,
  phiMin = 0,
): number {
  let err = 0;
  let move = 0;
  for (let k = 0; k < v.length; k++) {
    err += Math.abs(vt[k] - v[k]);
    move += Math.abs(vPrev ? v[k] - vPrev[k] : v[k]);
  }
  return Math.min(1, Math.max(phiMin, 1 - err / Math.max(move, EPS)));
}

/** Least squares ε ≈ a·ṽ + b with ε = ṽ − v, over the elements `include` selects: a = Cov(ṽ, ε)/Var(ṽ). */
export function fitAffineError(
  vt: ArrayLike<number>,
  v: ArrayLike<number>,
  include: (k: number) => boolean = () => true,
): [number, number] {
  let n = 0;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  for (let k = 0; k < vt.length; k++) {
    if (!include(k)) continue;
    const e = vt[k] - v[k];
    n++;
    sx += vt[k];
    sy += e;
    sxx += vt[k] * vt[k];
    sxy += vt[k] * e;
  }
  const varX = sxx / n - (sx / n) ** 2;
  const a = varX > EPS ? (sxy / n - (sx / n) * (sy / n)) / varX : 0;
  return [a, sy / n - a * (sx / n)];
}
