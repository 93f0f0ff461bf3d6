/** The model manifest's schema (README, "Bring your own ONNX DiT"): every field's type, range and length. */
import { z } from "zod";

const positiveInt = (what: string) => z.int({ error: `must be a positive integer (${what})` }).min(1);
const name = (what: string) => z.string({ error: `must name ${what}` }).min(1, { error: `must name ${what}` });
const range = z
  .tuple([z.number(), z.number()], { error: "must be [low, high], the sample's value range (e.g. [-1, 1])" })
  .refine(([lo, hi]) => lo < hi, { error: "must be [low, high] with low < high (e.g. [-1, 1])" });
const dims = z.array(z.union([z.int().min(-1), z.string()])).optional();

export const ddpmScheduleSchema = z
  .looseObject({
    betaSchedule: z.enum(["linear", "scaled-linear", "squaredcos-cap-v2"], {
      error: 'must be "linear", "scaled-linear" or "squaredcos-cap-v2"',
    }),
    betaStart: z.number().positive().lt(1).optional(),
    betaEnd: z.number().positive().lt(1).optional(),
    trainSteps: positiveInt("the DDPM training steps, e.g. 1000"),
    /** Clip x̂0 to [−clipSample, clipSample] in DDPM/DDIM steps (diffusers' clip_sample). */
    clipSample: z.number().positive().optional(),
  })
  .check((ctx) => {
    // The cosine schedule (squaredcos-cap-v2) is fixed by trainSteps; the others need their β range.
    if (ctx.value.betaSchedule === "squaredcos-cap-v2") return;
    for (const key of ["betaStart", "betaEnd"] as const) {
      if (ctx.value[key] === undefined) {
        ctx.issues.push({
          code: "custom",
          path: [key],
          input: undefined,
          message: `must be a number in (0, 1) for a ${ctx.value.betaSchedule} schedule`,
        });
      }
    }
  });

export const objectiveSchema = z
  .looseObject({
    kind: z.enum(["flow-velocity", "epsilon"], { error: 'must be "flow-velocity" or "epsilon"' }),
    description: z.string().optional(),
    timeAtNoise: z.number().optional(),
    timeAtData: z.number().optional(),
    schedule: ddpmScheduleSchema.optional(),
  })
  .check((ctx) => {
    if (ctx.value.kind === "epsilon" && !ctx.value.schedule) {
      ctx.issues.push({
        code: "custom",
        path: ["schedule"],
        input: ctx.value.schedule,
        message:
          'must give { betaSchedule: "linear"|"scaled-linear"|"squaredcos-cap-v2", betaStart, betaEnd, trainSteps } for an epsilon model',
      });
    }
  });

export const manifestSchema = z
  .looseObject({
    format: z.string().optional(),
    name: z.string().default("model"),
    description: z.string().optional(),
    onnx: name("the .onnx file, relative to the manifest"),
    objective: objectiveSchema,
    inputs: z.looseObject({
      sample: z.looseObject({
        name: name("the graph input"),
        dtype: z.string().optional(),
        shape: dims,
        kind: z
          .enum(["image", "action-sequence"], { error: 'must be "image" (the default) or "action-sequence"' })
          .optional(),
      }),
      timestep: z.looseObject({
        name: name("the graph input"),
        dtype: z.string().optional(),
        shape: dims,
        scale: z.number().positive().optional(),
      }),
      condition: z
        .discriminatedUnion(
          "kind",
          [
            z.looseObject({
              name: name("the graph input"),
              dtype: z.string().optional(),
              shape: dims,
              kind: z.literal("class"),
              numClasses: positiveInt("the number of classes"),
              nullClass: z.int({ error: "must be an integer" }).min(0).optional(),
            }),
            z.looseObject({
              name: name("the graph input"),
              dtype: z.string().optional(),
              shape: dims,
              kind: z.literal("observation"),
              dim: positiveInt("the observation vector's length"),
              fields: z.array(z.string()).optional(),
            }),
          ],
          { error: 'kind must be "class" or "observation"' },
        )
        .optional(),
    }),
    output: z.looseObject({ name: name("the graph output") }),
    /** Required for image models (the default sample kind). */
    image: z
      .looseObject({
        channels: positiveInt("the sample's channels"),
        height: positiveInt("the sample's height"),
        width: positiveInt("the sample's width"),
        range,
      })
      .optional(),
    /** Required for action-sequence models: x is [B, horizon, dim] in range; one unit is `scale` in the world. */
    action: z
      .looseObject({
        horizon: positiveInt("the action chunk's length"),
        dim: positiveInt("the action's dimension"),
        range,
        scale: z.number().positive(),
        execute: positiveInt("the actions executed per chunk before re-planning"),
      })
      .optional(),
    classNames: z.array(z.string()).optional(),
    recommended: z
      .looseObject({
        sampler: z.enum(["euler", "ddim", "ddpm"]).optional(),
        steps: z.int().min(1).max(10_000).optional(),
        cfgScale: z.number().min(0).optional(),
        shift: z.number().positive().optional(),
      })
      .optional(),
    structure: z
      .looseObject({
        blockBoundaries: z
          .array(z.string().min(1))
          .min(2, { error: "must list h_0 … h_L, the tensors between blocks (at least two names)" }),
      })
      .optional(),
    evaluation: z
      .looseObject({
        classifier: name(
          "the evaluation classifier's folder (with its manifest.json), relative to this manifest",
        ).optional(),
      })
      .optional(),
    needsReview: z.array(z.string()).optional(),
  })
  .check((ctx) => {
    const kind = ctx.value.inputs.sample.kind ?? "image";
    const layout = kind === "image" ? "image" : "action";
    if (ctx.value[layout] === undefined) {
      ctx.issues.push({
        code: "custom",
        path: [layout],
        input: undefined,
        message:
          layout === "image"
            ? "must give { channels, height, width, range } for an image model"
            : "must give { horizon, dim, range: [low, high], scale, execute } for an action-sequence model",
      });
    }
  });
