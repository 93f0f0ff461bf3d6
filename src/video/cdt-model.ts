/**
 * Loading a CDT streaming tokenizer: its `ditto.stream.v1` manifest and the ONNX graphs of its three networks, each
 * wrapped in a StreamingNet that owns its cache states.
 */
import { ModelError } from "../errors.ts";
import { platform, shippedModelDir } from "../platform.ts";
import type { Backend, Session, SessionOptions } from "../runtime/backend.ts";
import { parseJsonWithSchema } from "../schema/parse.ts";
import { type StreamManifest, streamManifestSchema } from "../schema/stream-manifest.ts";
import { StreamingNet } from "./streaming-net.ts";

/** The shipped CDT, trained on 32×32 Moving Fashion-MNIST (training/train_cdt.py). */
export const DEFAULT_CDT_DIR = shippedModelDir("cdt-moving-fashion");

export interface CdtModel {
  manifest: StreamManifest;
  dir: string;
  encoder: StreamingNet;
  context: StreamingNet;
  denoiser: StreamingNet;
  release(): Promise<void>;
}

export interface LoadCdtOptions {
  backend?: Backend;
  session?: SessionOptions;
}

export async function loadStreamManifest(dir: string): Promise<StreamManifest> {
  const { join, readText, resolve } = platform();
  const path = join(resolve(dir), "manifest.json");
  const text = await readText(path).catch(() => null);
  if (text === null) {
    throw new ModelError(
      "MODEL_NOT_FOUND",
      `no manifest.json in ${resolve(dir)}: pass the folder of a CDT export (made by training/export_cdt.py), ` +
        `e.g. ${DEFAULT_CDT_DIR}`,
      { path },
    );
  }
  return parseJsonWithSchema(streamManifestSchema, text, {
    source: path,
    code: "MANIFEST_INVALID",
    error: ModelError,
    fix: "Re-export the model with training/export_cdt.py.",
  });
}

export async function loadCdtModel(dir: string = DEFAULT_CDT_DIR, options: LoadCdtOptions = {}): Promise<CdtModel> {
  const { join, readBytes, resolve } = platform();
  const manifest = await loadStreamManifest(dir);
  const backend = options.backend ?? platform().backend;
  const opened = new Map<string, Session>();
  const open = async (file: string): Promise<Session> => {
    const cached = opened.get(file);
    if (cached) return cached;
    const path = join(resolve(dir), file);
    const bytes = await readBytes(path).catch(() => {
      throw new ModelError("MODEL_NOT_FOUND", `graph ${path} named by the manifest is missing`, { path });
    });
    const session = await backend.createSession(bytes, options.session);
    opened.set(file, session);
    return session;
  };
  const net = async (name: "encoder" | "context" | "denoiser", outputs: string[]) => {
    const spec = manifest.networks[name];
    const first = await open(spec.graphs.first);
    const next = await open(spec.graphs.next);
    return new StreamingNet({ name, first, next, slots: spec.slots, outputs });
  };
  const encoder = await net("encoder", ["latent"]);
  const context = await net("context", ["ctx0", "ctx1", "ctx2"]);
  const denoiser = await net("denoiser", ["x0"]);
  return {
    manifest,
    dir: resolve(dir),
    encoder,
    context,
    denoiser,
    release: async () => {
      for (const s of opened.values()) await s.release();
    },
  };
}
