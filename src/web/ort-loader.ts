/**
 * Loads onnxruntime-web at run time from the page's own origin (`ort/`, copied from the package's dist by the
 * web build and served by `ditto web`), instead of letting a bundler inline it: ONNX Runtime's worker threads
 * re-import their own script by URL, which only works when that script is a plain file beside its .wasm.
 */
import type * as OrtWeb from "onnxruntime-web";
import { DittoError } from "../errors.ts";
import type { WebDevice } from "../runtime/web-backend.ts";

/** The onnxruntime-web files a page needs: the WASM build and the WebGPU build (loaded only when chosen). */
export const ORT_WEB_FILES = [
  "ort.wasm.min.mjs",
  "ort-wasm-simd-threaded.mjs",
  "ort-wasm-simd-threaded.wasm",
  "ort.webgpu.min.mjs",
  "ort-wasm-simd-threaded.asyncify.mjs",
  "ort-wasm-simd-threaded.asyncify.wasm",
];

export interface OrtLoadOptions {
  device: WebDevice;
  /** Worker threads for the WASM kernels (1 = none); needs cross-origin isolation. */
  threads: number;
  /** URL of the folder holding ORT_WEB_FILES (default "ort/" beside the page). */
  baseUrl?: string;
  /** Run ONNX Runtime in a worker (keeps the page responsive; CPU tensors only, which is what the engine uses). */
  proxy?: boolean;
}

export async function loadOrtWeb(options: OrtLoadOptions): Promise<typeof OrtWeb> {
  const base = new URL(options.baseUrl ?? "ort/", location.href).href;
  const file = options.device === "webgpu" ? "ort.webgpu.min.mjs" : "ort.wasm.min.mjs";
  let ort: typeof OrtWeb;
  try {
    ort = (await import(/* @vite-ignore */ `${base}${file}`)) as typeof OrtWeb;
  } catch (err) {
    throw new DittoError(
      "RUNTIME_FAILED",
      `could not load ONNX Runtime Web from ${base}${file}: ${(err as Error).message}. Serve the page with \`npx ditto web\`.`,
    );
  }
  ort.env.wasm.wasmPaths = base;
  ort.env.wasm.numThreads = options.threads;
  ort.env.wasm.proxy = options.proxy ?? false;
  return ort;
}
