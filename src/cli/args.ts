/** Parsing helpers for CLI values: integer lists with ranges ("0,2,5..7"), numbers with named errors. */
import { InputError } from "../errors.ts";

/** More values than any run needs: a typo such as 0..1000000000 fails here instead of exhausting memory. */
const MAX_LIST = 100_000;

/** "3" → [3]; "0,1,2" → [0,1,2]; "0..4" → [0,1,2,3,4]; "all" → [0 … allCount−1]. */
export function parseIntList(flag: string, text: string, allCount?: number): number[] {
  if (text === "all" && allCount !== undefined) return Array.from({ length: allCount }, (_, i) => i);
  const out: number[] = [];
  for (const part of text.split(",")) {
    const range = /^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$/.exec(part);
    if (range) {
      const [a, b] = [Number(range[1]), Number(range[2])];
      if (b < a) throw new InputError("OPTION_INVALID", `--${flag} range ${part} runs backwards`);
      if (out.length + (b - a) >= MAX_LIST) {
        throw new InputError("OPTION_INVALID", `--${flag} ${text} lists more than ${MAX_LIST} values`);
      }
      for (let i = a; i <= b; i++) out.push(i);
    } else if (/^\s*-?\d+\s*$/.test(part)) {
      out.push(Number(part));
    } else {
      throw new InputError("OPTION_INVALID", `--${flag} expects integers like 0,1,2 or a range 0..9 (got '${text}')`);
    }
  }
  return out;
}

export function parseNumber(
  flag: string,
  text: string | undefined,
  integer = false,
  range: { min?: number; max?: number } = {},
): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new InputError("OPTION_INVALID", `--${flag} expects ${integer ? "an integer" : "a number"} (got '${text}')`);
  }
  const { min, max } = range;
  if ((min !== undefined && n < min) || (max !== undefined && n > max)) {
    const bounds = max === undefined ? `≥ ${min}` : min === undefined ? `≤ ${max}` : `from ${min} to ${max}`;
    throw new InputError("OPTION_INVALID", `--${flag} must be ${bounds} (got ${text})`, { option: flag });
  }
  return n;
}
