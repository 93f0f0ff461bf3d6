import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Tensor } from "onnxruntime-common";
import { decreasingSchedule, hunyuan50, splitRuns, uniformSchedule } from "../src/cache/policies/profilingdit.ts";
import { loadPipeline } from "../src/pipeline.ts";
import {
  foregroundMasks,
  foregroundRatio,
  otsu,
  profileProfilingDit,
  receivedAttention,
} from "../src/profiling/profilingdit.ts";
import { SHIPPED_MODEL, tempDir } from "./helpers.ts";

describe("ProfilingDiT scoring", () => {
  it("takes the attention a token receives as the column mean over queries and heads", () => {
    // one row, one head, 4×4 probabilities (rows sum to 1)
    const p = new Tensor(
      "float32",
      Float32Array.from([0.7, 0.1, 0.1, 0.1, 0.1, 0.7, 0.1, 0.1, 0.4, 0.4, 0.1, 0.1, 0.25, 0.25, 0.25, 0.25]),
      [1, 1, 4, 4],
    );
    const [a] = receivedAttention(p);
    assert.deepEqual(
      Array.from(a, (v) => Math.round(v * 1e6) / 1e6),
      [0.3625, 0.3625, 0.1375, 0.1375],
    );
  });

  it("scores a hand-made map against a known mask: R = |high-attention ∩ FG| / |FG|", () => {
    const mask = [[true, true, false, false]];
    // tokens 0 and 2 above θ = 1/4
    assert.equal(foregroundRatio([Float64Array.from([0.4, 0.2, 0.3, 0.1])], mask), 0.5);
    // a block attending only to the masked tokens gets R = 1, one attending only to the background R = 0
    assert.equal(foregroundRatio([Float64Array.from([0.5, 0.5, 0, 0])], mask), 1);
    assert.equal(foregroundRatio([Float64Array.from([0, 0, 0.5, 0.5])], mask), 0);
  });

  it("finds the bright garment as foreground on a dark background", () => {
    const image = new Float32Array(8 * 8).fill(-1);
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) image[y * 8 + x] = 0.9; // top-left patch bright
    const [intensity] = foregroundMasks(image, 1, { channels: 1, height: 8, width: 8 }, 4, "intensity");
    assert.deepEqual(intensity, [true, false, false, false]);
    const [pca] = foregroundMasks(image, 1, { channels: 1, height: 8, width: 8 }, 4, "pca-otsu");
    assert.deepEqual(pca, [true, false, false, false], "the smaller side of the principal component");
    assert.ok(otsu([0, 0.1, 0.05, 0.9, 1]) > 0.1 && otsu([0, 0.1, 0.05, 0.9, 1]) < 0.9);
  });
});

describe("ProfilingDiT schedules and runs", () => {
  it("decomposes cached blocks into runs and isolated blocks, rejecting blocks the model lacks", () => {
    assert.deepEqual(splitRuns([0, 2, 3, 4, 7, 8], 12), {
      runs: [
        { start: 2, end: 4 },
        { start: 7, end: 8 },
      ],
      isolated: [0],
    });
    assert.throws(() => splitRuns([3, 12], 12), /block 12 does not exist: this model has blocks 0–11/);
  });

  it("generates the spec's uniform, decreasing and rescaled Hunyuan schedules", () => {
    assert.deepEqual(uniformSchedule(50, 6, 6), [6, 12, 18, 24, 30, 36, 42, 48]);
    assert.deepEqual(decreasingSchedule(50, 6, 12, 2), [6, 18, 27, 34, 40, 44, 47]);
    const h = hunyuan50(25);
    assert.ok(h.every((s, i) => i === 0 || s > h[i - 1]));
  });
});

describe("ProfilingDiT on the shipped model", () => {
  it("profiles deterministically, round-trips its artifact, and is bit-identical at refresh interval 1", async () => {
    const pipeline = await loadPipeline(SHIPPED_MODEL);
    const options = { steps: 6, cfg: 3, items: 2 };
    const a = await profileProfilingDit(pipeline, options);
    const b = await profileProfilingDit(pipeline, options);
    assert.deepEqual(a, b);
    assert.equal(a.profile.R.length, 12);
    assert.equal(a.blocks.cached.length, 7);
    const path = join(tempDir(), "pd.json");
    writeFileSync(path, JSON.stringify(a));
    const opts = { classes: [4], seeds: [9], steps: 6, cfg: 3 };
    const base = await pipeline.generate(opts);
    const every = await pipeline.generate({ ...opts, cache: `profilingdit:artifact=${path},interval=1,s0=0` });
    assert.deepEqual(every.samples, base.samples);
    const cached = await pipeline.generate({ ...opts, cache: `profilingdit:artifact=${path},interval=3,s0=1` });
    assert.ok(cached.reports[0].unitsSkipped > 0);
    await pipeline.release();
  });
});
