/** Moving Fashion-MNIST (src/video/moving-fashion.ts): bit-identical to the Python recipe's generator. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadGarments, parseGarmentIdx } from "../src/video/garments.ts";
import { movingFashion, movingFashionFrames, mulberry32 } from "../src/video/moving-fashion.ts";
import { assertRejectsWith } from "./helpers.ts";

interface Fixture {
  mulberry32_seed1: number[];
  cases: { seed: number; frames: number; canvas: number; objects: number; video: string }[];
}

const fixture = JSON.parse(readFileSync(join(import.meta.dirname, "fixtures/moving-fashion.json"), "utf8")) as Fixture;

describe("Moving Fashion-MNIST generator", () => {
  it("mulberry32 gives the Python recipe's sequence", () => {
    const rng = mulberry32(1);
    assert.deepEqual(
      fixture.mulberry32_seed1.map(() => rng()),
      fixture.mulberry32_seed1,
    );
  });

  it("produces the frames training/moving_fashion.py recorded, byte for byte", async () => {
    const bank = await loadGarments();
    assert.equal(bank.count, 1000);
    for (const c of fixture.cases) {
      const video = movingFashion(bank, c);
      const expected = new Uint8Array(Buffer.from(c.video, "base64"));
      assert.equal(video.length, c.frames * c.canvas * c.canvas);
      assert.deepEqual(video, expected, `seed ${c.seed}, ${c.frames} frames, canvas ${c.canvas}`);
    }
  });

  it("moves: consecutive frames differ and garments stay on the canvas", async () => {
    const bank = await loadGarments();
    const frames = [...movingFashionFrames(bank, { seed: 4, frames: 6 })];
    for (let f = 1; f < frames.length; f++) assert.notDeepEqual(frames[f], frames[f - 1]);
    for (const frame of frames)
      assert.ok(
        frame.some((v) => v > 100),
        "a garment is visible",
      );
  });

  it("rejects a file that is not an IDX of 28×28 images", async () => {
    await assertRejectsWith(() => parseGarmentIdx(new Uint8Array(40), "x.idx"), "INPUT_INVALID", /IDX/);
    await assertRejectsWith(() => loadGarments("/nonexistent/garments.idx"), "INPUT_INVALID", /not found/);
  });
});
