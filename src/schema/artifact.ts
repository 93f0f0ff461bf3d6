/**
 * Calibration artifacts' schemas: the common header and each method's payload, with the lengths that must agree
 * with the header's step count and block count (a reuse table cut short, a number turned into a string or a
 * missing field is refused when the artifact is read, before any generation).
 */
import { z } from "zod";

const finite = z.number({ error: "must be a finite number" });
const step = z.int().min(0);
const bit = z.union([z.literal(0), z.literal(1)], { error: "must be 0 or 1" });

export const artifactHeaderSchema = z.looseObject({
  format: z.string(),
  model: z.looseObject({
    sha256: z.string().regex(/^[0-9a-f]{64}$/, { error: "must be the model's SHA-256 (64 hex digits)" }),
    blocks: z.int().min(1),
    granularity: z.enum(["stack", "block", "branch"]),
  }),
  sampler: z.looseObject({
    kind: z.string().min(1),
    steps: z.int().min(1).max(10_000),
    shift: finite,
    cfgScale: finite,
    cfgMode: z.string().min(1),
  }),
  shape: z.looseObject({ batch: z.int().min(1), tokens: z.int().min(1), hidden: z.int().min(1) }),
  calibration: z.looseObject({ seeds: z.array(z.int()), conditions: z.array(z.int()) }),
  createdBy: z.string(),
  /** The `--set` values the artifact was made with, repeated in the recalibration hint. */
  set: z.record(z.string(), z.string()).optional(),
});

type Header = z.output<typeof artifactHeaderSchema>;
type Check = z.core.ParsePayload<Header & Record<string, unknown>>;

/** Adds an issue unless `list` has exactly `length` entries. */
function expectLength(ctx: Check, path: PropertyKey[], list: unknown, length: number, what: string): void {
  if (Array.isArray(list) && list.length !== length) {
    ctx.issues.push({
      code: "custom",
      path,
      input: list,
      message: `has ${list.length} entries but must have ${length} (${what})`,
    });
  }
}

function expectBelow(ctx: Check, path: PropertyKey[], list: unknown, bound: number, what: string): void {
  if (!Array.isArray(list)) return;
  const i = list.findIndex((v) => typeof v === "number" && v >= bound);
  if (i >= 0) {
    ctx.issues.push({ code: "custom", path: [...path, i], input: list[i], message: `must be < ${bound} (${what})` });
  }
}

export const teacacheArtifactSchema = artifactHeaderSchema.extend({
  signal: z.string(),
  coefficients: z.array(finite).min(1).max(16),
  fit: z.looseObject({ r2: finite, pairs: z.int().min(0), xRange: z.tuple([finite, finite]) }),
  samples: z.array(z.tuple([finite, finite])),
});

export const ertacacheArtifactSchema = artifactHeaderSchema
  .extend({
    lambda: finite,
    reuse: z.array(z.boolean()),
    src: z.array(step),
    phi: z.array(finite.min(0).max(2)),
    phiRect: z.array(finite.min(0).max(2)).optional(),
    phiMode: z.enum(["endpoint", "notes", "norm"]).optional(),
    rect: z.looseObject({
      granularity: z.enum(["channel", "tensor"]),
      a: z.array(z.array(finite).min(1)),
      b: z.array(z.array(finite).min(1)),
    }),
    E: z.array(z.array(finite)),
    calibration: artifactHeaderSchema.shape.calibration.extend({ P: z.int().min(1) }),
  })
  .check((ctx) => {
    const v = ctx.value;
    const steps = v.sampler.steps;
    const one = "one per sampling step";
    expectLength(ctx, ["reuse"], v.reuse, steps, one);
    expectLength(ctx, ["src"], v.src, steps, one);
    expectBelow(ctx, ["src"], v.src, steps, "a step index");
    expectLength(ctx, ["phi"], v.phi, steps, one);
    if (v.phiRect) expectLength(ctx, ["phiRect"], v.phiRect, steps, one);
    expectLength(ctx, ["rect", "a"], v.rect.a, steps, one);
    expectLength(ctx, ["rect", "b"], v.rect.b, steps, one);
    v.rect.a.forEach((row, s) => {
      expectLength(ctx, ["rect", "b", s], v.rect.b[s], row.length, "as many as rect.a's row");
    });
    expectLength(ctx, ["E"], v.E, steps, "an S × S error table");
    if (v.reuse[0] === true) {
      ctx.issues.push({ code: "custom", path: ["reuse", 0], input: true, message: "must be false (step 0 computes)" });
    }
  });

export const profilingditArtifactSchema = artifactHeaderSchema
  .extend({
    blocks: z.looseObject({
      cached: z.array(step),
      computed: z.array(step),
      runs: z.array(z.looseObject({ start: step, end: step })),
      isolated: z.array(step),
    }),
    s0: step,
    computeSteps: z.array(step),
    profile: z.looseObject({ R: z.array(finite), heat: z.array(z.array(finite)).optional() }),
  })
  .check((ctx) => {
    const v = ctx.value;
    const { steps } = v.sampler;
    const blocks = v.model.blocks;
    expectLength(ctx, ["profile", "R"], v.profile.R, blocks, "one per block");
    expectBelow(ctx, ["blocks", "cached"], v.blocks.cached, blocks, "a block index");
    expectBelow(ctx, ["blocks", "computed"], v.blocks.computed, blocks, "a block index");
    expectBelow(ctx, ["computeSteps"], v.computeSteps, steps, "a step index");
    if (v.s0 >= steps) {
      ctx.issues.push({ code: "custom", path: ["s0"], input: v.s0, message: `must be < ${steps} (a step index)` });
    }
  });

export const magcacheArtifactSchema = artifactHeaderSchema
  .extend({ ratios: z.array(finite.positive({ error: "must be a positive magnitude ratio" })) })
  .check((ctx) => {
    expectLength(ctx, ["ratios"], ctx.value.ratios, ctx.value.sampler.steps, "one ratio γ per sampling step");
  });

const table = z.array(z.array(bit));

export const scheduleArtifactSchema = artifactHeaderSchema
  .extend({ m: table, tables: z.record(z.string(), table).optional() })
  .check((ctx) => {
    const v = ctx.value;
    const tables: [PropertyKey[], (0 | 1)[][]][] = [
      [["m"], v.m],
      ...Object.entries(v.tables ?? {}).map(([k, t]): [PropertyKey[], (0 | 1)[][]] => [["tables", k], t]),
    ];
    for (const [path, t] of tables) {
      expectLength(ctx, path, t, v.sampler.steps, "one row per sampling step");
      const width = t[0]?.length ?? 0;
      t.forEach((row, s) => {
        expectLength(ctx, [...path, s], row, width, "every row as long as the first: one entry per unit");
      });
    }
  });

/** Payload schemas by artifact method (the `ditto.<method>.v1` format); others are checked for the header only. */
export const ARTIFACT_SCHEMAS: Record<string, z.ZodType> = {
  teacache: teacacheArtifactSchema,
  ertacache: ertacacheArtifactSchema,
  profilingdit: profilingditArtifactSchema,
  bac: scheduleArtifactSchema,
  router: scheduleArtifactSchema,
  magcache: magcacheArtifactSchema,
};
