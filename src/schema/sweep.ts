/** `ditto bench --sweep FILE`: {"settings": {...}, "policies": ["none", "fora:interval=2", …]} (bench/sweep.json). */
import { z } from "zod";
import { InputError } from "../errors.ts";
import { readJsonFileSync } from "./parse.ts";

export const benchSettingsSchema = z.strictObject({
  samples: z.int().min(1).max(100_000).optional(),
  steps: z.int().min(1).max(10_000).optional(),
  cfg: z.number().min(0).optional(),
  cfgMode: z.enum(["batched", "separate"]).optional(),
  repeats: z.int().min(1).max(1000).optional(),
  timingSamples: z.int().min(1).max(10_000).optional(),
  batch: z.int().min(1).max(10_000).optional(),
});

export const sweepSchema = z.looseObject({
  description: z.string().optional(),
  settings: benchSettingsSchema.optional(),
  policies: z
    .array(z.string().min(1, { error: "must be a cache spec such as fora:interval=2" }), {
      error: 'must be a list of cache specs, e.g. ["none", "fora:interval=2"]',
    })
    .min(1, { error: "must list at least one cache spec" }),
});

export function readSweep(path: string): z.output<typeof sweepSchema> {
  return readJsonFileSync(sweepSchema, path, {
    code: "OPTION_INVALID",
    error: InputError,
    fix: 'A sweep file is {"settings": {"samples": 60, "steps": 50, …}, "policies": ["none", "fora:interval=2"]}; see bench/sweep.json.',
    notFound: "Check the --sweep path (the repository's sweep is bench/sweep.json).",
  });
}
