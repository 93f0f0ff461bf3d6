/**
 * The runtime interface the engine talks to. onnxruntime-node implements it today; onnxruntime-web (WASM/WebGPU)
 * can plug in with the same engine code, since both share onnxruntime-common's Tensor.
 */
import type { Tensor } from "onnxruntime-common";

export type GraphOptimization = "disabled" | "basic" | "extended" | "all";

export interface SessionOptions {
  /**
   * Threads inside one operator (default: every core Node may use, `os.availableParallelism()`). A DiT's light
   * sessions (patch embed, head, taps) run on one whatever this says (runtime/dit.ts, LIGHT_SESSION_SHARE).
   */
  intraOpThreads?: number;
  interOpThreads?: number;
  graphOptimization?: GraphOptimization;
  /** e.g. ["cpu"], or ["cuda"] after installing onnxruntime-node's CUDA binaries (see README). */
  executionProviders?: string[];
  /**
   * Let idle worker threads spin waiting for work (ONNX Runtime's default). Off by default in Ditto: with one
   * session per segment, spinning pools of finished sessions steal the cores the next session needs.
   */
  spinning?: boolean;
  /**
   * ONNX Runtime's per-session CPU memory arena and memory-pattern planning (default on). Ditto turns both off for
   * sessions that run among many others in one step (per-block and per-branch units): each session's arena is its
   * own memory, so a dozen of them keep a dozen cold copies of the activations, while freed heap memory is reused
   * hot by the next session (measured in bench/overhead.ts: block-split time −8 % at batch 16).
   */
  memoryArena?: boolean;
  /**
   * Save ONNX Runtime's optimized graph to this file while creating the session (the graph cache's second level:
   * loading it later with graphOptimization "disabled" skips the optimizer, ~40 % of creating a session).
   */
  optimizedModelPath?: string;
  /**
   * Write ONNX Runtime's per-kernel profile of each session to a JSON file named by this prefix when the session is
   * released (onnxruntime-node only; `npx tsx bench/ort-profile.ts` sums it by operator).
   */
  profilePrefix?: string;
}

export interface Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>>;
  release(): Promise<void>;
}

export interface Backend {
  readonly name: string;
  /**
   * The runtime build and hardware, for caching runtime-optimized graphs (which may hold CPU-specific layouts);
   * undefined when the backend cannot save them.
   */
  readonly optimizedModelTag?: string;
  createSession(model: Uint8Array, options?: SessionOptions): Promise<Session>;
}
