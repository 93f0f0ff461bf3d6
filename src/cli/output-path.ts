/**
 * Output files are checked before any work starts, so a long run never ends in a write error: the path must not be
 * a directory, its folder must exist and be a folder we can write into.
 */
import { mkdtempSync, rmdirSync, type Stats, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { InputError } from "../errors.ts";

/** Resolves `path` for `--flag` and throws OPTION_INVALID, naming the flag and the fix, if it cannot be written. */
export function checkOutputFile(flag: string, path: string, example = "out.png"): string {
  const full = resolve(path);
  const fail = (why: string, fix: string): never => {
    throw new InputError("OPTION_INVALID", `--${flag} ${path}: ${why}; ${fix}`, { option: flag, path: full });
  };
  if (stat(full)?.isDirectory()) {
    fail("is a directory", `name a file, e.g. --${flag} ${resolve(full, example)}`);
  }
  const folder = dirname(full);
  let existing = folder;
  while (!stat(existing) && dirname(existing) !== existing) existing = dirname(existing);
  if (!stat(existing)?.isDirectory()) {
    fail(`${existing} is a file, not a folder`, "choose a path inside a folder");
  }
  if (existing !== folder) fail(`folder ${folder} does not exist`, `create it first (mkdir -p ${folder})`);
  try {
    // A real write test: permission bits alone say nothing for root or read-only mounts.
    rmdirSync(mkdtempSync(resolve(folder, ".ditto-write-check-")));
  } catch (err) {
    fail(`cannot write into folder ${folder} (${(err as NodeJS.ErrnoException).code})`, "choose a writable folder");
  }
  return full;
}

/** stat, or undefined when the path does not exist or runs through a file (ENOTDIR). */
function stat(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}
