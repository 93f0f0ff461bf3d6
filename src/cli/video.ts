/** `ditto video encode|decode|reconstruct`: a CDT video tokenizer run chunk by chunk through its feature cache. */
import { closeSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { parseArgs } from "node:util";
import { InputError } from "../errors.ts";
import { garbageCollector } from "../node/collect.ts";
import { type AnimationOptions, frameStripPng, GifWriter } from "../video/animation.ts";
import { type CdtModel, DEFAULT_CDT_DIR, loadCdtModel } from "../video/cdt-model.ts";
import { latentFramesOf } from "../video/chunks.ts";
import { decodeVideo, encodeVideo } from "../video/codec.ts";
import { loadGarments } from "../video/garments.ts";
import { movingFashionFrames, toSignedUnit } from "../video/moving-fashion.ts";
import { reconstructVideo } from "../video/reconstruct.ts";
import { parseNumber } from "./args.ts";
import { sessionOptions } from "./common.ts";
import { checkOutputFile } from "./output-path.ts";

const HELP = `Usage: ditto video <encode|decode|reconstruct> [options]

CDT (arXiv 2503.03708): a causal video tokenizer with a diffusion decoder, run chunk by chunk; every causal
temporal conv carries its last input frames to the next chunk, so chunked output equals whole-video output and
memory does not grow with the video. Videos are synthetic Moving Fashion-MNIST (held-out garments), 1 + 4k frames.

  reconstruct      encode and decode a synthetic video; prints PSNR/SSIM, ms per frame and peak memory
  encode           write the latent of a synthetic video (--out FILE.json)
  decode           decode a latent file (--latent FILE.json) to an animation

  --model DIR        a ditto.stream.v1 export (default ${DEFAULT_CDT_DIR})
  --seed N           synthetic video seed (default 0)
  --frames N         video length, 1 + 4k (default 17)
  --objects N        garments per video (default 2)
  --garments FILE    IDX file of 28×28 garments (default: the shipped Fashion-MNIST test subset)
  --chunk N          encoder chunk in frames, a multiple of 4 (default: the manifest's)
  --dec-chunk N      decoder chunk in latent frames (default: the manifest's)
  --steps S          denoising steps (default 1)
  --noise-seed N     seed of the decoder's noise (default 0)
  --latent FILE      decode: the latent file written by encode
  --out FILE         encode: the latent (.json); decode/reconstruct: an animated GIF (reconstruct: original | decoded)
  --strip FILE.png   a frame strip (reconstruct: originals above, reconstructions below; first 17 frames)
  --threads N        ONNX Runtime threads per operator
  --json             print the report as JSON
  -h, --help         this help`;

const OPTIONS = {
  model: { type: "string" },
  seed: { type: "string" },
  frames: { type: "string" },
  objects: { type: "string" },
  garments: { type: "string" },
  chunk: { type: "string" },
  "dec-chunk": { type: "string" },
  steps: { type: "string" },
  "noise-seed": { type: "string" },
  latent: { type: "string" },
  out: { type: "string" },
  strip: { type: "string" },
  threads: { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

const STRIP_FRAMES = 17;

type Values = ReturnType<typeof parse>["values"];

function parse(argv: string[]) {
  return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
}

export async function run(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv);
  const action = positionals[0];
  if (values.help || !action) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  if (!["encode", "decode", "reconstruct"].includes(action)) {
    throw new InputError("OPTION_INVALID", `unknown video action '${action}': use encode, decode or reconstruct`);
  }
  if (values.out) checkOutputFile("out", values.out, action === "encode" ? "latent.json" : "video.gif");
  if (values.strip) checkOutputFile("strip", values.strip, "strip.png");
  const model = await loadCdtModel(values.model ?? DEFAULT_CDT_DIR, { session: sessionOptions(values) });
  try {
    if (action === "reconstruct") await reconstruct(model, values);
    else if (action === "encode") await encode(model, values);
    else await decode(model, values);
  } finally {
    await model.release();
  }
}

function int(values: Values, flag: keyof Values, fallback?: number, min = 0): number | undefined {
  return parseNumber(flag, values[flag] as string | undefined, true, { min }) ?? fallback;
}

async function reconstruct(model: CdtModel, values: Values): Promise<void> {
  const { height: h, width: w } = model.manifest.video;
  const frames = int(values, "frames", 17, 1) as number;
  latentFramesOf(frames);
  const bank = await loadGarments(values.garments);
  const gif = values.out ? gifFile(values.out, { width: w, height: h, panels: 2 }) : undefined;
  const strip: Float32Array[][] = [[], []];
  const report = await reconstructVideo(model, bank, {
    seed: int(values, "seed", 0) as number,
    frames,
    objects: int(values, "objects", 2, 1),
    encoderChunk: int(values, "chunk", undefined, 4),
    decoderChunk: int(values, "dec-chunk", undefined, 1),
    steps: int(values, "steps", 1, 1),
    noiseSeed: int(values, "noise-seed", 0),
    onFrame(i, original, decoded) {
      gif?.writer.addFrame([original, decoded]);
      if (values.strip && i < STRIP_FRAMES) {
        strip[0].push(original);
        strip[1].push(decoded);
      }
    },
    onChunk: garbageCollector(),
  }).catch((err) => {
    gif?.abandon();
    throw err;
  });
  gif?.finish();
  if (values.strip) writeFileSync(values.strip, frameStripPng(strip, h, w));
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  const out = { ...report, peakRssMiB: Math.round(peakRssMiB * 10) / 10 };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return;
  }
  process.stdout.write(
    `${report.frames} frames: PSNR ${report.psnr.toFixed(2)} dB, SSIM ${report.ssim.toFixed(4)}, ` +
      `${report.msPerFrame.toFixed(2)} ms/frame, cache state ${report.stateBytes} bytes, peak RSS ${out.peakRssMiB} MiB\n`,
  );
}

interface LatentFile {
  format: "ditto.latent.v1";
  /** [frames, channels, height, width] */
  shape: [number, number, number, number];
  data: string;
}

async function encode(model: CdtModel, values: Values): Promise<void> {
  if (!values.out) throw new InputError("OPTION_INVALID", "encode needs --out FILE.json for the latent");
  const { height: h } = model.manifest.video;
  const frames = int(values, "frames", 17, 1) as number;
  const bank = await loadGarments(values.garments);
  const source = (function* () {
    const video = { seed: int(values, "seed", 0) as number, frames, canvas: h, objects: int(values, "objects", 2, 1) };
    for (const frame of movingFashionFrames(bank, video)) yield toSignedUnit(frame);
  })();
  const latents: Float32Array[] = [];
  for await (const chunk of encodeVideo(model, source, { totalFrames: frames, chunkFrames: int(values, "chunk") })) {
    latents.push(...chunk.frames);
  }
  const { channels, space } = model.manifest.latent;
  const all = new Float32Array(latents.length * latents[0].length);
  latents.forEach((z, i) => {
    all.set(z, i * z.length);
  });
  const file: LatentFile = {
    format: "ditto.latent.v1",
    shape: [latents.length, channels, h / space, model.manifest.video.width / space],
    data: Buffer.from(all.buffer).toString("base64"),
  };
  writeFileSync(values.out, `${JSON.stringify(file)}\n`);
  process.stdout.write(
    `${frames} frames → ${latents.length} latent frames of [${file.shape.slice(1).join(", ")}]: ${values.out}\n`,
  );
}

function readLatent(path: string, model: CdtModel): Float32Array[] {
  let file: LatentFile;
  try {
    file = JSON.parse(readFileSync(path, "utf8")) as LatentFile;
  } catch (err) {
    throw new InputError("INPUT_INVALID", `--latent ${path}: cannot read it (${(err as Error).message})`);
  }
  const { channels, space } = model.manifest.latent;
  const want = [channels, model.manifest.video.height / space, model.manifest.video.width / space];
  if (file.format !== "ditto.latent.v1" || file.shape?.slice(1).some((d, i) => d !== want[i])) {
    throw new InputError(
      "INPUT_INVALID",
      `--latent ${path} is not a ditto.latent.v1 file of [frames, ${want.join(", ")}] latents for this model: ` +
        "write one with `ditto video encode --out FILE.json`",
    );
  }
  const bytes = Buffer.from(file.data, "base64");
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const per = want[0] * want[1] * want[2];
  return Array.from({ length: file.shape[0] }, (_, i) => all.subarray(i * per, (i + 1) * per));
}

async function decode(model: CdtModel, values: Values): Promise<void> {
  if (!values.latent)
    throw new InputError("OPTION_INVALID", "decode needs --latent FILE.json (from ditto video encode)");
  const latents = readLatent(values.latent, model);
  const { height: h, width: w } = model.manifest.video;
  const gif = values.out ? gifFile(values.out, { width: w, height: h, panels: 1 }) : undefined;
  const strip: Float32Array[][] = [[]];
  const collect = garbageCollector();
  let frames = 0;
  const started = performance.now();
  try {
    for await (const chunk of decodeVideo(model, latents, {
      totalLatents: latents.length,
      chunkLatents: int(values, "dec-chunk", undefined, 1),
      steps: int(values, "steps", 1, 1),
      seed: int(values, "noise-seed", 0),
    })) {
      for (const frame of chunk.frames) {
        gif?.writer.addFrame([frame]);
        if (strip[0].length < STRIP_FRAMES) strip[0].push(frame);
        frames++;
      }
      collect?.();
    }
  } catch (err) {
    gif?.abandon();
    throw err;
  }
  const ms = (performance.now() - started) / frames;
  gif?.finish();
  if (values.strip) writeFileSync(values.strip, frameStripPng(strip, h, w));
  process.stdout.write(`${latents.length} latent frames → ${frames} frames, ${ms.toFixed(2)} ms/frame\n`);
}

/** A GIF written to `path` frame by frame as the video decodes; `abandon` removes a half-written file. */
function gifFile(path: string, options: Omit<AnimationOptions, "sink">) {
  const fd = openSync(path, "w");
  const writer = new GifWriter({ ...options, sink: (bytes) => writeAll(fd, bytes) });
  return {
    writer,
    finish() {
      writer.finish();
      closeSync(fd);
    },
    abandon() {
      closeSync(fd);
      rmSync(path, { force: true });
    },
  };
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done);
}
