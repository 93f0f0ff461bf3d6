/**
 * The per-unit tax measurement behind `npm run bench:unit-tax` and `npm run bench:overhead` (issue 14, part 4): see
 * bench/unit-tax.ts for what it measures and prints.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { meanOfRuns, median, runsToSpan } from "../src/bench/harness.ts";
import { tablePolicy } from "../src/cache/policies/schedule.ts";
import type { CachePolicy } from "../src/cache/policy.ts";
import { parseCacheSpec } from "../src/cache/registry.ts";
import { classCondition, DEFAULT_MODEL_DIR, requireImage } from "../src/model/manifest.ts";
import { loadPipeline, type Pipeline } from "../src/pipeline.ts";
import type { Segment, TensorStore } from "../src/runtime/segment.ts";
import { writeSmallModels } from "./small-models.ts";
import { syntheticFeeds } from "./synthetic-feeds.ts";

/** Shortest stretch one timing covers (runs repeated back to back until it is filled). */
const TIMING_WINDOW_MS = 300;

export type UnitTaxSummary = Record<string, Record<string, Record<string, number>>>;

/** The shipped model and the two random-weight graphs of bench/small-models.ts (written to a temporary folder). */
export function defaultTaxModels(): string[] {
  const small = writeSmallModels(mkdtempSync(join(tmpdir(), "ditto-small-")));
  return [DEFAULT_MODEL_DIR, small.gray32, small.tokens49];
}

/** Measures each model at batch 1 and 16, printing its tables; returns {"<model>": {"batch1": {…}, …}, …}. */
export async function measureUnitTax(
  paths: string[],
  { repeats, steps, threads }: { repeats: number; steps: number; threads: number },
): Promise<UnitTaxSummary> {
  const summary: UnitTaxSummary = {};
  for (const path of paths) {
    const pipeline = await loadPipeline(path, { session: { intraOpThreads: threads } });
    const m = pipeline.manifest;
    const atoms = pipeline.model.structure.atoms.length;
    console.log(
      `\n## ${m.name}: ${requireImage(m, "unit-tax").channels}×${requireImage(m, "unit-tax").height}×${requireImage(m, "unit-tax").width}, ${atoms} branch units, ${steps} steps, CFG 1, ${threads} thread(s)`,
    );
    summary[m.name] = {};
    for (const batch of [1, 16]) {
      const policies: Record<string, CachePolicy> = {
        none: parseCacheSpec("none"),
        "fbcache:threshold=0": parseCacheSpec("fbcache:threshold=0"),
        "fora:interval=1": parseCacheSpec("fora:interval=1"),
        "schedule (all compute)": tablePolicy(
          Array.from({ length: steps }, () => Array(atoms).fill(1)),
          "all-compute",
        ),
      };
      const seeds = Array.from({ length: batch }, (_, i) => i);
      const n = classCondition(m)?.numClasses ?? 1;
      const request = {
        seeds,
        classes: m.inputs.condition ? seeds.map((i) => i % n) : undefined,
        steps,
        cfg: 1,
        batch,
      };
      const labels = Object.keys(policies);
      const calls: Record<string, number> = {};
      // Each timing is the mean over back-to-back runs spanning about TIMING_WINDOW_MS: on the small graphs one
      // run of 10 steps lasts a few milliseconds, too short to time against a shared machine's load.
      const runs: Record<string, number> = {};
      for (const label of labels) {
        const generate = () => pipeline.generate({ ...request, cache: policies[label] });
        const r = await generate(); // warm sessions
        calls[label] = Object.values(r.reports[0].sessionCalls).reduce((a, b) => a + b, 0) / steps;
        runs[label] = await runsToSpan(TIMING_WINDOW_MS, generate, 1000);
      }
      const times: Record<string, number[]> = Object.fromEntries(labels.map((l) => [l, []]));
      const cpu: Record<string, number[]> = Object.fromEntries(labels.map((l) => [l, []]));
      for (let r = 0; r < repeats; r++) {
        // Rotate the order each repeat so no policy always runs first (or after the same neighbour).
        for (let k = 0; k < labels.length; k++) {
          const label = labels[(k + r) % labels.length];
          const before = process.cpuUsage();
          const w = await meanOfRuns(runs[label], () => pipeline.generate({ ...request, cache: policies[label] }));
          const used = process.cpuUsage(before);
          times[label].push(w.meanMs);
          cpu[label].push((used.user + used.system) / 1000 / w.runs);
        }
      }
      const forward = await forwardBreakdown(pipeline, batch, repeats);
      const row: Record<string, number> = {};
      console.log(`\nbatch ${batch}: uncached ${(median(times.none) / steps).toFixed(2)} ms per step`);
      console.log(
        "| policy | wall: uncached ÷ policy (median) | range | CPU: uncached ÷ policy (median) | range | wall ms per step | CPU ms per step | session calls per step |",
      );
      console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
      const span = (v: number[]) => `${Math.min(...v).toFixed(2)}–${Math.max(...v).toFixed(2)}`;
      for (const label of labels) {
        const ratios = times[label].map((t, i) => times.none[i] / t);
        const cpuRatios = cpu[label].map((t, i) => cpu.none[i] / t);
        row[label] = round(median(ratios));
        row[`${label} (cpu)`] = round(median(cpuRatios));
        console.log(
          `| ${label} | ${median(ratios).toFixed(3)} | ${span(ratios)} | ${median(cpuRatios).toFixed(3)} | ${span(cpuRatios)} | ` +
            `${(median(times[label]) / steps).toFixed(2)} | ${(median(cpu[label]) / steps).toFixed(2)} | ${calls[label].toFixed(1)} |`,
        );
      }
      row.splitOverWhole = round(forward.split / forward.whole);
      row.valuesOutOverPlain = round(forward.stackValues / forward.stackPlain);
      console.log(
        `stack session (CPU ms): plain ${forward.stackPlain.toFixed(2)}, with every branch value as an output ` +
          `${forward.stackValues.toFixed(2)} (÷ plain ${(forward.stackValues / forward.stackPlain).toFixed(3)})`,
      );
      console.log(
        `forward (CPU ms): whole-model session ${forward.whole.toFixed(2)} ms, block-split chain ${forward.split.toFixed(2)} ms ` +
          `(÷ whole ${(forward.split / forward.whole).toFixed(3)}); segments alone: ${forward.parts}`,
      );
      const handOut = forward.stackValues - forward.stackPlain;
      for (const label of labels.slice(1))
        console.log(
          `  ${label}: tax ${((median(cpu[label]) - median(cpu.none)) / steps).toFixed(2)} CPU ms per step over uncached; ` +
            `handing every branch value out of the stack session accounts for ≈ ${handOut.toFixed(2)} of it`,
        );
      summary[m.name][`batch${batch}`] = row;
    }
    await pipeline.release();
  }
  return summary;
}

/** Median ms of one forward as one whole-model session, as the split chain, and per segment of the chain. */
async function forwardBreakdown(pipeline: Pipeline, batch: number, repeats: number) {
  const model = pipeline.model;
  const whole = await model.wholeModel({ fused: true });
  const blocks = await Promise.all(
    model.structure.blocks.map((b) => model.range(b.atoms[0], (b.atoms.at(-1) as number) + 1)),
  );
  const segments: [string, Segment][] = [
    ["embed", await model.embed()],
    ...blocks.map((s, i): [string, Segment] => [`block ${i}`, s]),
    ["head", await model.head()],
  ];
  const classes = classCondition(model.manifest)?.numClasses ?? 1;
  const feeds = syntheticFeeds(
    model.manifest,
    new Int32Array(batch).map((_, i) => i % classes),
  );
  const split = async (store: TensorStore = new Map(Object.entries(feeds))) => {
    for (const [, s] of segments) await s.run(store);
    return store;
  };
  const full = await split(); // every boundary tensor, to time each segment alone
  // CPU time (user + system) of this process: with one thread it is the work, not the wait for a busy core.
  const timesOf = async (fn: () => Promise<unknown>) => {
    const t: number[] = [];
    for (let r = 0; r < Math.max(20, repeats * 4); r++) {
      const before = process.cpuUsage();
      await fn();
      const used = process.cpuUsage(before);
      t.push((used.user + used.system) / 1000);
    }
    return median(t);
  };
  await whole.run(feeds);
  const wholeMs = await timesOf(() => whole.run(feeds));
  const splitMs = await timesOf(() => split());
  // The stack as one session, plain (the uncached path) and with every branch value as an extra output (what an
  // all-compute step of a branch-level policy runs): the difference is the cost of handing every value out.
  const atoms = model.structure.atoms;
  const plain = await model.range(0, atoms.length);
  const withValues = await model.range(
    0,
    atoms.length,
    atoms.map((a) => a.value),
  );
  const stackPlain = await timesOf(() => plain.run(new Map(full)));
  const stackValues = await timesOf(() => withValues.run(new Map(full)));
  const parts: string[] = [];
  for (const [name, s] of segments) parts.push(`${name} ${(await timesOf(() => s.run(new Map(full)))).toFixed(2)}`);
  return { whole: wholeMs, split: splitMs, parts: `${parts.join(", ")} ms`, stackPlain, stackValues };
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}
