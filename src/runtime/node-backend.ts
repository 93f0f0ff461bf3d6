/** onnxruntime-node as a Ditto backend. */
import { arch, availableParallelism, cpus } from "node:os";
import * as ort from "onnxruntime-node";
import type { Backend, Session, SessionOptions } from "./backend.ts";

export const nodeBackend: Backend = {
  name: "onnxruntime-node",
  optimizedModelTag: `onnxruntime-node@${ort.env.versions.node ?? ort.env.versions.common} ${arch()} ${cpus()[0]?.model ?? "cpu"}`,
  async createSession(model: Uint8Array, options: SessionOptions = {}): Promise<Session> {
    const session = await ort.InferenceSession.create(model, ortSessionOptions(options));
    return {
      inputNames: session.inputNames,
      outputNames: session.outputNames,
      run: (feeds) => session.run(feeds),
      release: () => session.release(),
    };
  },
};

let profiledSessions = 0;

/** Ditto's session options as onnxruntime-node's, with Ditto's defaults filled in. */
export function ortSessionOptions(options: SessionOptions = {}): ort.InferenceSession.SessionOptions {
  const ortOptions: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: options.graphOptimization ?? "all",
    executionProviders: options.executionProviders ?? ["cpu"],
    intraOpNumThreads: options.intraOpThreads ?? defaultIntraOpThreads(),
    extra: {
      session: {
        intra_op: { allow_spinning: options.spinning ? "1" : "0" },
        inter_op: { allow_spinning: options.spinning ? "1" : "0" },
      },
    },
  };
  if (options.memoryArena === false) {
    ortOptions.enableCpuMemArena = false;
    ortOptions.enableMemPattern = false;
  }
  // onnxruntime-node rejects an explicit `undefined` here: set only what was given.
  if (options.interOpThreads !== undefined) ortOptions.interOpNumThreads = options.interOpThreads;
  if (options.profilePrefix !== undefined) {
    // Numbered: ONNX Runtime names the file by the prefix and a millisecond timestamp, which sessions share.
    ortOptions.enableProfiling = true;
    ortOptions.profileFilePrefix = `${options.profilePrefix}${++profiledSessions}`;
  }
  if (options.optimizedModelPath !== undefined) {
    ortOptions.optimizedModelFilePath = options.optimizedModelPath;
    // Saving warns that the file may hold CPU-specific layouts; the graph cache keys it by CPU model already.
    ortOptions.logSeverityLevel = 3;
  }
  return ortOptions;
}

/**
 * Every core Node may use. ONNX Runtime's own default counts physical cores, which on SMT or cgroup-limited
 * machines (a 2-vCPU VM reports one) leaves half the machine idle. Many sessions per step do not oversubscribe:
 * a step runs its sessions one after another, and idle pools sleep rather than spin (see `spinning`).
 */
export function defaultIntraOpThreads(): number {
  return availableParallelism();
}
