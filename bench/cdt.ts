/**
 * `npm run bench:cdt`: the shipped CDT tokenizer (models/cdt-moving-fashion) on held-out Moving Fashion-MNIST
 * videos (test-set garments, seeds from 1,000,000): reconstruction PSNR/SSIM for 1 and more denoising steps and
 * for several chunk sizes; milliseconds per frame; chunked vs whole-video difference; and peak memory (RSS) of
 * `ditto video reconstruct` for videos of 1 + 4×10, 1 + 4×100 and 1 + 4×400 frames, each in its own process, interleaved.
 *
 *   npm run bench:cdt -- [--videos 8] [--frames 17] [--repeats 3] [--threads 1]
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { median } from "../src/bench/harness.ts";
import { loadCdtModel } from "../src/video/cdt-model.ts";
import { decodeVideo, encodeVideo } from "../src/video/codec.ts";
import { loadGarments } from "../src/video/garments.ts";
import { movingFashionFrames, toSignedUnit } from "../src/video/moving-fashion.ts";
import { type ReconstructReport, reconstructVideo } from "../src/video/reconstruct.ts";

const { values } = parseArgs({
  options: {
    videos: { type: "string", default: "8" },
    frames: { type: "string", default: "17" },
    repeats: { type: "string", default: "3" },
    threads: { type: "string", default: "1" },
  },
});
const videos = Number(values.videos);
const frames = Number(values.frames);
const threads = Number(values.threads);
const SEED0 = 1_000_000;

const model = await loadCdtModel(undefined, { session: { intraOpThreads: threads } });
const bank = await loadGarments();

async function quality(label: string, options: { steps?: number; encoderChunk?: number; decoderChunk?: number }) {
  const runs: ReconstructReport[] = [];
  for (let v = 0; v < videos; v++)
    runs.push(await reconstructVideo(model, bank, { seed: SEED0 + v, frames, ...options }));
  const mean = (k: "psnr" | "ssim") => runs.reduce((s, r) => s + r[k], 0) / runs.length;
  const ms = median(runs.map((r) => r.msPerFrame));
  console.log(
    `${label.padEnd(34)} PSNR ${mean("psnr").toFixed(2)} dB  SSIM ${mean("ssim").toFixed(4)}  ${ms.toFixed(2)} ms/frame`,
  );
}

console.log(`${videos} held-out videos of ${frames} frames, ${threads} thread(s)`);
await reconstructVideo(model, bank, { seed: 0, frames }); // warm-up: first runs allocate ONNX Runtime's buffers
for (const steps of [1, 2, 4, 8]) await quality(`steps ${steps} (enc chunk 8, dec chunk 2)`, { steps });
for (const decoderChunk of [1, 4, 1000]) await quality(`steps 1, dec chunk ${decoderChunk} latents`, { decoderChunk });
for (const encoderChunk of [4, 16]) await quality(`steps 1, enc chunk ${encoderChunk} frames`, { encoderChunk });

// Chunked vs whole: the same video through 1-latent / 4-frame chunks and through one chunk.
async function decodeWith(chunkFrames: number, chunkLatents: number, steps: number): Promise<Float32Array[]> {
  const source = [...movingFashionFrames(bank, { seed: SEED0, frames: 41 })].map(toSignedUnit);
  const latents: Float32Array[] = [];
  for await (const c of encodeVideo(model, source, { totalFrames: 41, chunkFrames })) latents.push(...c.frames);
  const out: Float32Array[] = [];
  for await (const c of decodeVideo(model, latents, { totalLatents: latents.length, chunkLatents, steps })) {
    out.push(...c.frames);
  }
  return out;
}
for (const steps of [1, 4]) {
  const chunked = await decodeWith(4, 1, steps);
  const whole = await decodeWith(44, 1000, steps);
  let max = 0;
  chunked.forEach((f, i) => {
    for (let j = 0; j < f.length; j++) max = Math.max(max, Math.abs(f[j] - whole[i][j]));
  });
  console.log(
    `chunked (4 frames / 1 latent) vs whole, 41 frames, ${steps} step(s): max |diff| ${max.toExponential(2)}`,
  );
}
await model.release();

// Peak memory: one process per run, lengths interleaved.
const cli = join(import.meta.dirname, "../src/cli/main.ts");
const LENGTHS = [41, 401, 1601];
const rss: Record<number, number[]> = { 41: [], 401: [], 1601: [] };
const speed: Record<number, number[]> = { 41: [], 401: [], 1601: [] };
const fidelity: Record<number, string> = {};
for (let r = 0; r < Number(values.repeats); r++) {
  for (const n of LENGTHS) {
    const out = execFileSync(
      process.execPath,
      [
        "--import",
        "tsx",
        cli,
        "video",
        "reconstruct",
        "--frames",
        String(n),
        "--seed",
        String(SEED0),
        "--threads",
        String(threads),
        "--json",
      ],
      { encoding: "utf8" },
    );
    const report = JSON.parse(out);
    rss[n].push(report.peakRssMiB);
    speed[n].push(report.msPerFrame);
    fidelity[n] = `PSNR ${report.psnr.toFixed(2)} dB, SSIM ${report.ssim.toFixed(4)}`;
  }
}
for (const n of LENGTHS) {
  console.log(
    `${n} frames: peak RSS median ${median(rss[n]).toFixed(1)} MiB (runs ${rss[n].join(", ")}), ` +
      `${median(speed[n]).toFixed(2)} ms/frame, ${fidelity[n]}`,
  );
}
console.log(
  `peak RSS 401 / 41 frames: ${(median(rss[401]) / median(rss[41])).toFixed(3)}, 1601 / 41: ${(median(rss[1601]) / median(rss[41])).toFixed(3)}`,
);
