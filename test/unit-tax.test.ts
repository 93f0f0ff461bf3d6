/**
 * No per-unit tax (issue 14, part 4), checked by what runs rather than by timing (timing is `npm run
 * bench:unit-tax`): a policy that computes every unit runs the sessions the uncached run runs and hands nothing
 * out; a step whose plan computes a run of consecutive units runs them as one session.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { tablePolicy } from "../src/cache/policies/schedule.ts";
import { loadPipeline, type Pipeline } from "../src/pipeline.ts";
import { assertBitIdentical, SHIPPED_MODEL } from "./helpers.ts";

const STEPS = 4;
const OPTS = { classes: [3], seeds: [0], steps: STEPS, cfg: 1 };

/** Session runs per segment name, without the ones that ran no time. */
function calls(report: { sessionCalls: Record<string, number> }): Record<string, number> {
  return Object.fromEntries(Object.entries(report.sessionCalls).filter(([, n]) => n > 0));
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

  it("runs consecutive computed units as one session and hands out only the values a later step reads", async () => {
    const atoms = pipeline.model.structure.atoms.length;
    const half = atoms / 2;
    // Step 0 computes all; step 1 computes the first half and reuses the rest; steps 2–3 reuse everything.
    const table = [
      new Array(atoms).fill(1),
      Array.from({ length: atoms }, (_, u) => (u < half ? 1 : 0)),
      new Array(atoms).fill(0),
      new Array(atoms).fill(0),
    ] as (0 | 1)[][];
    // A run of computed units gets its session once its shape recurs (engine.ts, groupSegment): the same policy
    // object keeps its engine, so a second generation runs every shape grouped.
    const halves = tablePolicy(table, "halves");
    await pipeline.generate({ ...OPTS, cache: halves });
    const r = await pipeline.generate({ ...OPTS, cache: halves });
    const report = r.reports[0];
    assert.deepEqual(
      report.trace.map((t) => t.decisions),
      ["C".repeat(atoms), "C".repeat(half) + "R".repeat(half), "R".repeat(atoms), "R".repeat(atoms)],
    );
    const sessions = calls(report);
    const unitSessions = Object.keys(sessions).filter((n) => n.startsWith("block"));
    // Step 0: one session over the whole stack; step 1: one over the first half. No per-branch sessions.
    assert.deepEqual(unitSessions.sort(), ["blocks0-11+outputs", "blocks0-5+outputs"]);
    assert.equal(sessions["blocks0-11+outputs"], 1);
    assert.equal(sessions["blocks0-5+outputs"], 1);
    // Every value is read by a later reuse, so every unit is cached: 24 values of [1, 49, 256].
    assert.equal(report.cachePeakBytes, atoms * 49 * 256 * 4);
    // The same table run unit by unit (no plan) gives the same image.
    const sequential = tablePolicy(table, "halves-sequential");
    const unplanned = {
      ...sequential,
      createState: (ctx: Parameters<typeof sequential.createState>[0]) => {
        const state = sequential.createState(ctx);
        return {
          decide: state.decide.bind(state),
          update: state.update.bind(state),
          approximate: state.approximate.bind(state),
          bytes: state.bytes.bind(state),
        };
      },
    };
    const one = await pipeline.generate({ ...OPTS, cache: unplanned });
    assertBitIdentical(r.samples, one.samples, "grouped vs unit by unit");
  });
});
