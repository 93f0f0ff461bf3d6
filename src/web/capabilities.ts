/** What this browser offers the runtime: WebAssembly SIMD (required), threads (COOP/COEP), a WebGPU adapter. */

export interface WebCapabilities {
  wasm: boolean;
  simd: boolean;
  /** SharedArrayBuffer with cross-origin isolation: what onnxruntime-web needs for more than one thread. */
  threads: boolean;
  crossOriginIsolated: boolean;
  cores: number;
  /** A WebGPU adapter, if any; `software` marks CPU rasterisers (SwiftShader), correct but far slower than WASM. */
  webgpu?: { vendor: string; architecture: string; software: boolean };
}

// The smallest module using a v128 instruction (i8x16.splat + i8x16.popcnt): validates only where SIMD exists.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

interface GpuLike {
  requestAdapter(): Promise<{
    isFallbackAdapter?: boolean;
    info?: { vendor?: string; architecture?: string; description?: string };
  } | null>;
}

export async function detectCapabilities(): Promise<WebCapabilities> {
  const wasm = typeof WebAssembly === "object";
  const simd = wasm && WebAssembly.validate(SIMD_PROBE);
  const isolated = typeof crossOriginIsolated === "boolean" && crossOriginIsolated;
  const caps: WebCapabilities = {
    wasm,
    simd,
    threads: isolated && typeof SharedArrayBuffer === "function",
    crossOriginIsolated: isolated,
    cores: typeof navigator !== "undefined" ? (navigator.hardwareConcurrency ?? 1) : 1,
  };
  const gpu = (typeof navigator !== "undefined" ? (navigator as { gpu?: GpuLike }).gpu : undefined) ?? undefined;
  if (gpu) {
    const adapter = await gpu.requestAdapter().catch(() => null);
    if (adapter) {
      const vendor = adapter.info?.vendor ?? "";
      const architecture = adapter.info?.architecture ?? "";
      caps.webgpu = {
        vendor,
        architecture,
        software: adapter.isFallbackAdapter === true || /swiftshader|llvmpipe|lavapipe/i.test(architecture + vendor),
      };
    }
  }
  return caps;
}

/** Human-readable problems that stop or slow the page, for the page's message area. */
export function capabilityProblems(caps: WebCapabilities): { fatal: string[]; warnings: string[] } {
  const fatal: string[] = [];
  const warnings: string[] = [];
  if (!caps.wasm) fatal.push("This browser has no WebAssembly, which Ditto needs to run the model.");
  else if (!caps.simd)
    fatal.push(
      "This browser lacks WebAssembly SIMD, which ONNX Runtime Web needs. Use a current Chrome, Edge, Firefox or Safari (16.4+).",
    );
  if (!caps.threads)
    warnings.push(
      caps.crossOriginIsolated
        ? "WebAssembly threads are unavailable (no SharedArrayBuffer): the model runs on one thread, several times slower."
        : "The page is not cross-origin isolated, so WebAssembly threads are off and the model runs on one thread. " +
            "Serve it with `npx ditto web`, which sends the COOP/COEP headers threads need.",
    );
  return { fatal, warnings };
}
