/**
 * Policy options: one schema per policy drives validation, the `--cache name:key=value,…` parser, help text and
 * canonical spec strings.
 */
import { InputError, listChoices } from "../errors.ts";

export type OptionValue = number | boolean | string | number[];

export interface OptionSchema {
  name: string;
  type: "int" | "number" | "bool" | "string" | "int-list" | "number-list";
  default?: OptionValue;
  min?: number;
  max?: number;
  choices?: readonly string[];
  /** The policy cannot run without it (an option with no default is otherwise optional). */
  required?: boolean;
  help: string;
}

export type OptionValues = Record<string, OptionValue | undefined>;

/** Fills defaults and checks types and ranges; names the policy and option in every error. */
export function resolveOptions(
  policy: string,
  schema: readonly OptionSchema[],
  given: Record<string, unknown>,
): OptionValues {
  const known = new Set(schema.map((o) => o.name));
  for (const key of Object.keys(given)) {
    if (given[key] !== undefined && !known.has(key)) {
      throw new InputError(
        "OPTION_INVALID",
        `unknown option '${key}' for cache policy ${policy}; its options are ${listChoices(schema.map((o) => o.name)) || "(none)"}`,
        { policy, option: key },
      );
    }
  }
  const out: OptionValues = {};
  for (const opt of schema) {
    const value = given[opt.name] ?? opt.default;
    if (value !== undefined) checkValue(policy, opt, value);
    out[opt.name] = value as OptionValue | undefined;
  }
  return out;
}

function checkValue(policy: string, opt: OptionSchema, value: unknown): void {
  const bad = (why: string): never => {
    throw new InputError("OPTION_INVALID", `${policy} option ${opt.name}=${JSON.stringify(value)} is invalid: ${why}`, {
      policy,
      option: opt.name,
    });
  };
  switch (opt.type) {
    case "int":
    case "number": {
      if (typeof value !== "number" || !Number.isFinite(value)) bad("expected a number");
      const n = value as number;
      if (opt.type === "int" && !Number.isInteger(n)) bad("expected an integer");
      if (opt.min !== undefined && n < opt.min) bad(`must be ≥ ${opt.min}`);
      if (opt.max !== undefined && n > opt.max) bad(`must be ≤ ${opt.max}`);
      break;
    }
    case "bool":
      if (typeof value !== "boolean") bad("expected true or false");
      break;
    case "string":
      if (typeof value !== "string") bad("expected a string");
      if (opt.choices && !opt.choices.includes(value as string)) bad(`expected ${listChoices(opt.choices)}`);
      break;
    case "int-list":
      if (!Array.isArray(value) || !value.every((v) => Number.isInteger(v) && v >= 0))
        bad("expected a list of non-negative integers (a;b;c)");
      break;
    case "number-list":
      if (!Array.isArray(value) || !value.every((v) => typeof v === "number" && Number.isFinite(v)))
        bad("expected a list of numbers (a;b;c)");
      break;
  }
}

/** Parses one `key=value` string value by the option's type. */
export function parseOptionValue(policy: string, opt: OptionSchema, text: string): OptionValue {
  switch (opt.type) {
    case "int":
    case "number": {
      const n = Number(text);
      if (text.trim() === "" || Number.isNaN(n)) {
        throw new InputError("OPTION_INVALID", `${policy} option ${opt.name}=${text} is not a number`, {
          policy,
          option: opt.name,
        });
      }
      return n;
    }
    case "bool":
      if (text === "true" || text === "1") return true;
      if (text === "false" || text === "0") return false;
      throw new InputError("OPTION_INVALID", `${policy} option ${opt.name}=${text}: expected true or false`, {
        policy,
        option: opt.name,
      });
    case "int-list":
    case "number-list":
      return text === "" ? [] : text.split(/[;|]/).map((v) => Number(v));
    default:
      return text;
  }
}

export function formatSpec(name: string, schema: readonly OptionSchema[], values: OptionValues): string {
  const parts = schema
    .filter((o) => values[o.name] !== undefined)
    .map((o) => {
      const v = values[o.name];
      return `${o.name}=${Array.isArray(v) ? v.join(";") : String(v)}`;
    });
  return parts.length ? `${name}:${parts.join(",")}` : name;
}
