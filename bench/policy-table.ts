/**
 * `npm run bench:policy`: BAC in its home setting — closed-loop task success of the shipped diffusion policy under
 * every cache method at matched compute, for DDPM-100 and DDIM-20 (issue 17). Writes, row by row as they finish,
 * bench/results/policy/table.json and table.md, and the BAC artifacts it calibrates next to them.
 *
 * Matched compute: BAC's measured computed fraction f (ACS + Bubbling Union) sets every baseline's budget — the
 * ACS / unified / uniform tables are re-profiled with M' = round(f·K) update steps, FORA and TaylorSeer refresh
 * every round(1/f) steps. FBCache/TeaCache decide online; their fraction is reported as it comes out.
 *
 * Env: EPISODES (200), SAMPLERS ("ddpm:100:10,ddim:20:6" = kind:steps:BAC M), THREADS (1), COMPARE_EVERY (1),
 * ONLY (row labels).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { computedFraction } from "../src/cache/policies/schedule.ts";
import { calibrationObservations } from "../src/control/calibration.ts";
import { type RolloutResult, rollout } from "../src/control/rollout.ts";
import { loadPipeline } from "../src/pipeline.ts";
import { writeArtifact } from "../src/profiling/artifact.ts";
import { profileBac } from "../src/profiling/bac.ts";
import { profileTeaCache } from "../src/profiling/teacache.ts";
import type { SamplerKind } from "../src/sampling/samplers.ts";

const dir = join(import.meta.dirname, "results/policy");
const model = join(import.meta.dirname, "../models/reach-policy");
const episodes = Number(process.env.EPISODES ?? 200);
const samplers = (process.env.SAMPLERS ?? "ddpm:100:10,ddim:20:6").split(",").map((s) => {
  const [kind, steps, M] = s.split(":");
  return { kind: kind as SamplerKind, steps: Number(steps), M: Number(M) };
});
const only = process.env.ONLY?.split(",");
// COMPARE_EVERY=3 samples the uncached reference on every 3rd re-plan only (the first, full batch included), for a
// cheaper run; the committed table compared every re-plan (the default, 1).
const compareEvery = Number(process.env.COMPARE_EVERY ?? 1);
const pipeline = await loadPipeline(model, { session: { intraOpThreads: Number(process.env.THREADS ?? 1) } });

interface Row {
  sampler: string;
  label: string;
  spec: string;
  success: number;
  interval: [number, number];
  collision: number;
  timeout: number;
  actionMse: number | null;
  computedFraction: number;
  idealSpeedup: number;
  measuredSpeedup: number | null;
  msPerChunk: number;
  uncachedMsPerChunk: number | null;
  seconds: number;
}
const rows: Row[] = [];

function save(): void {
  writeFileSync(join(dir, "table.json"), `${JSON.stringify({ episodes, rows }, null, 1)}\n`);
  const pct = (v: number) => (v * 100).toFixed(1);
  const lines = [
    "| sampler | setting | success % [95 % CI] | collision % | action MSE | computed | ideal × | measured × |",
    "|---|---|---|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.sampler} | ${r.label} | ${pct(r.success)} [${pct(r.interval[0])}, ${pct(r.interval[1])}] | ${pct(r.collision)} | ${r.actionMse === null ? "–" : r.actionMse.toExponential(2)} | ${pct(r.computedFraction)} % | ${r.idealSpeedup.toFixed(2)} | ${r.measuredSpeedup === null ? "1.00" : r.measuredSpeedup.toFixed(2)} |`,
    ),
  ];
  writeFileSync(join(dir, "table.md"), `${lines.join("\n")}\n`);
}

async function run(sampler: { kind: SamplerKind; steps: number }, label: string, spec: string): Promise<void> {
  if (only && !only.includes(label)) return;
  const started = performance.now();
  const r: RolloutResult = await rollout(pipeline, {
    episodes,
    sampler: sampler.kind,
    steps: sampler.steps,
    cache: spec,
    compareEvery,
  });
  const seconds = (performance.now() - started) / 1000;
  rows.push({
    sampler: `${sampler.kind}-${sampler.steps}`,
    label,
    spec,
    success: r.success.rate,
    interval: r.success.interval,
    collision: r.collision.rate,
    timeout: r.timeout.rate,
    actionMse: r.actionMse,
    computedFraction: r.computedFraction,
    idealSpeedup: r.idealSpeedup,
    measuredSpeedup: r.measuredSpeedup,
    msPerChunk: r.msPerChunk,
    uncachedMsPerChunk: r.uncachedMsPerChunk,
    seconds,
  });
  save();
  const last = rows[rows.length - 1];
  console.log(
    `${last.sampler} ${label}: success ${(last.success * 100).toFixed(1)} %, MSE ${last.actionMse?.toExponential(2) ?? "-"}, computed ${(last.computedFraction * 100).toFixed(1)} %, measured ${last.measuredSpeedup?.toFixed(2) ?? "1"}× (ideal ${last.idealSpeedup.toFixed(2)}×), ${seconds.toFixed(0)} s`,
  );
}

// Core rows for every sampler first, the extras after: partial results stay a usable table.
const plans: {
  s: (typeof samplers)[number];
  bacFile: string;
  matchedFile: string;
  matchedM: number;
  interval: number;
  teaFile: string;
  calib: object;
}[] = [];
for (const s of samplers) {
  const tag = `${s.kind}${s.steps}`;
  const K = s.steps;
  const observations = await calibrationObservations(pipeline, { count: 8, sampler: s.kind, steps: K });
  const calib = { steps: K, sampler: s.kind, observations };
  const bacFile = join(dir, `bac-${tag}-M${s.M}.json`);
  const bac = await profileBac(pipeline, { ...calib, budget: s.M });
  writeArtifact(bacFile, bac);
  const f = computedFraction(bac.m);
  const matchedM = Math.max(2, Math.round(f * K));
  const matchedFile = join(dir, `bac-${tag}-M${matchedM}.json`);
  writeArtifact(matchedFile, await profileBac(pipeline, { ...calib, budget: matchedM }));
  const interval = Math.max(2, Math.round(1 / f));
  console.log(
    `${tag}: BAC M ${s.M} computes ${(f * 100).toFixed(1)} % (promoted ${bac.promoted.join(", ")}); matched M' ${matchedM}, interval ${interval}`,
  );
  const plan = { s, bacFile, matchedFile, matchedM, interval, teaFile: join(dir, `teacache-${tag}.json`), calib };
  plans.push(plan);
  await run(s, "uncached", "none");
  await run(s, `BAC (M ${s.M})`, `bac:artifact=${bacFile}`);
  await run(s, `BAC w/o BU (ACS, M' ${matchedM})`, `bac:artifact=${matchedFile},table=acs`);
  await run(s, `shared similarity schedule (M' ${matchedM})`, `bac:artifact=${matchedFile},table=unified`);
  await run(s, `uniform per-unit intervals (M' ${matchedM})`, `bac:artifact=${matchedFile},table=uniform`);
  await run(s, `staggered uniform intervals (M' ${matchedM})`, `bac:artifact=${matchedFile},table=staggered`);
  await run(s, `FORA (interval ${interval})`, `fora:interval=${interval}`);
  await run(s, `TaylorSeer (interval ${interval}, order 1)`, `taylorseer:interval=${interval},order=1`);
}
for (const { s, bacFile, teaFile, calib } of plans) {
  await run(s, `BAC w/o BU (ACS, same M ${s.M})`, `bac:artifact=${bacFile},table=acs`);
  await run(s, "FBCache (δ 0.1)", "fbcache:threshold=0.1");
  writeArtifact(teaFile, await profileTeaCache(pipeline, calib));
  await run(s, "TeaCache (δ 0.3)", `teacache:calibration=${teaFile},threshold=0.3`);
}
await pipeline.release();
