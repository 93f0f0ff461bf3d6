/**
 * `ditto tune`: the fastest cache setting that keeps a quality bar, found by measurement.
 *
 * 1. Calibrate what needs it (TeaCache's polynomial, MagCache's ratio curve) on the calibration seeds.
 * 2. Successive halving (Jamieson & Talwalkar 2016, as in Hyperband) over every searched policy's grid: rung r
 *    scores each survivor's PSNR/SSIM against uncached images on a growing prefix of the calibration seeds
 *    (2, 4, all); after a rung, candidates failing the bar by more than a shrinking margin drop out, and of the rest
 *    at most ⌈n/3⌉ go on — the fastest by ideal speedup, plus the (speed, PSNR) Pareto front.
 * 3. Time the finalists against uncached with interleaved repeats (adjacent U c / c U pairs; median of ratios).
 * 4. Validate in order of measured speedup on held-out seeds: the first setting that meets the bar there wins.
 * The budget is checked between runs; a phase that runs out of time continues with what it has measured.
 * Hand-written (src/tune: this file, select.ts, measure.ts): the search-library candidates on npm are Bayesian optimisers over continuous
 * spaces that cannot use cheap low-fidelity rungs or a measured-time objective.
 */

import { median, round } from "../bench/harness.ts";
import type { CachePolicy } from "../cache/policy.ts";
import { policyFromConfig } from "../cache/registry.ts";
import { InputError, listChoices } from "../errors.ts";
import type { Classifier } from "../metrics/classifier.ts";
import { classCondition, requireImage } from "../model/manifest.ts";
import type { GenerationResult, Pipeline } from "../pipeline.ts";
import { profileMagCache } from "../profiling/magcache.ts";
import { profileTeaCache } from "../profiling/teacache.ts";
import { fidelity, idealOf, kidVsUncached, testSubsetFeatures, timePairs } from "./measure.ts";
import { interleave, label, meets, paretoFront, range, survivors } from "./select.ts";
import { NOT_SEARCHED, type PolicySpace, SEARCH_SPACE } from "./space.ts";

export interface QualityBar {
  minPsnr: number;
  minSsim?: number;
  maxKid?: number;
}

export interface TuneOptions extends QualityBar {
  budgetMs: number;
  steps?: number;
  cfg?: number;
  /** Calibration seeds (search and calibration fits; default 8) and held-out seeds (validation; default 16). */
  calibrationSeeds?: number;
  holdoutSeeds?: number;
  /** Finalists timed (default 6), timing rounds (default 3) and samples per timed run (default 6). */
  timed?: number;
  repeats?: number;
  timingSamples?: number;
  /** Only these policies (default: every searched one). */
  policies?: string[];
  /** A search space of one's own instead of SEARCH_SPACE (small spaces for tests, wider ones for research). */
  space?: readonly PolicySpace[];
  /** For KID on the held-out samples; without it KID is not measured (and --max-kid is refused). */
  classifier?: Classifier;
  onProgress?: (done: number, total: number, note: string) => void;
}

export interface Candidate {
  label: string;
  config: Record<string, unknown>;
  policy: CachePolicy;
  idealSpeedup: number;
  psnr: number;
  ssim: number;
  seeds: number;
  measuredSpeedup?: number;
}

export interface Validation {
  psnr: number;
  ssim: number;
  seeds: number[];
  kid?: { cached: number; uncached: number; uncachedSpread: number; withinSpread: boolean };
  meetsBar: boolean;
}

export interface TuneResult {
  bar: QualityBar;
  steps: number;
  cfg: number;
  evaluated: number;
  /** Pareto front over (speed, calibration PSNR): measured speedup where timed, ideal otherwise. */
  front: Candidate[];
  timed: Candidate[];
  chosen?: Candidate & { holdout: Validation };
  /** Why nothing was chosen, or which closest point was. */
  verdict: string;
  skipped: Record<string, string>;
  calibration: { teacache?: number[]; magcache?: number[]; seconds: number };
  elapsedMs: number;
}

const RUNG_SEEDS = [2, 4, Number.POSITIVE_INFINITY];
const RUNG_MARGIN_DB = [4, 2, 0];

export async function tune(pipeline: Pipeline, options: TuneOptions): Promise<TuneResult> {
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  const m = pipeline.manifest;
  const steps = options.steps ?? m.recommended?.steps ?? 50;
  const cfg = options.cfg ?? m.recommended?.cfgScale ?? 1;
  const bar: QualityBar = { minPsnr: options.minPsnr, minSsim: options.minSsim, maxKid: options.maxKid };
  if (options.maxKid !== undefined && !options.classifier)
    throw new InputError("OPTION_INVALID", "--max-kid needs the evaluation classifier (models/fashion-classifier)");
  const spaces = selectSpaces(options.space ?? SEARCH_SPACE, options.policies);
  const image = requireImage(m, "ditto tune");
  const numClasses = classCondition(m)?.numClasses;
  const sampleSet = (seeds: number[]) => ({
    seeds,
    classes: numClasses ? seeds.map((s) => s % numClasses) : undefined,
    steps,
    cfg,
    batch: seeds.length,
  });
  const calibration = range(1000, options.calibrationSeeds ?? 8);
  const holdout = range(5000, options.holdoutSeeds ?? 16);
  const total = spaces.reduce((a, s) => a + s.settings.length, 0);
  const timedCount = options.timed ?? 6;
  const repeats = options.repeats ?? 3;
  let planned = 2 + Math.ceil(total * (1 + 1 / 3 + 1 / 9)) + timedCount * repeats + 4;
  let done = 0;
  const tick = (note: string) => options.onProgress?.(++done, Math.max(planned, done + 1), note);

  // 1. Calibration of the policies that need it (seconds here; counted against the budget).
  const calStart = performance.now();
  const fits: TuneResult["calibration"] = { seconds: 0 };
  const calOptions = { steps, cfg, items: calibration.length, seed: calibration[0] };
  if (spaces.some((s) => s.needs === "teacache"))
    fits.teacache = (await profileTeaCache(pipeline, calOptions)).coefficients;
  tick("calibrated teacache");
  if (spaces.some((s) => s.needs === "magcache")) fits.magcache = (await profileMagCache(pipeline, calOptions)).ratios;
  tick("calibrated magcache");
  fits.seconds = Math.round((performance.now() - calStart) / 100) / 10;

  // Round-robin over policies, so a budget cut in the first rung still leaves every policy represented.
  let pool: Candidate[] = interleave(
    spaces.map((space) =>
      space.settings.map((setting) => {
        const config: Record<string, unknown> = { policy: space.policy, ...setting };
        if (space.needs === "teacache") config.coefficients = fits.teacache;
        if (space.needs === "magcache") config.ratios = fits.magcache;
        return {
          label: label(space.policy, setting),
          config,
          policy: policyFromConfig(config),
          idealSpeedup: 1,
          psnr: 0,
          ssim: 0,
          seeds: 0,
        };
      }),
    ),
  );

  // 2. Successive halving on the calibration seeds.
  const references = new Map<number, GenerationResult>();
  const referenceFor = async (n: number) => {
    let r = references.get(n);
    if (!r) {
      r = await pipeline.generate(sampleSet(calibration.slice(0, n)));
      references.set(n, r);
    }
    return r;
  };
  let evaluated = 0;
  const searchDeadline = options.budgetMs * 0.7;
  for (const [rung, want] of RUNG_SEEDS.entries()) {
    const n = Math.min(want, calibration.length);
    const reference = await referenceFor(n);
    const scored: Candidate[] = [];
    for (const c of pool) {
      if (elapsed() > searchDeadline && scored.length > 0) break;
      const result = await pipeline.generate({ ...sampleSet(calibration.slice(0, n)), cache: c.policy });
      const q = fidelity(result, reference, image.range);
      scored.push({ ...c, ...q, idealSpeedup: idealOf(result), seeds: n });
      evaluated++;
      tick(`rung ${rung + 1}: ${c.label}`);
    }
    pool = survivors(scored, bar, RUNG_MARGIN_DB[rung], rung === RUNG_SEEDS.length - 1 || n === calibration.length);
    if (n === calibration.length || elapsed() > searchDeadline) break;
  }
  const finalists = pool;

  // 3. Timing: interleaved rounds U c1 … ck U against uncached on the same samples.
  // A setting that skips nothing is the uncached run: never an answer.
  const passing = finalists
    .filter((c) => meets(c, bar) && c.idealSpeedup > 1)
    .sort((a, b) => b.idealSpeedup - a.idealSpeedup);
  const frontFailing = paretoFront(finalists, (c) => c.idealSpeedup).filter((c) => !meets(c, bar));
  const toTime = [...passing.slice(0, timedCount), ...frontFailing.slice(0, 2)];
  const timing = sampleSet(range(10_000, options.timingSamples ?? 6));
  const uncachedPolicy = policyFromConfig({ policy: "none" });
  for (const c of [{ policy: uncachedPolicy }, ...toTime])
    await pipeline.generate({
      ...timing,
      seeds: timing.seeds.slice(0, 1),
      classes: timing.classes?.slice(0, 1),
      cache: c.policy,
    });
  // Re-plan the progress total now that the rungs are done: timing runs, then at most one validation per finalist.
  planned = done + toTime.length * repeats + toTime.length;
  const ratios = await timePairs(pipeline, timing, uncachedPolicy, toTime, {
    repeats,
    deadlineMs: options.budgetMs * 0.85,
    elapsed,
    onPair: (c) => tick(`timing ${c.label}`),
  });
  for (const c of toTime) c.measuredSpeedup = round(median(ratios.get(c) ?? [Number.NaN]), 3);

  // 4. Validation on held-out seeds, fastest measured first.
  const holdoutRef = await pipeline.generate(sampleSet(holdout));
  const refFeatures = options.classifier
    ? await options.classifier.classify(holdoutRef.samples, holdout.length)
    : undefined;
  const testFeatures = options.classifier ? await testSubsetFeatures(options.classifier) : undefined;
  let chosen: TuneResult["chosen"];
  const order = toTime
    .filter((c) => meets(c, bar) && c.idealSpeedup > 1)
    .sort((a, b) => (b.measuredSpeedup ?? 0) - (a.measuredSpeedup ?? 0));
  for (const c of order) {
    const result = await pipeline.generate({ ...sampleSet(holdout), cache: c.policy });
    const q = fidelity(result, holdoutRef, image.range);
    const validation: Validation = { ...q, seeds: holdout, meetsBar: meets(q, bar) };
    if (options.classifier && refFeatures && testFeatures) {
      validation.kid = await kidVsUncached(
        options.classifier,
        result.samples,
        holdout.length,
        refFeatures.features,
        testFeatures,
      );
      if (bar.maxKid !== undefined && validation.kid.cached > bar.maxKid) validation.meetsBar = false;
    }
    tick(`validating ${c.label}`);
    if (validation.meetsBar) {
      chosen = { ...c, holdout: validation };
      break;
    }
  }
  const front = paretoFront(finalists, (c) => c.measuredSpeedup ?? c.idealSpeedup);
  const closest = front.filter((c) => !meets(c, bar)).sort((a, b) => b.psnr - a.psnr)[0];
  const verdict = chosen
    ? `${chosen.label}: ${chosen.measuredSpeedup}× measured, ${round(chosen.holdout.psnr, 2)} dB PSNR on ${holdout.length} held-out seeds`
    : `no searched setting meets the bar on held-out seeds${closest ? `; the closest Pareto point is ${closest.label} (${round(closest.psnr, 2)} dB, ${round(closest.measuredSpeedup ?? closest.idealSpeedup, 2)}×${closest.measuredSpeedup ? "" : " ideal"})` : ""}`;
  const skipped = Object.fromEntries(
    Object.entries(NOT_SEARCHED).filter(([name]) => !options.policies || options.policies.includes(name)),
  );
  return {
    bar,
    steps,
    cfg,
    evaluated,
    front,
    timed: toTime,
    chosen,
    verdict,
    skipped,
    calibration: fits,
    elapsedMs: Math.round(elapsed()),
  };
}

/** The --cache-config object for a tuned setting: the policy's options plus what it was tuned for. */
export function tunedConfig(result: TuneResult): Record<string, unknown> | undefined {
  const c = result.chosen;
  if (!c) return undefined;
  return {
    ...c.config,
    tunedFor: {
      steps: result.steps,
      cfg: result.cfg,
      bar: result.bar,
      measuredSpeedup: c.measuredSpeedup,
      holdout: { psnr: round(c.holdout.psnr, 2), ssim: round(c.holdout.ssim, 4), kid: c.holdout.kid },
    },
  };
}

function selectSpaces(space: readonly PolicySpace[], policies?: string[]) {
  if (!policies) return space;
  const known = space.map((s) => s.policy);
  for (const p of policies) {
    if (!known.includes(p)) {
      const why = NOT_SEARCHED[p] ? ` (${p} is not searched: ${NOT_SEARCHED[p]})` : "";
      throw new InputError("OPTION_INVALID", `--policies: cannot tune '${p}'${why}; choose ${listChoices(known)}`);
    }
  }
  return space.filter((s) => policies.includes(s.policy));
}
