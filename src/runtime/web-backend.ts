/**
 * onnxruntime-web as a Ditto backend: the same `Backend` the engine uses under Node, so every sampler and policy
 * runs unchanged in a browser. The caller passes the loaded onnxruntime-web module (the page loads it from the
 * same origin, see src/web/ort-loader.ts), which keeps this file free of any bundler- or path-specific import.
 *
 * Outputs stay on the CPU (`preferredOutputLocation` is left at its default): the engine reads `.data` of every
 * output to gate, cache and combine, so GPU-resident outputs would only add a readback per tensor.
 */
import type * as OrtWeb from "onnxruntime-web";
import { DittoError } from "../errors.ts";
import type { Backend, Session, SessionOptions } from "./backend.ts";

export type WebDevice = "wasm" | "webgpu";

export interface WebBackendOptions {
  /** Execution provider: "wasm" (CPU, default) or "webgpu" (needs a WebGPU adapter; see src/web/capabilities.ts). */
  device?: WebDevice;
}

export function createWebBackend(ort: typeof OrtWeb, options: WebBackendOptions = {}): Backend {
  const device = options.device ?? "wasm";
  // onnxruntime-web's WebGPU EP refuses a session while another is being created ("another WebGPU EP inference
  // session is being created"), and the engine creates its unit sessions concurrently: create them one at a time.
  let creating: Promise<unknown> = Promise.resolve();
  return {
    name: `onnxruntime-web (${device})`,
    async createSession(model: Uint8Array, sessionOptions: SessionOptions = {}): Promise<Session> {
      const ortOptions: OrtWeb.InferenceSession.SessionOptions = {
        graphOptimizationLevel: sessionOptions.graphOptimization ?? "all",
        // Node names CPU "cpu"; in the browser the CPU provider is "wasm". Other names pass through as given.
        executionProviders: (sessionOptions.executionProviders ?? [device]).map((ep) => (ep === "cpu" ? "wasm" : ep)),
        // Unlike under Node, spinning stays on (ONNX Runtime's default) unless asked off: with WASM threads,
        // waking a parked worker goes through Atomics and was slower here (bench:web, 2 threads: 7.7 s spinning vs
        // 12.0 s not, 2 images × 10 steps, shared machine).
        ...(sessionOptions.spinning === false
          ? { extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } } }
          : {}),
      };
      if (sessionOptions.memoryArena === false) {
        ortOptions.enableCpuMemArena = false;
        ortOptions.enableMemPattern = false;
      }
      // Threads are process-wide in onnxruntime-web (ort.env.wasm.numThreads, set before the first session).
      let session: OrtWeb.InferenceSession;
      try {
        const next = creating.then(() => ort.InferenceSession.create(model, ortOptions));
        creating = next.catch(() => undefined);
        session = await next;
      } catch (err) {
        throw new DittoError(
          "RUNTIME_FAILED",
          `onnxruntime-web (${device}) could not create a session: ${(err as Error).message ?? err}. ` +
            (device === "webgpu"
              ? "Try the WASM backend instead (WebGPU needs a browser with a working GPU adapter)."
              : "The browser may lack WebAssembly SIMD or enough memory for the model."),
        );
      }
      return {
        inputNames: session.inputNames,
        outputNames: session.outputNames,
        run: (feeds) => session.run(feeds as Record<string, OrtWeb.Tensor>),
        release: () => session.release(),
      };
    },
  };
}
