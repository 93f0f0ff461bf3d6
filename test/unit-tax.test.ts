/**
 * No per-unit tax (issue 14, part 4), checked by what runs rather than by timing (timing is `npm run
 * bench:unit-tax`): a policy that computes every unit runs the sessions the uncached run runs and hands nothing
 * out; a step that mixes computed and reused units runs as one switched session (onnx/switch.ts).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Tensor } from "onnxruntime-common";
import { tablePolicy } from "../src/cache/policies/schedule.ts";
import { fullSteps } from "../src/cache/policies/taylorseer.ts";
import { blockUnits, type CachePolicy, type Decision, type StepView } from "../src/cache/policy.ts";
import { loadPipeline, type Pipeline } from "../src/pipeline.ts";
import { assertBitIdentical, llamaModel, maxAbsDiff, SHIPPED_MODEL } from "./helpers.ts";

const STEPS = 4;
const OPTS = { classes: [3], seeds: [0], steps: STEPS, cfg: 1 };

/**
 * Session runs per segment name, without the ones that ran no time and without the conditioning table's (built by
 * the first generation on a grid, then kept for the next ones).
 */
function calls(report: { sessionCalls: Record<string, number> }): Record<string, number> {
  return Object.fromEntries(
    Object.entries(report.sessionCalls).filter(([name, n]) => n > 0 && name !== "conditioning"),
  );
}

describe("all-compute policies cost what the uncached run costs", () => {
  let pipeline: Pipeline;
  before(async () => {
    pipeline = await loadPipeline(SHIPPED_MODEL);
  });
  after(() => pipeline.release());

  it("fbcache:threshold=0, fora:interval=1 and an all-compute table run the uncached run's sessions", async () => {
    const base = await pipeline.generate(OPTS);
    const atoms = pipeline.model.structure.atoms.length;
    const allCompute = tablePolicy(
      Array.from({ length: STEPS }, () => new Array(atoms).fill(1)),
      "all-compute",
    );
    for (const cache of ["fbcache:threshold=0", "dbcache:threshold=0", "fora:interval=1", allCompute]) {
      const r = await pipeline.generate({ ...OPTS, cache });
      const name = typeof cache === "string" ? cache : cache.name;
      assertBitIdentical(r.samples, base.samples, name);
      // One stack session per step, no session with extra outputs (no branch value handed out).
      assert.deepEqual(calls(r.reports[0]), calls(base.reports[0]), name);
      assert.equal(r.reports[0].cachePeakBytes, 0, `${name} keeps nothing`);
    }
  });

  it("runs a step mixing computed and reused units as one switched session, as the unit-by-unit path does", async () => {
    const atoms = pipeline.model.structure.atoms.length;
    const half = atoms / 2;
    // Step 0 computes all; step 1 computes the first half and reuses the rest; steps 2–3 reuse everything.
    const table = [
      new Array(atoms).fill(1),
      Array.from({ length: atoms }, (_, u) => (u < half ? 1 : 0)),
      new Array(atoms).fill(0),
      new Array(atoms).fill(0),
    ] as (0 | 1)[][];
    const r = await pipeline.generate({ ...OPTS, cache: tablePolicy(table, "halves") });
    const report = r.reports[0];
    assert.deepEqual(
      report.trace.map((t) => t.decisions),
      ["C".repeat(atoms), "C".repeat(half) + "R".repeat(half), "R".repeat(atoms), "R".repeat(atoms)],
    );
    // Steps 0–1: one switched session each (patch embed, stack, head; step 0 computes all but hands out only the
    // second half, which step 1 reuses); steps 2–3: one skip-step session each. No per-branch session.
    assert.deepEqual(calls(report), { "switched-step+patch": 2, "skip-step": 2 });
    // Every value is read by a later reuse, so every unit is cached: 24 values of [1, 49, 256].
    assert.equal(report.cachePeakBytes, atoms * 49 * 256 * 4);
    const one = await pipeline.generate({ ...OPTS, cache: unplanned(tablePolicy(table, "halves-sequential")) });
    assertBitIdentical(r.samples, one.samples, "switched vs unit by unit");
  });

  it("a table computing all units or none per row equals FORA with the same full steps, as one stacked unit", async () => {
    const atoms = pipeline.model.structure.atoms.length;
    const steps = 8;
    const full = fullSteps(steps, 3, 1);
    const table = Array.from({ length: steps }, (_, s) => new Array(atoms).fill(full.includes(s) ? 1 : 0)) as (
      | 0
      | 1
    )[][];
    const opts = { classes: [1, 7], seeds: [3, 4], steps, cfg: 3 };
    const fora = await pipeline.generate({ ...opts, cache: "fora:interval=3" });
    const synchronous = await pipeline.generate({ ...opts, cache: tablePolicy(table, "synchronous") });
    assertBitIdentical(synchronous.samples, fora.samples, "synchronous table vs FORA");
    const report = synchronous.reports[0];
    assert.deepEqual(
      report.units.map((u) => u.cache),
      ["stacked"],
    );
    assert.deepEqual(calls(report), calls(fora.reports[0]));
    // One column off the beat: back to one unit per branch.
    table[2][5] = 1;
    const scattered = await pipeline.generate({ ...opts, cache: tablePolicy(table, "scattered") });
    assert.equal(scattered.reports[0].units.length, atoms);
  });

  it("a full step whose units are all next read by the same all-reuse steps hands out one joint projection", async () => {
    const atoms = pipeline.model.structure.atoms.length;
    // Full steps 0, 2, 4, 6 each followed by one step reusing everything, as FORA N=2; step 7 mixes.
    const table = Array.from({ length: 8 }, (_, s) =>
      Array.from({ length: atoms }, (_, u) => (s % 2 === 0 || (s === 7 && u % 3 === 0) ? 1 : 0)),
    ) as (0 | 1)[][];
    const opts = { classes: [1, 7], seeds: [3, 4], steps: 8, cfg: 3 };
    const windowed = await pipeline.generate({ ...opts, cache: tablePolicy(table, "windows") });
    // The same table with no readsAt: every full step hands out all 24 values, every reuse step gates and adds them.
    const reference = await pipeline.generate({ ...opts, cache: withoutReads(tablePolicy(table, "per-unit")) });
    const [report] = windowed.reports;
    assert.equal(report.units.length, atoms, "per-branch units (the table has a mixed row)");
    assert.deepEqual(
      report.trace.map((t) => t.decisions),
      reference.reports[0].trace.map((t) => t.decisions),
    );
    const diff = maxAbsDiff(windowed.samples, reference.samples);
    assert.ok(diff <= 1e-5, `max |Δ| = ${diff}`);
    // Guidance as two passes: each pass's state holds its own shares.
    const separate = { ...opts, cfgMode: "separate" as const };
    const twoPasses = await pipeline.generate({ ...separate, cache: tablePolicy(table, "windows, separate") });
    const twoReference = await pipeline.generate({ ...separate, cache: withoutReads(tablePolicy(table, "separate")) });
    assert.ok(maxAbsDiff(twoPasses.samples, twoReference.samples) <= 1e-5, "separate guidance");
    assert.equal(calls(twoPasses.reports[0])["blocks0-11+projected"], 6);
    // Steps 0, 2, 4: the projected stack session then the head; steps 1, 3, 5: one skip-step session each; step 6
    // hands out per-unit values to the mixed step 7 (switched sessions).
    const sessions = calls(report);
    assert.equal(sessions["blocks0-11+projected"], 3, JSON.stringify(sessions));
    assert.equal(sessions["skip-step"], 3, JSON.stringify(sessions));
    // A readsAt promising more than the plan keeps: step 0 hands out one projection for steps 1–2, but step 2 computes
    // some units, so those still holding a share are computed there too.
    const mixed = [table[0], table[1], table[7]];
    const overPromised: CachePolicy = {
      ...tablePolicy(mixed, "over-promised"),
      createState: (ctx) => {
        const state = tablePolicy(mixed, "over-promised").createState(ctx);
        const readsAt = (_u: number, view: StepView) => (view.step === 0 ? [1, 2] : []);
        return Object.assign(Object.create(Object.getPrototypeOf(state)), state, { readsAt });
      },
    };
    const short = { ...opts, steps: 3 };
    const over = await pipeline.generate({ ...short, cache: overPromised });
    assert.deepEqual(
      over.reports[0].trace.map((t) => t.decisions),
      ["C", "R", "C"].map((d) => d.repeat(atoms)),
    );
    const full = mixed.map((row, s) => (s === 2 ? row.map(() => 1) : row)) as (0 | 1)[][];
    const expected = await pipeline.generate({ ...short, cache: withoutReads(tablePolicy(full, "step 2 full")) });
    assert.ok(maxAbsDiff(over.samples, expected.samples) <= 1e-5);
  });
});

describe("switched steps: any mix of computed and reused units in one session", () => {
  for (const [label, path] of [
    ["shipped model", SHIPPED_MODEL],
    ["DiT-Llama test graph", ""],
  ] as const) {
    for (const granularity of ["branch", "block"] as const) {
      it(`${label}, ${granularity} units: a scattered table equals the unit-by-unit path`, async () => {
        const pipeline = await loadPipeline(path || llamaModel());
        const { atoms, blocks } = pipeline.model.structure;
        const count = granularity === "branch" ? atoms.length : blocks.length;
        const steps = 8;
        // A deterministic scatter: every step after the first mixes computed and reused units differently.
        const table = Array.from({ length: steps }, (_, s) =>
          Array.from({ length: count }, (_, u) => (s === 0 || (s * 7 + u * 3) % 5 < 2 ? 1 : 0)),
        ) as (0 | 1)[][];
        const withUnits = (policy: CachePolicy): CachePolicy =>
          granularity === "branch" ? policy : { ...policy, units: blockUnits };
        const opts = { classes: [1, 7], seeds: [3, 4], steps, cfg: 3 };
        const switched = await pipeline.generate({ ...opts, cache: withUnits(tablePolicy(table, "scatter")) });
        const sessions = calls(switched.reports[0]);
        assert.ok((sessions["switched-step+patch"] ?? 0) >= steps - 2, JSON.stringify(sessions));
        const sequential = await pipeline.generate({
          ...opts,
          cache: withUnits(unplanned(tablePolicy(table, "scatter-sequential"))),
        });
        assert.deepEqual(
          switched.reports[0].trace.map((t) => t.decisions),
          sequential.reports[0].trace.map((t) => t.decisions),
        );
        const diff = maxAbsDiff(switched.samples, sequential.samples);
        assert.ok(diff <= 1e-5, `max |Δ| = ${diff}`);
        await pipeline.release();
      });
    }
  }

  it("a reused value holding NaN is recomputed and counted, as in the unit-by-unit path", async () => {
    const pipeline = await loadPipeline(SHIPPED_MODEL);
    const atoms = pipeline.model.structure.atoms.length;
    const table = [new Array(atoms).fill(1), Array.from({ length: atoms }, (_, u) => (u % 2 === 0 ? 1 : 0))] as (
      | 0
      | 1
    )[][];
    const base = tablePolicy(table, "poisoned");
    const poisoned: CachePolicy = {
      ...base,
      createState: (ctx) => {
        const state = base.createState(ctx);
        return Object.assign(Object.create(Object.getPrototypeOf(state)), state, {
          approximate: (unit: number, decision: Decision, view: StepView) => {
            const a = state.approximate(unit, decision, view);
            if (!a || unit !== 5) return a;
            const data = Float32Array.from(a.terms[0].tensor.data as Float32Array);
            data[0] = Number.NaN;
            return { terms: [{ tensor: new Tensor("float32", data, a.terms[0].tensor.dims), coef: 1 }] };
          },
        });
      },
    };
    const r = await pipeline.generate({ ...OPTS, steps: 2, cache: poisoned });
    assert.equal(r.reports[0].nonFiniteFallbacks, 1);
    assert.equal(r.reports[0].trace[1].decisions[5], "N");
    assert.ok(r.samples.every(Number.isFinite));
    await pipeline.release();
  });
});

/** The policy with its states' readsAt hidden (the engine then hands out and adds every unit's own value). */
function withoutReads(policy: CachePolicy): CachePolicy {
  return {
    ...policy,
    createState: (ctx) => {
      const state = policy.createState(ctx);
      return Object.assign(Object.create(Object.getPrototypeOf(state)), state, { readsAt: undefined });
    },
  };
}

/** The same policy with no plan: the engine asks unit by unit and runs each computed unit's own session. */
function unplanned(policy: CachePolicy): CachePolicy {
  return {
    ...policy,
    createState: (ctx) => {
      const state = policy.createState(ctx);
      return {
        decide: state.decide.bind(state),
        update: state.update.bind(state),
        approximate: state.approximate.bind(state),
        bytes: state.bytes.bind(state),
      };
    },
  };
}
