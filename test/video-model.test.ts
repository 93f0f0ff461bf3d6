/** The shipped CDT tokenizer (models/cdt-moving-fashion) on held-out Moving Fashion-MNIST videos. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type CdtModel, loadCdtModel } from "../src/video/cdt-model.ts";
import { decodeVideo, encodeVideo } from "../src/video/codec.ts";
import { loadGarments } from "../src/video/garments.ts";
import type { GarmentBank } from "../src/video/moving-fashion.ts";
import { movingFashionFrames, toSignedUnit } from "../src/video/moving-fashion.ts";
import { reconstructVideo } from "../src/video/reconstruct.ts";
import { maxAbsDiff } from "./helpers.ts";

const HELD_OUT_SEED = 1_000_000;

describe("shipped CDT tokenizer", () => {
  let model: CdtModel;
  let bank: GarmentBank;
  before(async () => {
    model = await loadCdtModel(undefined, { session: { intraOpThreads: 1 } });
    bank = await loadGarments();
  });
  after(async () => {
    await model.release();
  });

  it("reconstructs held-out videos at one step with PSNR ≥ 25 dB", async () => {
    for (const seed of [HELD_OUT_SEED + 1, HELD_OUT_SEED + 2]) {
      const report = await reconstructVideo(model, bank, { seed, frames: 17 });
      assert.equal(report.frames, 17);
      assert.ok(report.psnr >= 25, `seed ${seed}: PSNR ${report.psnr.toFixed(2)} dB`);
      assert.ok(report.ssim >= 0.8, `seed ${seed}: SSIM ${report.ssim.toFixed(3)}`);
    }
  });

  it("decodes a different video to a different result (not a constant output)", async () => {
    const frames = async (seed: number) => {
      const source = [...movingFashionFrames(bank, { seed, frames: 5 })].map(toSignedUnit);
      const z: Float32Array[] = [];
      for await (const c of encodeVideo(model, source, { totalFrames: 5 })) z.push(...c.frames);
      const out: Float32Array[] = [];
      for await (const c of decodeVideo(model, z, { totalLatents: 2 })) out.push(...c.frames);
      return out;
    };
    const [a, b] = [await frames(HELD_OUT_SEED + 3), await frames(HELD_OUT_SEED + 4)];
    assert.ok(maxAbsDiff(a[4], b[4]) > 0.5);
  });

  it("chunked reconstruction equals whole-video reconstruction", async () => {
    const decoded = async (chunkFrames: number, chunkLatents: number) => {
      const source = [...movingFashionFrames(bank, { seed: HELD_OUT_SEED, frames: 21 })].map(toSignedUnit);
      const z: Float32Array[] = [];
      for await (const c of encodeVideo(model, source, { totalFrames: 21, chunkFrames })) z.push(...c.frames);
      const out: Float32Array[] = [];
      for await (const c of decodeVideo(model, z, { totalLatents: z.length, chunkLatents })) out.push(...c.frames);
      return out;
    };
    const whole = await decoded(24, 6);
    const chunked = await decoded(4, 1);
    assert.equal(whole.length, 21);
    const d = Math.max(...whole.map((f, i) => maxAbsDiff(f, chunked[i])));
    assert.ok(d <= 1e-5, `max |chunked − whole| = ${d}`);
  });
});
