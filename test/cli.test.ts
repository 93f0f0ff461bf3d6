/** The command line: contracts other tools parse (--json) and clear errors for bad input, each with exit code 2. */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ditto, llamaModel, tempDir } from "./helpers.ts";

describe("ditto CLI", () => {
  it("generate --json prints a machine-readable summary and writes the PNG", async () => {
    const dir = tempDir();
    const out = join(dir, "grid.png");
    const r = await ditto([
      "generate",
      "--classes",
      "1,3",
      "--seeds",
      "0..1",
      "--steps",
      "3",
      "--out",
      out,
      "--json",
      "--quiet",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.equal(summary.samples, 4);
    assert.deepEqual(summary.classes, [1, 1, 3, 3]);
    assert.deepEqual(summary.seeds, [0, 1, 0, 1]);
    assert.equal(summary.policy, "none");
    assert.ok(summary.wallMs > 0);
    assert.equal(summary.finite, true);
    assert.ok(existsSync(out));
  });

  it("generate --compare works with a calibrated policy (its warm-up runs at the artifact's step count)", async () => {
    const out = join(tempDir(), "erta.png");
    const artifact = join(import.meta.dirname, "../bench/artifacts/ertacache-c35.json");
    const r = await ditto(
      [
        "generate",
        "--cache",
        `ertacache:artifact=${artifact}`,
        "--compare",
        "--repeats",
        "1",
        "--json",
        "--quiet",
      ].concat(["--classes", "3", "--out", out]),
    );
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.equal(summary.steps, 50);
    assert.ok(summary.speedup > 0 && summary.uncachedWallMs > 0);
    assert.ok(summary.psnr > 25 && summary.psnr < Number.POSITIVE_INFINITY, `PSNR ${summary.psnr}`);
    // A finite PSNR says the images differ; at ~50 dB SSIM rounds to 1.
    assert.ok(summary.ssim > 0.9 && summary.ssim <= 1);
  });

  it("inspect --json lists blocks with attn and mlp units, their params and FLOPs", async () => {
    const r = await ditto(["inspect", join(llamaModel(), "model.onnx"), "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    assert.equal(info.blocks.length, 3);
    for (const b of info.blocks) {
      assert.deepEqual(
        b.units.map((u: { kind: string }) => u.kind),
        ["attn", "mlp"],
      );
      for (const u of b.units) assert.ok(u.params > 0 && u.flops > 0);
    }
    assert.ok(info.blockFlopsFraction > 0 && info.blockFlopsFraction < 1);
  });

  it("fails clearly on an unknown model path, a corrupt ONNX file and an unknown policy", async () => {
    const missing = await ditto(["generate", "--model", "/no/such/model", "--quiet"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /model path not found: \/no\/such\/model.*\[MODEL_NOT_FOUND\]/);

    const dir = llamaModel();
    writeFileSync(join(dir, "model.onnx"), "garbage, not protobuf");
    const corrupt = await ditto(["generate", "--model", dir, "--quiet"]);
    assert.equal(corrupt.code, 2);
    assert.match(corrupt.stderr, /not a valid ONNX file|holds no ONNX graph/);
    assert.doesNotMatch(corrupt.stderr, /at .*\.ts:\d+/, "no stack trace");

    const policy = await ditto(["generate", "--steps", "2", "--cache", "teleport", "--quiet"]);
    assert.equal(policy.code, 2);
    assert.match(policy.stderr, /unknown cache policy 'teleport'; choose none, fora/);
  });

  it("init-manifest writes a manifest marking what a person must confirm", async () => {
    const dir = llamaModel();
    const path = join(dir, "manifest.json");
    const r = await ditto(["init-manifest", join(dir, "model.onnx"), "--out", join(dir, "guessed.json")]);
    assert.equal(r.code, 0, r.stderr);
    const guessed = JSON.parse(readFileSync(join(dir, "guessed.json"), "utf8"));
    assert.equal(guessed.inputs.sample.name, "x");
    assert.equal(guessed.inputs.timestep.name, "t");
    assert.equal(guessed.inputs.condition.numClasses, 10);
    assert.equal(guessed.inputs.condition.nullClass, 10);
    assert.ok(guessed.needsReview.includes("objective.kind"));
    const again = await ditto(["init-manifest", join(dir, "model.onnx")]);
    assert.equal(again.code, 2, "refuses to overwrite manifest.json without --force");
    assert.ok(existsSync(path));
  });
});

describe("ditto generate --cache-config", () => {
  it("reads the policy from JSON and rejects a bad one with the accepted options", async () => {
    const dir = tempDir();
    const good = join(dir, "ts.json");
    writeFileSync(good, JSON.stringify({ policy: "taylorseer", interval: 2, order: 1 }));
    const ok = await ditto([
      "generate",
      "--classes",
      "2",
      "--steps",
      "4",
      "--cache-config",
      good,
      "--out",
      join(dir, "g.png"),
      "--json",
      "--quiet",
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).spec, "taylorseer:interval=2,order=1,warmup=2,variable=step");
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ policy: "taylorseer", intervall: 2 }));
    const r = await ditto(["generate", "--steps", "2", "--cache-config", bad, "--quiet"]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /unknown option 'intervall' for cache policy taylorseer; its options are interval, order, warmup, variable, basis, sigma, corrector, gain or scope/,
    );
  });
});
