/** `--cache-config FILE`: a cache policy as JSON, {"policy": "taylorseer", "interval": 4, …}. */
import { z } from "zod";
import { InputError } from "../errors.ts";
import { readJsonFileSync } from "./parse.ts";

/** The policy name; its options are checked by the policy's own option schema (src/cache/options.ts). */
export const cacheConfigSchema = z.looseObject({
  policy: z.string({ error: 'must name the cache policy, e.g. "taylorseer" (see ditto policies)' }).min(1),
});

export function readCacheConfig(path: string): z.output<typeof cacheConfigSchema> {
  return readJsonFileSync(cacheConfigSchema, path, {
    code: "OPTION_INVALID",
    error: InputError,
    fix: 'A cache config is a JSON object: {"policy": "taylorseer", "interval": 4, "order": 1}.',
    notFound: "Check the --cache-config path.",
  });
}
