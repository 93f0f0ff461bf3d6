/**
 * The one table of cache policies: name → factory + option schema. The engine, the CLI's `--cache`, help text,
 * the benchmark sweep and the docs all read it. Adding a policy = one file + one line here + its tests.
 */
import { InputError, listChoices } from "../errors.ts";
import { type OptionSchema, type OptionValue, parseOptionValue } from "./options.ts";
import { EASYCACHE_OPTIONS, easycache } from "./policies/easycache.ts";
import { ERTACACHE_OPTIONS, ertacache } from "./policies/ertacache.ts";
import { DBCACHE_OPTIONS, dbcache, FBCACHE_OPTIONS, fbcache } from "./policies/fbcache.ts";
import { MAGCACHE_OPTIONS, magcache } from "./policies/magcache.ts";
import { none } from "./policies/none.ts";
import { PROFILINGDIT_OPTIONS, profilingdit } from "./policies/profilingdit.ts";
import { SCHEDULE_OPTIONS, schedule } from "./policies/schedule.ts";
import { FORA_OPTIONS, fora, TAYLORSEER_OPTIONS, taylorseer } from "./policies/taylorseer.ts";
import { TEACACHE_OPTIONS, teacache } from "./policies/teacache.ts";
import type { CachePolicy } from "./policy.ts";

export interface PolicyDefinition {
  name: string;
  summary: string;
  paper?: string;
  options: readonly OptionSchema[];
  // biome-ignore lint/suspicious/noExplicitAny: each factory takes its own typed options object
  create(options: any): CachePolicy;
}

export const POLICIES: readonly PolicyDefinition[] = [
  { name: "none", summary: "no caching: the uncached reference", options: [], create: () => none() },
  {
    name: "fora",
    summary: "static interval: reuse every branch's pre-gate output between full steps",
    paper: "arXiv 2407.01425",
    options: FORA_OPTIONS,
    create: fora,
  },
  {
    name: "taylorseer",
    summary: "forecast every branch with a Taylor series from finite differences at full steps",
    paper: "arXiv 2503.06923",
    options: TAYLORSEER_OPTIONS,
    create: taylorseer,
  },
  {
    name: "teacache",
    summary: "skip the whole stack while the rescaled change of block 0's modulated input accumulates under δ",
    paper: "arXiv 2411.19108",
    options: TEACACHE_OPTIONS,
    create: teacache,
  },
  {
    name: "magcache",
    summary: "skip the stack while the calibrated residual-magnitude ratios stay near 1 (needs a calibration run)",
    paper: "arXiv 2506.09045",
    options: MAGCACHE_OPTIONS,
    create: magcache,
  },
  {
    name: "easycache",
    summary: "skip the stack while the run-time transformation rate predicts a small accumulated change",
    paper: "arXiv 2507.02860",
    options: EASYCACHE_OPTIONS,
    create: easycache,
  },
  {
    name: "fbcache",
    summary: "run the first block; skip the rest while its residual's relative change stays under δ",
    paper: "ParaAttention First-Block Cache",
    options: FBCACHE_OPTIONS,
    create: fbcache,
  },
  {
    name: "dbcache",
    summary: "FBCache with Fn front and Bn back blocks always computed (cache-dit defaults)",
    paper: "vipshop/cache-dit DBCache",
    options: DBCACHE_OPTIONS,
    create: dbcache,
  },
  {
    name: "ertacache",
    summary: "offline reuse set with timestep adjustment and residual rectification (needs ditto profile)",
    paper: "arXiv 2508.21091",
    options: ERTACACHE_OPTIONS,
    create: ertacache,
  },
  {
    name: "profilingdit",
    summary: "cache the background-focused blocks found by attention profiling (needs ditto profile)",
    paper: "arXiv 2504.03140",
    options: PROFILINGDIT_OPTIONS,
    create: profilingdit,
  },
  {
    name: "schedule",
    summary: "run any static per-step, per-branch table m[s][u] from an artifact (BAC, HarmoniCa, L2C)",
    options: SCHEDULE_OPTIONS,
    create: (o: { artifact?: string; table?: string }) => schedule(o),
  },
  {
    name: "bac",
    summary: "block-wise adaptive caching: per-unit ACS schedule with the Bubbling Union (needs ditto profile)",
    paper: "arXiv 2506.13456",
    options: SCHEDULE_OPTIONS,
    create: (o: { artifact?: string; table?: string }) => schedule(o, "bac", ["bac"]),
  },
  {
    name: "harmonica",
    summary: "HarmoniCa router table fitted on the final image along the cached trajectory (needs ditto profile)",
    paper: "arXiv 2410.01723",
    options: SCHEDULE_OPTIONS,
    create: (o: { artifact?: string; table?: string }) => schedule(o, "harmonica", ["router"]),
  },
  {
    name: "l2c",
    summary:
      "Learning-to-Cache router table (per-step error, even steps full), fitted gradient-free (needs ditto profile)",
    paper: "NeurIPS 2024, Learning-to-Cache",
    options: SCHEDULE_OPTIONS,
    create: (o: { artifact?: string; table?: string }) => schedule(o, "l2c", ["router"]),
  },
];

export function policyNames(): string[] {
  return POLICIES.map((p) => p.name);
}

export function findPolicy(name: string): PolicyDefinition {
  const def = POLICIES.find((p) => p.name === name);
  if (!def) {
    throw new InputError(
      "UNKNOWN_POLICY",
      `unknown cache policy '${name}'; choose ${listChoices(policyNames())} (see \`ditto policies\`)`,
      {
        policy: name,
      },
    );
  }
  return def;
}

/** Parses "name" or "name:key=value,key=value" (lists as a;b;c) into a policy. */
export function parseCacheSpec(spec: string): CachePolicy {
  const [name, rest = ""] = splitOnce(spec.trim(), ":");
  const def = findPolicy(name);
  const given: Record<string, OptionValue> = {};
  for (const part of rest.split(",").filter((p) => p.trim() !== "")) {
    const [key, value] = splitOnce(part.trim(), "=");
    const opt = def.options.find((o) => o.name === key);
    if (!opt) {
      throw new InputError(
        "OPTION_INVALID",
        `unknown option '${key}' for cache policy ${name}; its options are ${listChoices(def.options.map((o) => o.name)) || "(none)"}`,
        { policy: name, option: key },
      );
    }
    if (value === undefined)
      throw new InputError("OPTION_INVALID", `option '${key}' of ${name} needs a value: ${key}=…`, {
        policy: name,
        option: key,
      });
    given[key] = parseOptionValue(name, opt, value);
  }
  return def.create(given);
}

function splitOnce(text: string, sep: string): [string, string | undefined] {
  const i = text.indexOf(sep);
  return i < 0 ? [text, undefined] : [text.slice(0, i), text.slice(i + 1)];
}

/** A policy from a JSON object: { "policy": "taylorseer", "interval": 5, "order": 2 } (`--cache-config`). */
export function policyFromConfig(config: unknown, source = "cache config"): CachePolicy {
  if (typeof config !== "object" || config === null || typeof (config as { policy?: unknown }).policy !== "string") {
    throw new InputError(
      "OPTION_INVALID",
      `${source} must be a JSON object with a "policy" name and its options, e.g. {"policy": "taylorseer", "interval": 5}`,
    );
  }
  // `tunedFor` records what `ditto tune` tuned a config for; it is a note, not an option.
  const { policy, tunedFor: _note, ...options } = config as { policy: string } & Record<string, unknown>;
  return findPolicy(policy).create(options);
}
