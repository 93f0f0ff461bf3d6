/**
 * Property-based tests (fast-check, fixed seed) over every parser a user feeds: cache spec strings, --seeds and
 * --classes lists, numbers, manifests, calibration artifacts, sweep files and cache configs. Property: a valid
 * result or a DittoError with a code — never any other exception. Inputs are random strings and valid documents
 * mutated (a field dropped, retyped, a list resized, a number made NaN or infinite).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { POLICIES, parseCacheSpec, policyFromConfig } from "../src/cache/registry.ts";
import { parseIntList, parseNumber } from "../src/cli/args.ts";
import { parseSettings, SET_KEYS } from "../src/cli/profile.ts";
import { DittoError } from "../src/errors.ts";
import { validateManifest } from "../src/model/manifest.ts";
import { parseArtifact } from "../src/profiling/artifact.ts";
import { parseWithSchema } from "../src/schema/parse.ts";
import { sweepSchema } from "../src/schema/sweep.ts";

const SEED = 13;
const RUNS = 200;
const ROOT = join(import.meta.dirname, "..");
const json = (path: string) => JSON.parse(readFileSync(join(ROOT, path), "utf8"));

/** Calls `f`; passes when it returns, or throws a DittoError with a code. */
function validOrDittoError(f: () => unknown): void {
  try {
    f();
  } catch (err) {
    if (!(err instanceof DittoError) || typeof err.code !== "string") {
      assert.fail(`not a DittoError: ${(err as Error)?.stack ?? err}`);
    }
  }
}

function check<T>(arb: fc.Arbitrary<T>, f: (value: T) => unknown, runs = RUNS): void {
  fc.assert(
    fc.property(arb, (value) => validOrDittoError(() => f(value))),
    { seed: SEED, numRuns: runs },
  );
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * Paths to values inside `doc` (keys and indices), the root excluded. Of each list only the first two and the last
 * entries are visited: mutations then spread over the document's fields instead of landing, almost always, inside
 * its largest matrix.
 */
function paths(doc: Json, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  const entries: [string | number, Json][] = Array.isArray(doc)
    ? [...new Set([0, 1, doc.length - 1])].filter((i) => i >= 0 && i < doc.length).map((i) => [i, doc[i]])
    : doc && typeof doc === "object"
      ? Object.entries(doc)
      : [];
  for (const [key, value] of entries) {
    out.push([...prefix, key]);
    paths(value, [...prefix, key], out);
  }
  return out;
}

const replacement = fc.oneof(
  fc.constant(Number.NaN),
  fc.constant(Number.POSITIVE_INFINITY),
  fc.constant(null),
  fc.string({ maxLength: 5 }),
  fc.integer({ min: -3, max: 100 }),
  fc.double({ noNaN: false }),
  fc.boolean(),
  fc.constant([]),
  fc.constant({}),
);

type Mutation = { kind: "drop" | "retype" | "resize"; at: number; value: unknown; length: number };

const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom("drop", "retype", "resize"),
  at: fc.nat(),
  value: replacement,
  length: fc.nat({ max: 60 }),
});

/** A deep copy of `doc` with one to three mutations applied at paths chosen from `all` (skipped once gone). */
function mutate(doc: Json, all: (string | number)[][], mutations: Mutation[]): Json {
  const copy = structuredClone(doc);
  for (const m of mutations) {
    const path = all[m.at % all.length];
    // biome-ignore lint/suspicious/noExplicitAny: walking an arbitrary JSON document
    let parent: any = copy;
    for (const key of path.slice(0, -1)) parent = parent?.[key];
    const key = path[path.length - 1];
    if (parent === null || typeof parent !== "object" || !(key in parent)) continue;
    if (m.kind === "drop") {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
    } else if (m.kind === "retype" || !Array.isArray(parent[key])) {
      parent[key] = m.value;
    } else {
      const list = parent[key] as Json[];
      parent[key] = Array.from({ length: m.length }, (_, i) => list[i % Math.max(1, list.length)] ?? 0);
    }
  }
  return copy;
}

const mutated = (doc: Json) => {
  const all = paths(doc);
  return fc.array(mutation, { minLength: 1, maxLength: 3 }).map((ms) => mutate(doc, all, ms));
};

describe("fuzzing the parsers users feed (fast-check, seed 13)", () => {
  it("cache spec strings", () => {
    const names = POLICIES.map((p) => p.name);
    const keys = [...new Set(POLICIES.flatMap((p) => p.options.map((o) => o.name)))];
    const structured = fc
      .tuple(
        fc.constantFrom(...names, "bogus", ""),
        fc.array(
          fc.tuple(fc.constantFrom(...keys, "x", ""), fc.oneof(fc.string({ maxLength: 6 }), fc.double().map(String))),
          { maxLength: 4 },
        ),
      )
      .map(([name, kv]) => `${name}:${kv.map(([k, v]) => `${k}=${v}`).join(",")}`)
      // artifact-reading options would name random files: keep them to paths that do not exist
      .map((s) => s.replace(/(artifact|calibration)=[^,]*/g, "$1=/nonexistent/a.json"));
    check(
      fc.oneof(
        structured,
        fc.string({ maxLength: 40 }).filter((s) => !/artifact|calibration/.test(s)),
      ),
      (s) => parseCacheSpec(s),
    );
  });

  it("--seeds / --classes lists and numbers", () => {
    const list = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc
        .array(
          fc.oneof(
            fc.integer({ min: -50, max: 200 }).map(String),
            fc
              .tuple(fc.integer({ min: -10, max: 300 }), fc.integer({ min: -10, max: 300 }))
              .map(([a, b]) => `${a}..${b}`),
          ),
          { minLength: 1, maxLength: 5 },
        )
        .map((parts) => parts.join(",")),
      fc.constant("0..99999999999"),
    );
    check(fc.tuple(list, fc.option(fc.integer({ min: 1, max: 20 }))), ([text, all]) =>
      parseIntList("seeds", text, all ?? undefined),
    );
    check(fc.tuple(fc.string({ maxLength: 12 }), fc.boolean()), ([text, int]) =>
      parseNumber("scale", text, int, { min: 1, max: 64 }),
    );
  });

  it("ditto profile --set KEY=VALUE pairs", () => {
    const methods = Object.keys(SET_KEYS);
    const keys = [...new Set(Object.values(SET_KEYS).flatMap((k) => Object.keys(k))), "bogus"];
    const pair = fc.oneof(
      fc
        .tuple(fc.constantFrom(...keys), fc.oneof(fc.string({ maxLength: 6 }), fc.double().map(String)))
        .map(([k, v]) => `${k}=${v}`),
      fc.string({ maxLength: 12 }),
    );
    check(fc.tuple(fc.constantFrom(...methods), fc.array(pair, { maxLength: 4 })), ([method, pairs]) =>
      parseSettings(method, pairs),
    );
  });

  it("manifests", () => {
    const manifest = json("models/fashion-dit/manifest.json");
    check(mutated(manifest), (m) => validateManifest(m, "manifest.json"));
  });

  it("artifacts of every method", () => {
    const cases: [string, string][] = [
      ["bench/artifacts/teacache.json", "teacache"],
      ["bench/artifacts/ertacache-c25.json", "ertacache"],
      ["bench/artifacts/profilingdit.json", "profilingdit"],
      ["bench/artifacts/bac.json", "bac"],
      ["bench/artifacts/l2c.json", "router"],
    ];
    for (const [path, method] of cases) {
      const doc = json(path);
      check(mutated(doc), (a) => parseArtifact(a, method, path), 150);
    }
  });

  it("sweep files and cache configs", () => {
    const sweep = json("bench/sweep.json");
    const ctx = { source: "sweep.json", code: "OPTION_INVALID" as const, fix: "" };
    check(mutated(sweep), (s) => parseWithSchema(sweepSchema, s, ctx));
    const configs: Json[] = [
      { policy: "taylorseer", interval: 4, order: 1 },
      { policy: "teacache", threshold: 0.2, coefficients: [1, 0] },
      { policy: "fbcache", threshold: 0.1 },
    ];
    check(
      fc.constantFrom(...configs).chain((c) => mutated(c)),
      (c) => policyFromConfig(c, "config.json"),
    );
  });
});
