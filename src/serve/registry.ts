/**
 * Models and calibration artifacts are registered by name when `ditto serve` / `ditto worker` start
 * (`--model NAME=PATH`, `--artifact NAME=PATH`). Requests name them; no path from a request ever reaches the file
 * system. Cache specs keep the artifact's name in the queue, and each process swaps in its own path, so workers on
 * other machines may keep their files elsewhere.
 */
import { resolve } from "node:path";
import { InputError, listChoices } from "../errors.ts";
import { DEFAULT_MODEL_DIR } from "../model/manifest.ts";

export const DEFAULT_MODEL_NAME = "fashion-dit";

/** Options of cache policies whose value is a file (see the policies' option tables). */
const FILE_OPTIONS = new Set(["artifact", "calibration"]);

export type NamedPaths = ReadonlyMap<string, string>;

/** "name=path" entries → map; the shipped model is registered as fashion-dit when no model is given. */
export function parseNamedPaths(flag: string, entries: readonly string[], defaults: [string, string][] = []) {
  const out = new Map<string, string>(entries.length ? [] : defaults);
  for (const entry of entries) {
    const i = entry.indexOf("=");
    const name = entry.slice(0, i);
    if (i <= 0 || i === entry.length - 1 || !/^[A-Za-z0-9._-]+$/.test(name)) {
      throw new InputError(
        "OPTION_INVALID",
        `--${flag} expects NAME=PATH with NAME of letters, digits, . _ - (got '${entry}')`,
      );
    }
    if (out.has(name)) throw new InputError("OPTION_INVALID", `--${flag} ${name} is given twice`);
    out.set(name, resolve(entry.slice(i + 1)));
  }
  return out;
}

export function modelPaths(entries: readonly string[]): NamedPaths {
  return parseNamedPaths("model", entries, [[DEFAULT_MODEL_NAME, DEFAULT_MODEL_DIR]]);
}

function artifactPath(artifacts: NamedPaths, option: string, name: unknown): string {
  const path = typeof name === "string" ? artifacts.get(name) : undefined;
  if (path === undefined) {
    const known = [...artifacts.keys()];
    throw new InputError(
      "OPTION_INVALID",
      `${option}=${String(name)} is not an artifact registered on this server; ` +
        (known.length ? `choose ${listChoices(known)}` : "none are (start it with --artifact NAME=PATH)"),
      { option },
    );
  }
  return path;
}

/** "ertacache:artifact=c35,threshold=0.1" → the same spec with the registered path of c35. */
export function resolveSpecArtifacts(spec: string, artifacts: NamedPaths): string {
  const colon = spec.indexOf(":");
  if (colon < 0) return spec;
  const parts = spec
    .slice(colon + 1)
    .split(",")
    .map((part) => {
      const eq = part.indexOf("=");
      const key = part.slice(0, eq).trim();
      if (eq < 0 || !FILE_OPTIONS.has(key)) return part;
      return `${key}=${artifactPath(artifacts, key, part.slice(eq + 1).trim())}`;
    });
  return `${spec.slice(0, colon)}:${parts.join(",")}`;
}

/** The same for a cache config object: { "policy": "bac", "artifact": "bac-c35" }. */
export function resolveConfigArtifacts(
  config: Record<string, unknown>,
  artifacts: NamedPaths,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config };
  for (const key of Object.keys(out)) {
    if (FILE_OPTIONS.has(key) && out[key] !== undefined) out[key] = artifactPath(artifacts, key, out[key]);
  }
  return out;
}

/** Error messages name registered files by their registered names: clients never learn server paths. */
export function hidePaths(message: string, ...registries: NamedPaths[]): string {
  let out = message;
  for (const registry of registries) for (const [name, path] of registry) out = out.split(path).join(`<${name}>`);
  return out;
}
