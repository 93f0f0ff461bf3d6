/** What `ditto tune` measures: fidelity, ideal speedup, paired wall-time ratios and held-out KID. */

import { round } from "../bench/harness.ts";
import type { CachePolicy } from "../cache/policy.ts";
import { toUnitRange } from "../image/png.ts";
import type { Classifier } from "../metrics/classifier.ts";
import { psnr, ssim } from "../metrics/fidelity.ts";
import { kidWithSpread, rmsScale } from "../metrics/kid.ts";
import type { GenerationResult, Pipeline } from "../pipeline.ts";
import type { Candidate, Validation } from "./tune.ts";

/**
 * Wall-time ratios uncached ÷ cached from adjacent pairs, the order alternating between rounds so load drift
 * cancels. Later rounds run only while a pair (its cost known after the first) still fits before the deadline.
 */
export async function timePairs(
  pipeline: Pipeline,
  timing: Parameters<Pipeline["generate"]>[0],
  uncached: CachePolicy,
  candidates: Candidate[],
  o: { repeats: number; deadlineMs: number; elapsed: () => number; onPair: (c: Candidate) => void },
): Promise<Map<Candidate, number[]>> {
  const ratios = new Map<Candidate, number[]>(candidates.map((c) => [c, []]));
  const wall = async (policy: CachePolicy) => (await pipeline.generate({ ...timing, cache: policy })).wallMs;
  let pairMs = 0;
  for (let r = 0; r < o.repeats; r++) {
    for (const c of candidates) {
      if (r > 0 && o.elapsed() + pairMs > o.deadlineMs) return ratios;
      const start = performance.now();
      const first = await wall(r % 2 === 0 ? uncached : c.policy);
      const second = await wall(r % 2 === 0 ? c.policy : uncached);
      ratios.get(c)?.push(r % 2 === 0 ? first / second : second / first);
      pairMs = Math.max(pairMs, performance.now() - start);
      o.onPair(c);
    }
  }
  return ratios;
}

/** KID of cached and uncached held-out samples against the classifier's test subset, with the uncached spread. */
export async function kidVsUncached(
  classifier: Classifier,
  samples: Float32Array,
  count: number,
  uncachedFeatures: Float32Array,
  testFeatures: Float32Array,
): Promise<NonNullable<Validation["kid"]>> {
  const out = await classifier.classify(samples, count);
  const scale = rmsScale(testFeatures);
  const cached = kidWithSpread(out.features, testFeatures, out.featureDim, scale);
  const uncached = kidWithSpread(uncachedFeatures, testFeatures, out.featureDim, scale);
  return {
    cached: round(cached.mean, 5),
    uncached: round(uncached.mean, 5),
    uncachedSpread: round(uncached.std, 5),
    withinSpread: cached.mean <= uncached.mean + uncached.std,
  };
}

export function fidelity(result: GenerationResult, reference: GenerationResult, range: [number, number]) {
  const [count, channels, height, width] = result.dims;
  const img = (r: GenerationResult) => ({ data: toUnitRange(r.samples, range), count, channels, height, width });
  return { psnr: psnr(img(result), img(reference)), ssim: ssim(img(result), img(reference)) };
}

export async function testSubsetFeatures(classifier: Classifier): Promise<Float32Array> {
  const subset = await classifier.testSubset();
  return (await classifier.classify(subset.images, subset.count)).features;
}

export function idealOf(result: GenerationResult): number {
  const full = result.reports.reduce((a, r) => a + r.flopsFull, 0);
  const doneFlops = result.reports.reduce((a, r) => a + r.flopsDone, 0);
  return round(full / doneFlops, 3);
}
