/**
 * The one table of cache policies: name → factory + option schema. The engine, the CLI's `--cache`, help text,
 * the benchmark sweep and the docs all read it. Adding a policy = one file + one line here + its tests.
 */
import { InputError, listChoices } from "../errors.ts";
import { type OptionSchema, type OptionValue, parseOptionValue } from "./options.ts";
import { none } from "./policies/none.ts";
import { FORA_OPTIONS, fora, TAYLORSEER_OPTIONS, taylorseer } from "./policies/taylorseer.ts";
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
