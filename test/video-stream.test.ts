/**
 * CDT streaming (shared/specs/cdt.md, "How to test it"), on a tiny random-weight export made by the recipe
 * (`training/export_cdt.py --random --out test/fixtures/cdt-random`): chunked encoding and decoding equal the
 * whole-video pass, the first-chunk and parity rules, state shapes, clearing, noise slicing and flat state memory.
 */
import assert from "node:assert/strict";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import gifenc from "gifenc";
import { garbageCollector } from "../src/node/collect.ts";
import { GifWriter, toGreyLevel } from "../src/video/animation.ts";
import { type CdtModel, loadCdtModel } from "../src/video/cdt-model.ts";
import {
  checkEncoderSplit,
  decoderChunks,
  encoderChunkLengths,
  latentFramesOf,
  videoRangeOf,
} from "../src/video/chunks.ts";
import { decodeVideo, encodeVideo, frameNoise } from "../src/video/codec.ts";
import { assertRejectsWith, maxAbsDiff, tempDir } from "./helpers.ts";

const FIXTURE = join(import.meta.dirname, "fixtures/cdt-random");
const SESSION = { session: { intraOpThreads: 1 } };
const TOL = 1e-5;

/** A deterministic 1 + 4k-frame test video for the 16×16 fixture, values in [-1, 1]. */
function testVideo(frames: number): Float32Array[] {
  return Array.from({ length: frames }, (_, f) =>
    Float32Array.from({ length: 256 }, (_, i) => Math.sin(0.37 * i + 1.3 * f) * Math.cos(0.11 * i * f)),
  );
}

async function encodeAll(model: CdtModel, video: Float32Array[], options: { chunk?: number; split?: number[] }) {
  const out: Float32Array[] = [];
  const starts: number[] = [];
  for await (const c of encodeVideo(model, video, {
    totalFrames: video.length,
    chunkFrames: options.chunk,
    split: options.split,
  })) {
    starts.push(c.start);
    out.push(...c.frames);
  }
  return { latents: out, starts };
}

async function decodeAll(model: CdtModel, latents: Float32Array[], chunkLatents: number, steps = 1, seed = 0) {
  const out: Float32Array[] = [];
  const chunks: { start: number; length: number }[] = [];
  for await (const c of decodeVideo(model, latents, { totalLatents: latents.length, chunkLatents, steps, seed })) {
    chunks.push({ start: c.start, length: c.frames.length });
    out.push(...c.frames);
  }
  return { frames: out, chunks };
}

function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  assert.equal(a.length, b.length, "frame counts differ");
  return Math.max(...a.map((x, i) => maxAbsDiff(x, b[i])));
}

describe("CDT chunk plans", () => {
  it("encoder: remainder first, then whole chunks; any 1 + 4k video", () => {
    assert.deepEqual(encoderChunkLengths(17, 8), [1, 8, 8]);
    assert.deepEqual(encoderChunkLengths(21, 8), [5, 8, 8]);
    assert.deepEqual(encoderChunkLengths(9, 12), [9]);
    assert.deepEqual(encoderChunkLengths(1, 4), [1]);
  });

  it("decoder: latent chunk [a, b) is video frames [4a − 3, 4b − 3), chunk 0 from frame 0", () => {
    assert.deepEqual(decoderChunks(5, 2), [
      { start: 0, end: 2 },
      { start: 2, end: 4 },
      { start: 4, end: 5 },
    ]);
    assert.deepEqual(videoRangeOf({ start: 0, end: 1 }), { start: 0, end: 1 });
    assert.deepEqual(videoRangeOf({ start: 0, end: 2 }), { start: 0, end: 5 });
    assert.deepEqual(videoRangeOf({ start: 2, end: 4 }), { start: 5, end: 13 });
  });

  it("rejects videos that are not 1 + 4k frames and splits of the wrong parity", async () => {
    await assertRejectsWith(() => latentFramesOf(8), "INPUT_INVALID", /1 \+ 4k/);
    await assertRejectsWith(() => encoderChunkLengths(17, 6), "OPTION_INVALID", /multiple of 4/);
    await assertRejectsWith(() => checkEncoderSplit([3, 14], 17), "INPUT_INVALID", /remainder-first/);
    await assertRejectsWith(() => checkEncoderSplit([1, 6, 10], 17), "INPUT_INVALID", /chunk 1 has 6 frames/);
    await assertRejectsWith(() => checkEncoderSplit([1, 8], 17), "INPUT_INVALID", /cover 9 frames/);
  });
});

describe("CDT streaming on a random-weight export", () => {
  let model: CdtModel;
  before(async () => {
    model = await loadCdtModel(FIXTURE, SESSION);
  });
  after(async () => {
    await model.release();
  });

  it("the slot list matches the graphs: one slot per causal temporal conv, 2 frames each (1 for downsamplers)", () => {
    const kinds = model.encoder.slots.map((s) => s.kind);
    assert.equal(kinds.filter((k) => k === "down").length, 2, "two time downsamplers (time ×4)");
    for (const net of [model.encoder, model.context, model.denoiser]) {
      assert.ok(net.slots.length > 0);
      for (const s of net.slots) assert.equal(s.frames, s.kind === "down" ? 1 : 2, s.name);
    }
  });

  it("chunked encoding equals encoding the whole video (remainder-first chunks, explicit splits)", async () => {
    const video = testVideo(17);
    const whole = await encodeAll(model, video, { chunk: 20 });
    assert.equal(whole.latents.length, 5);
    for (const options of [{ chunk: 4 }, { chunk: 8 }, { chunk: 12 }, { split: [1, 4, 12] }, { split: [9, 8] }]) {
      const chunked = await encodeAll(model, video, options);
      const d = maxDiff(chunked.latents, whole.latents);
      assert.ok(d <= TOL, `${JSON.stringify(options)}: max |chunked − whole| = ${d}`);
    }
    // The first chunk is the remainder: 17 = 1 + 8 + 8 → latent chunks start at 0, 1, 3.
    assert.deepEqual((await encodeAll(model, video, { chunk: 8 })).starts, [0, 1, 3]);
  });

  it("the encoder refuses a split whose parity would differ from the whole pass", async () => {
    await assertRejectsWith(() => encodeAll(model, testVideo(17), { split: [3, 6, 8] }), "INPUT_INVALID", /1 \+ 4j/);
  });

  it("chunked single-step decoding equals whole-video decoding, 1-latent chunks included", async () => {
    const { latents } = await encodeAll(model, testVideo(21), { chunk: 8 });
    const whole = await decodeAll(model, latents, latents.length);
    assert.equal(whole.frames.length, 21, "1 + 4k frames out");
    for (const chunk of [1, 2, 3, 4]) {
      const chunked = await decodeAll(model, latents, chunk);
      const d = maxDiff(chunked.frames, whole.frames);
      assert.ok(d <= TOL, `chunk ${chunk} latents: max |chunked − whole| = ${d}`);
    }
  });

  it("chunked multi-step decoding equals whole-video decoding (caches cleared per step's sweep)", async () => {
    const { latents } = await encodeAll(model, testVideo(13), { chunk: 4 });
    for (const steps of [2, 3]) {
      const whole = await decodeAll(model, latents, latents.length, steps);
      const chunked = await decodeAll(model, latents, 1, steps);
      const d = maxDiff(chunked.frames, whole.frames);
      assert.ok(d <= TOL, `${steps} steps: max |chunked − whole| = ${d}`);
      assert.ok(maxDiff(whole.frames, (await decodeAll(model, latents, latents.length, 1)).frames) > 1e-3);
    }
  });

  it("first chunk: latent frame 0 decodes to one frame, later latents to four", async () => {
    const { latents } = await encodeAll(model, testVideo(9), { chunk: 8 });
    const { chunks } = await decodeAll(model, latents, 1);
    assert.deepEqual(chunks, [
      { start: 0, length: 1 },
      { start: 1, length: 4 },
      { start: 5, length: 4 },
    ]);
    const single = await decodeAll(model, latents.slice(0, 1), 1);
    assert.equal(single.frames.length, 1);
  });

  it("the noise is one whole-video draw: chunks slice it, seeds change it", async () => {
    const a = frameNoise(3, 7, 256, 0.8);
    assert.deepEqual(a, frameNoise(3, 7, 256, 0.8));
    assert.notDeepEqual(a, frameNoise(3, 8, 256, 0.8));
    assert.notDeepEqual(a, frameNoise(4, 7, 256, 0.8));
    const { latents } = await encodeAll(model, testVideo(9), { chunk: 8 });
    const s0 = await decodeAll(model, latents, 1, 1, 0);
    const s1 = await decodeAll(model, latents, 1, 1, 1);
    assert.ok(maxDiff(s0.frames, s1.frames) > 0, "another seed, another decoding");
  });

  it("clearing: two videos through one model give what fresh models give", async () => {
    const first = await encodeAll(model, testVideo(9), { chunk: 4 });
    const second = await encodeAll(model, testVideo(13).slice(4), { chunk: 4 });
    const fresh = await loadCdtModel(FIXTURE, SESSION);
    try {
      const alone = await encodeAll(fresh, testVideo(13).slice(4), { chunk: 4 });
      assert.equal(maxDiff(second.latents, alone.latents), 0);
      const decoded = await decodeAll(model, first.latents, 1);
      const decodedFresh = await decodeAll(fresh, first.latents, 1);
      assert.equal(maxDiff(decoded.frames, decodedFresh.frames), 0);
    } finally {
      await fresh.release();
    }
  });

  it("cache state memory does not grow with the video", async () => {
    const sizes: number[] = [];
    for (const frames of [9, 25, 49]) {
      const { latents } = await encodeAll(model, testVideo(frames), { chunk: 8 });
      await decodeAll(model, latents, 2);
      sizes.push(model.encoder.stateBytes() + model.context.stateBytes() + model.denoiser.stateBytes());
    }
    assert.ok(sizes[0] > 0);
    assert.deepEqual(sizes, [sizes[0], sizes[0], sizes[0]]);
  });

  it("the ONNX graphs compute what PyTorch computed for the recipe's video (reference.json)", async () => {
    const ref = JSON.parse(readFileSync(join(FIXTURE, "reference.json"), "utf8")) as { latent: number[]; x0: number[] };
    const { loadGarments } = await import("../src/video/garments.ts");
    const { movingFashionFrames } = await import("../src/video/moving-fashion.ts");
    const bank = await loadGarments();
    const video = [...movingFashionFrames(bank, { seed: 3, frames: 9, canvas: 16, objects: 1 })].map((f) =>
      Float32Array.from(f, (v) => v / 127.5 - 1),
    );
    const { latents } = await encodeAll(model, video, { chunk: 4 });
    // reference latent is [L, F, h, w]; ours is per frame [L, h, w]
    const [L, F, plane] = [2, 3, 16];
    const ours = new Float32Array(L * F * plane);
    latents.forEach((z, f) => {
      for (let c = 0; c < L; c++) ours.set(z.subarray(c * plane, (c + 1) * plane), (c * F + f) * plane);
    });
    assert.ok(maxAbsDiff(ours, ref.latent) < 1e-4, `latent vs PyTorch: ${maxAbsDiff(ours, ref.latent)}`);
    const decoded = await decodeAll(model, latents, 1, 1, 0);
    // reference x0 used x_init = 0: decode with γ → 0 is the same input.
    const zero: Float32Array[] = [];
    for await (const c of decodeVideo(model, latents, { totalLatents: 3, chunkLatents: 1, gamma: 1e-30 }))
      zero.push(...c.frames);
    const flat = new Float32Array(9 * 256);
    zero.forEach((f, i) => {
      flat.set(f, i * 256);
    });
    assert.ok(maxAbsDiff(flat, ref.x0) < 1e-4, `x0 vs PyTorch: ${maxAbsDiff(flat, ref.x0)}`);
    assert.equal(decoded.frames.length, 9);
  });
});

describe("CDT state shape checks", () => {
  function corrupted(edit: (manifest: Record<string, unknown>) => void): string {
    const dir = tempDir("ditto-cdt-");
    cpSync(FIXTURE, dir, { recursive: true });
    const path = join(dir, "manifest.json");
    const manifest = JSON.parse(readFileSync(path, "utf8"));
    edit(manifest);
    writeFileSync(path, JSON.stringify(manifest));
    return dir;
  }

  it("a state_out whose shape disagrees with its slot is a clear error naming the slot", async () => {
    const dir = corrupted((m) => {
      const slots = (m.networks as { encoder: { slots: { frames: number }[] } }).encoder.slots;
      slots[0].frames = 1;
    });
    const model = await loadCdtModel(dir, SESSION);
    try {
      await assertRejectsWith(
        () => encodeAll(model, testVideo(9), { chunk: 4 }),
        "MODEL_MALFORMED",
        /state_out_0 \(slot enc\.conv_in\) has shape \[1, 1, 2, 16, 16\] but the manifest's slot says \[1, 1, 1, 16, 16\]/,
      );
    } finally {
      await model.release();
    }
  });

  it("a state_in whose shape disagrees with the graph is a clear error, not a crash", async () => {
    const dir = corrupted((m) => {
      const slots = (m.networks as { context: { slots: { shape: number[] }[] } }).context.slots;
      slots[2].shape[0] += 1;
    });
    const model = await loadCdtModel(dir, SESSION);
    try {
      const { latents } = await encodeAll(model, testVideo(5), { chunk: 4 });
      await assertRejectsWith(() => decodeAll(model, latents, 1), "MODEL_MALFORMED", /context: .*slot shapes/);
    } finally {
      await model.release();
    }
  });

  it("a slot list of the wrong length is refused at load time", async () => {
    const dir = corrupted((m) => {
      (m.networks as { denoiser: { slots: unknown[] } }).denoiser.slots.pop();
    });
    await assertRejectsWith(() => loadCdtModel(dir, SESSION), "MODEL_MALFORMED", /state inputs .* slots/);
  });

  it("a malformed manifest names the field", async () => {
    const dir = corrupted((m) => {
      (m.networks as { encoder: { slots: { pad: string }[] } }).encoder.slots[1].pad = "replicate";
    });
    await assertRejectsWith(() => loadCdtModel(dir, SESSION), "MANIFEST_INVALID", /slots\[1\]\.pad/);
  });
});

describe("GIF writing", () => {
  it("streams one piece per frame, together the file gifenc writes in one go", () => {
    const frames = testVideo(5);
    const pieces: Uint8Array[] = [];
    const writer = new GifWriter({ width: 16, height: 16, panels: 1, scale: 1, sink: (b) => pieces.push(b.slice()) });
    for (const f of frames) writer.addFrame([f]);
    writer.finish();
    assert.equal(pieces.length, frames.length + 1, "a piece per frame and the trailer");
    // Reference: gifenc's default (auto) mode, whole file in memory, the same 20×20 frames (16 pixels and a 2-pixel border).
    const whole = gifenc.GIFEncoder();
    const grey = Array.from({ length: 256 }, (_, i) => [i, i, i]);
    frames.forEach((f, i) => {
      const img = new Uint8Array(20 * 20).fill(255);
      for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) img[(2 + y) * 20 + 2 + x] = toGreyLevel(f[y * 16 + x]);
      whole.writeFrame(img, 20, 20, { palette: i === 0 ? grey : undefined, delay: 100 });
    });
    whole.finish();
    assert.deepEqual(Buffer.concat(pieces), Buffer.from(whole.bytesView()));
  });
});

describe("collecting a chunk's dead buffers", () => {
  it("the collector frees a chunk's dead buffers at once", async () => {
    const collect = garbageCollector();
    assert.ok(collect, "V8's gc could not be exposed at run time");
    // 8 MiB of buffers, like a chunk's outputs, dead once the next chunk has run; watched through weak references.
    const refs = Array.from({ length: 8 }, (_, i) => new WeakRef(new Float32Array(1 << 18).fill(i)));
    await new Promise((r) => setImmediate(r)); // a WeakRef keeps its target until the task that made it ends
    collect();
    assert.equal(refs.filter((r) => r.deref() !== undefined).length, 0, "dead buffers survived the collection");
  });
});

describe("ditto video", () => {
  it("reconstruct writes the animation and the frame strip and reports the metrics", async () => {
    const { ditto } = await import("./helpers.ts");
    const dir = tempDir("ditto-video-");
    const gif = join(dir, "v.gif");
    const strip = join(dir, "v.png");
    const args = ["video", "reconstruct", "--model", FIXTURE, "--frames", "9", "--chunk", "4", "--dec-chunk", "1"];
    const r = await ditto([...args, "--out", gif, "--strip", strip, "--threads", "1", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.frames, 9);
    for (const key of ["psnr", "ssim", "msPerFrame", "stateBytes", "peakRssMiB"])
      assert.ok(Number.isFinite(report[key]), key);
    assert.equal(readFileSync(gif).subarray(0, 6).toString(), "GIF89a");
    assert.deepEqual([...readFileSync(strip).subarray(1, 4)], [0x50, 0x4e, 0x47]);
    const bad = await ditto(["video", "reconstruct", "--model", FIXTURE, "--frames", "8"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /1 \+ 4k frames .*\[INPUT_INVALID\]/);
  });

  it("encode then decode round-trips through a latent file", async () => {
    const { ditto } = await import("./helpers.ts");
    const dir = tempDir("ditto-video-");
    const latent = join(dir, "z.json");
    const enc = await ditto(["video", "encode", "--model", FIXTURE, "--frames", "13", "--out", latent]);
    assert.equal(enc.code, 0, enc.stderr);
    assert.match(enc.stdout, /13 frames → 4 latent frames/);
    const dec = await ditto(["video", "decode", "--model", FIXTURE, "--latent", latent, "--out", join(dir, "d.gif")]);
    assert.equal(dec.code, 0, dec.stderr);
    assert.match(dec.stdout, /4 latent frames → 13 frames/);
  });
});
