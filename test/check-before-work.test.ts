/**
 * Bad input is refused before any work (issue 13, part 3): each case asserts the DittoError code, that no output
 * file was written and that no generation ran (Pipeline.prototype.generate is counted, not replaced).
 */
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { run as bench } from "../src/cli/bench.ts";
import { run as generate } from "../src/cli/generate.ts";
import { run as initManifest } from "../src/cli/init-manifest.ts";
import { run as profile } from "../src/cli/profile.ts";
import type { DittoErrorCode } from "../src/errors.ts";
import { Pipeline } from "../src/pipeline.ts";
import { GraphBuilder } from "./fixtures/graph-builder.ts";
import { assertRejectsWith, tempDir } from "./helpers.ts";

const ARTIFACTS = join(import.meta.dirname, "../bench/artifacts");
let generations = 0;
const realGenerate = Pipeline.prototype.generate;

before(() => {
  Pipeline.prototype.generate = function (this: Pipeline, ...args: Parameters<Pipeline["generate"]>) {
    generations++;
    return realGenerate.apply(this, args);
  };
});
after(() => {
  Pipeline.prototype.generate = realGenerate;
});

/** Runs a command, expects `code`, and checks that `dir` is still empty and nothing was generated. */
async function refuses(command: (argv: string[]) => Promise<void>, argv: string[], code: DittoErrorCode, dir: string) {
  const before = readdirSync(dir);
  const count = generations;
  const err = await assertRejectsWith(() => command(argv), code);
  assert.deepEqual(readdirSync(dir), before, `files were written: ${err.message}`);
  assert.equal(generations, count, "a generation ran before the error");
  return err;
}

function ertaArtifact(edit: (a: Record<string, unknown>) => void, dir: string): string {
  const a = JSON.parse(readFileSync(join(ARTIFACTS, "ertacache-c25.json"), "utf8"));
  edit(a);
  const path = join(dir, "..", `erta-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify(a));
  return path;
}

describe("bad input is refused before any work", () => {
  it("generate --out: parent is a file, an existing directory, an unwritable directory", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "file"), "x");
    const out = tempDir();
    await refuses(generate, ["--out", join(dir, "file", "grid.png")], "OPTION_INVALID", out);
    await refuses(generate, ["--out", out], "OPTION_INVALID", out);
    // Root ignores permission bits; /proc refuses new files for everyone.
    const locked = process.getuid?.() === 0 ? "/proc" : join(tempDir(), "locked");
    if (locked !== "/proc") {
      mkdirSync(locked);
      chmodSync(locked, 0o555);
    }
    const err = await refuses(generate, ["--out", join(locked, "grid.png")], "OPTION_INVALID", out);
    assert.match(err.message, /cannot write into folder/);
  });

  it("generate --scale 0 and --scale=-2; bad --seeds, --steps, --batch", async () => {
    const dir = tempDir();
    const out = join(dir, "grid.png");
    for (const argv of [
      ["--scale", "0"],
      ["--scale=-2"],
      ["--seeds", "0..1000000000"],
      ["--seeds", "3..1"],
      ["--steps", "0"],
      ["--batch", "0"],
      ["--cfg=-1"],
    ]) {
      await refuses(generate, [...argv, "--out", out, "--quiet"], "OPTION_INVALID", dir);
    }
  });

  it("artifacts: a missing field, a reuse table cut to 10 of 50 entries, numbers turned into strings", async () => {
    const dir = tempDir();
    const out = join(dir, "grid.png");
    const cases: [string, (a: Record<string, unknown>) => void, RegExp][] = [
      ["missing rect", (a) => delete a.rect, /rect/],
      [
        "reuse cut to 10",
        (a) => (a.reuse = (a.reuse as boolean[]).slice(0, 10)),
        /reuse has 10 entries but must have 50/,
      ],
      ["strings", (a) => (a.phi = (a.phi as number[]).map(String)), /phi\[0\]/],
      ["wrong header", (a) => ((a.sampler as Record<string, unknown>).steps = "50"), /sampler\.steps/],
    ];
    for (const [, edit, pattern] of cases) {
      const artifact = ertaArtifact(edit, dir);
      const err = await refuses(
        generate,
        ["--cache", `ertacache:artifact=${artifact}`, "--out", out],
        "ARTIFACT_INVALID",
        dir,
      );
      assert.match(err.message, pattern);
      assert.ok(err.message.includes(artifact), "the message names the file");
      assert.match(err.message, /ditto profile --method ertacache/, "the message gives the fix");
    }
  });

  it("--cache-config: missing, not JSON, no policy name", async () => {
    const dir = tempDir();
    const out = join(dir, "grid.png");
    const bad = join(tempDir(), "c.json");
    await refuses(generate, ["--cache-config", join(dir, "..", "nope.json"), "--out", out], "OPTION_INVALID", dir);
    writeFileSync(bad, "{ nope");
    await refuses(generate, ["--cache-config", bad, "--out", out], "OPTION_INVALID", dir);
    writeFileSync(bad, JSON.stringify({ interval: 2 }));
    const err = await refuses(generate, ["--cache-config", bad, "--out", out], "OPTION_INVALID", dir);
    assert.match(err.message, /policy must name the cache policy/);
  });

  it("profile --plot into a missing folder; --set bogus=1; --set with a bad value", async () => {
    const dir = tempDir();
    const out = join(dir, "a.json");
    const missing = join(dir, "missing", "plot.png");
    const err = await refuses(
      profile,
      ["--method", "profilingdit", "--out", out, "--plot", missing],
      "OPTION_INVALID",
      dir,
    );
    assert.match(err.message, /does not exist; create it first/);
    const bogus = await refuses(
      profile,
      ["--method", "ertacache", "--set", "bogus=1", "--out", out],
      "OPTION_INVALID",
      dir,
    );
    assert.match(bogus.message, /no setting 'bogus'; its settings are lambda, computed, granularity, phi or phiMax/);
    await refuses(profile, ["--method", "ertacache", "--set", "computed=abc", "--out", out], "OPTION_INVALID", dir);
    await refuses(profile, ["--method", "teacache", "--set", "lambda=1", "--out", out], "OPTION_INVALID", dir);
  });

  it("bench --sweep: missing, not JSON, wrong types, an unknown policy", async () => {
    const dir = tempDir();
    const sweeps = tempDir();
    const sweep = (body: string) => {
      const path = join(sweeps, `s${Math.random().toString(36).slice(2)}.json`);
      writeFileSync(path, body);
      return path;
    };
    const prefix = join(dir, "result");
    const cases: [string, RegExp][] = [
      [join(sweeps, "missing.json"), /not found/],
      [sweep("{ nope"), /not valid JSON/],
      [sweep(JSON.stringify({ policies: "none" })), /policies must be a list of cache specs/],
      [sweep(JSON.stringify({ policies: ["none"], settings: { steps: "50" } })), /settings\.steps/],
      [sweep(JSON.stringify({ policies: ["none"], settings: { stpes: 50 } })), /stpes/],
    ];
    for (const [path, pattern] of cases) {
      const err = await refuses(bench, ["--sweep", path, "--out", prefix], "OPTION_INVALID", dir);
      assert.match(err.message, pattern);
    }
    await refuses(
      bench,
      ["--sweep", sweep(JSON.stringify({ policies: ["none", "teacahe"] })), "--out", prefix],
      "UNKNOWN_POLICY",
      dir,
    );
  });

  it("init-manifest refuses a graph that is not a DiT and writes no manifest", async () => {
    const dir = tempDir();
    const g = new GraphBuilder();
    const x = g.input("x", 1, [1, 4]);
    g.input("t", 1, [1]);
    const y = g.op("Relu", [g.op("MatMul", [x, g.weight("w", [4, 4])])]);
    g.named("out", "Identity", [y]);
    g.output("out", 1, [1, 4]);
    writeFileSync(join(dir, "model.onnx"), g.build());
    const err = await refuses(initManifest, [join(dir, "model.onnx")], "STRUCTURE_NOT_FOUND", dir);
    assert.match(err.message, /No manifest written/);
  });
});

describe("artifact mismatch", () => {
  it("the recalibration hint repeats the --set values that made the artifact", async () => {
    const { checkArtifact, readArtifact } = await import("../src/profiling/artifact.ts");
    const dir = tempDir();
    const path = ertaArtifact((a) => (a.set = { computed: "25", granularity: "tensor" }), join(dir, "x"));
    const header = readArtifact(path, "ertacache");
    const ctx = {
      model: { sha256: header.model.sha256, tokens: header.shape.tokens },
      sampler: { ...header.sampler, steps: 20 },
      cfgScale: header.sampler.cfgScale,
      cfgMode: header.sampler.cfgMode,
    } as unknown as Parameters<typeof checkArtifact>[1];
    const err = await assertRejectsWith(() => checkArtifact(header, ctx, "ertacache", path), "ARTIFACT_MISMATCH");
    assert.match(err.message, /--method ertacache --steps 20 --cfg 3 --set computed=25 --set granularity=tensor --out/);
  });
});
