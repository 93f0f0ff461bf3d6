/**
 * The browser entry (`ditto-dit/web`): the platform-neutral core plus what a page needs to run it on
 * onnxruntime-web. A page calls `startBrowser()` once, then uses the same `loadPipeline` / `generate` as Node.
 *
 *   const { capabilities } = await startBrowser({ device: "wasm" });
 *   const pipeline = await loadPipeline();          // fetches models/fashion-dit from the page's origin
 *   const result = await pipeline.generate({ classes: [0, 7], steps: 10, cache: "fora:interval=2" });
 */
import { DittoError } from "../errors.ts";
import { setPlatform } from "../platform.ts";
import { createWebBackend, type WebDevice } from "../runtime/web-backend.ts";
import { capabilityProblems, detectCapabilities, type WebCapabilities } from "./capabilities.ts";
import { loadOrtWeb } from "./ort-loader.ts";
import { type WebPlatformOptions, webPlatform } from "./platform.ts";

export * from "../core.ts";
export { toUnitRange } from "../image/unit-range.ts";
export { createWebBackend, type WebDevice } from "../runtime/web-backend.ts";
export { capabilityProblems, detectCapabilities, type WebCapabilities } from "./capabilities.ts";
export { loadOrtWeb, ORT_WEB_FILES } from "./ort-loader.ts";
export { registerFile, registerUrl, webPlatform } from "./platform.ts";

export interface StartOptions {
  device?: WebDevice;
  /** Default: every core when the page is cross-origin isolated, else 1. */
  threads?: number;
  ortUrl?: string;
  /** Run ONNX Runtime in a worker thread (see OrtLoadOptions.proxy). */
  proxy?: boolean;
  modelsUrl?: string;
  onDownload?: WebPlatformOptions["onDownload"];
}

/** Checks the browser, loads onnxruntime-web and installs the browser platform. */
export async function startBrowser(
  options: StartOptions = {},
): Promise<{ capabilities: WebCapabilities; threads: number; device: WebDevice }> {
  const capabilities = await detectCapabilities();
  const { fatal } = capabilityProblems(capabilities);
  if (fatal.length > 0) {
    throw new DittoError("RUNTIME_FAILED", fatal.join(" "));
  }
  const device = options.device ?? "wasm";
  const threads = capabilities.threads ? Math.max(1, options.threads ?? capabilities.cores) : 1;
  const ort = await loadOrtWeb({ device, threads, baseUrl: options.ortUrl, proxy: options.proxy });
  setPlatform(
    webPlatform({
      backend: createWebBackend(ort, { device }),
      modelsUrl: options.modelsUrl,
      onDownload: options.onDownload,
    }),
  );
  return { capabilities, threads, device };
}
