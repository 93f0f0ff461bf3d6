/**
 * The body of POST /v1/generations, checked with a zod schema, then with the same parsers the CLI uses: the cache
 * spec through parseCacheSpec / policyFromConfig (so a bad policy gives the CLI's DittoError code and message) and
 * classes against the model's manifest. Any failure is an InputError, which the API answers with 400.
 */
import { z } from "zod";
import { parseCacheSpec, policyFromConfig } from "../cache/registry.ts";
import { InputError, listChoices } from "../errors.ts";
import { classCondition, type ResolvedManifest, requireImage } from "../model/manifest.ts";
import { createSampler } from "../sampling/samplers.ts";
import type { GenerationSettings } from "./jobs.ts";
import { type NamedPaths, resolveConfigArtifacts, resolveSpecArtifacts } from "./registry.ts";

const index = z.int().min(0).max(1_000_000);
const seed = z
  .int()
  .min(0)
  .max(2 ** 53 - 1);

/** Mirrors `ditto generate`'s options; classes × seeds are crossed as in the CLI (rows = classes). */
export const generationRequestSchema = z.strictObject({
  model: z.string().min(1).max(100).optional(),
  classes: z.array(index).min(1).max(1000).optional(),
  seeds: z.array(seed).min(1).max(1000).optional(),
  seed: seed.optional(),
  steps: z.int().min(1).max(1000).optional(),
  cfg: z.number().min(0).max(100).optional(),
  cfgMode: z.enum(["batched", "separate"]).optional(),
  shift: z.number().gt(0).max(100).optional(),
  sampler: z.enum(["euler", "ddim"]).optional(),
  cache: z.string().min(1).max(4000).optional(),
  cacheConfig: z.record(z.string(), z.unknown()).optional(),
  /** Samples per child job; a request with more samples fans out into several jobs. */
  batch: z.int().min(1).max(64).optional(),
  /** Pixel upscaling of the PNG grid. */
  scale: z.int().min(1).max(8).optional(),
});

export type GenerationRequest = z.infer<typeof generationRequestSchema>;

export interface ValidatedRequest {
  settings: GenerationSettings;
  manifest: ResolvedManifest;
  /** Per sample, in grid order. */
  classes: number[] | null;
  seeds: number[];
  columns: number;
  batch: number;
  scale: number;
}

export interface RequestLimits {
  /** Most samples one request may ask for. */
  maxSamples: number;
}

export function validateRequest(
  body: unknown,
  models: ReadonlyMap<string, ResolvedManifest>,
  artifacts: NamedPaths,
  limits: RequestLimits,
): ValidatedRequest {
  const parsed = generationRequestSchema.safeParse(body);
  if (!parsed.success)
    throw new InputError("OPTION_INVALID", describeIssues(parsed.error), { issues: parsed.error.issues });
  const r = parsed.data;
  const modelName = r.model ?? [...models.keys()][0];
  const manifest = models.get(modelName);
  if (!manifest) {
    throw new InputError(
      "OPTION_INVALID",
      `model '${modelName}' is not served here; choose ${listChoices([...models.keys()])}`,
      {
        field: "model",
      },
    );
  }
  if (r.cache !== undefined && r.cacheConfig !== undefined)
    throw new InputError("OPTION_INVALID", "give cache or cacheConfig, not both");
  // Parsed here only to reject bad specs with the CLI's code; workers parse them again with their own paths.
  if (r.cache !== undefined) parseCacheSpec(resolveSpecArtifacts(r.cache, artifacts));
  if (r.cacheConfig !== undefined) policyFromConfig(resolveConfigArtifacts(r.cacheConfig, artifacts), "cacheConfig");
  const steps = r.steps ?? manifest.recommended?.steps ?? 50;
  createSampler(manifest, { steps, shift: r.shift, kind: r.sampler });
  requireImage(manifest, `model '${modelName}'`); // the service makes images; policies run through `ditto rollout`
  const cond = classCondition(manifest);
  if (!cond && r.classes)
    throw new InputError("OPTION_INVALID", `model '${modelName}' has no class input, so classes cannot be used`);
  for (const k of r.classes ?? []) {
    if (cond && k >= cond.numClasses)
      throw new InputError(
        "OPTION_INVALID",
        `class ${k} is out of range: model '${modelName}' has classes 0–${cond.numClasses - 1}`,
        {
          field: "classes",
        },
      );
  }
  const seedList = r.seeds ?? [r.seed ?? 0];
  const classList = cond ? (r.classes ?? Array.from({ length: cond.numClasses }, (_, i) => i)) : null;
  const classes = classList ? classList.flatMap((k) => seedList.map(() => k)) : null;
  const seeds = classList ? classList.flatMap(() => seedList) : seedList;
  if (seeds.length > limits.maxSamples) {
    throw new InputError(
      "OPTION_INVALID",
      `the request asks for ${seeds.length} samples (classes × seeds); this server takes at most ${limits.maxSamples} per request`,
    );
  }
  return {
    settings: {
      model: modelName,
      steps,
      cfg: r.cfg,
      cfgMode: r.cfgMode,
      shift: r.shift,
      sampler: r.sampler,
      cache: r.cache,
      cacheConfig: r.cacheConfig,
    },
    manifest,
    classes,
    seeds,
    columns: seedList.length,
    batch: r.batch ?? 16,
    scale: r.scale ?? 4,
  };
}

/** "steps: Too big: expected number to be <=1000; cfgMode: Invalid option …" — each issue with its field. */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length ? issue.path.join(".") : "body"}: ${issue.message}`)
    .join("; ");
}
