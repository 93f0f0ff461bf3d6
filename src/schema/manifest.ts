/** The model manifest's schema (README, "Bring your own ONNX DiT"): every field's type, range and length. */
import { z } from "zod";

const positiveInt = (what: string) => z.int({ error: `must be a positive integer (${what})` }).min(1);
const name = (what: string) => z.string({ error: `must name ${what}` }).min(1, { error: `must name ${what}` });
const dims = z.array(z.union([z.int().min(-1), z.string()])).optional();

export const ddpmScheduleSchema = z.looseObject({
  betaSchedule: z.enum(["linear", "scaled-linear"], { error: 'must be "linear" or "scaled-linear"' }),
  betaStart: z.number().positive().lt(1),
  betaEnd: z.number().positive().lt(1),
  trainSteps: positiveInt("the DDPM training steps, e.g. 1000"),
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
          'must give { betaSchedule: "linear"|"scaled-linear", betaStart, betaEnd, trainSteps } for an epsilon model',
      });
    }
  });

export const manifestSchema = z.looseObject({
  format: z.string().optional(),
  name: z.string().default("model"),
  description: z.string().optional(),
  onnx: name("the .onnx file, relative to the manifest"),
  objective: objectiveSchema,
  inputs: z.looseObject({
    sample: z.looseObject({ name: name("the graph input"), dtype: z.string().optional(), shape: dims }),
    timestep: z.looseObject({
      name: name("the graph input"),
      dtype: z.string().optional(),
      shape: dims,
      scale: z.number().positive().optional(),
    }),
    condition: z
      .looseObject({
        name: name("the graph input"),
        dtype: z.string().optional(),
        shape: dims,
        kind: z.literal("class", { error: 'must be "class" (the only condition kind supported today)' }),
        numClasses: positiveInt("the number of classes"),
        nullClass: z.int({ error: "must be an integer" }).min(0).optional(),
      })
      .optional(),
  }),
  output: z.looseObject({ name: name("the graph output") }),
  image: z.looseObject({
    channels: positiveInt("the sample's channels"),
    height: positiveInt("the sample's height"),
    width: positiveInt("the sample's width"),
    range: z
      .tuple([z.number(), z.number()], { error: "must be [low, high], the sample's value range (e.g. [-1, 1])" })
      .refine(([lo, hi]) => lo < hi, { error: "must be [low, high] with low < high (e.g. [-1, 1])" }),
  }),
  classNames: z.array(z.string()).optional(),
  recommended: z
    .looseObject({
      sampler: z.enum(["euler", "ddim"]).optional(),
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
      classifier: name("the evaluation classifier's folder (with its manifest.json), relative to this manifest"),
    })
    .optional(),
  needsReview: z.array(z.string()).optional(),
});
