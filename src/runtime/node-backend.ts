/** onnxruntime-node as a Ditto backend. */
import * as ort from "onnxruntime-node";
import type { Backend, Session, SessionOptions } from "./backend.ts";

export const nodeBackend: Backend = {
  name: "onnxruntime-node",
  async createSession(model: Uint8Array, options: SessionOptions = {}): Promise<Session> {
    const ortOptions: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: options.graphOptimization ?? "all",
      executionProviders: options.executionProviders ?? ["cpu"],
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
    if (options.intraOpThreads !== undefined) ortOptions.intraOpNumThreads = options.intraOpThreads;
    if (options.interOpThreads !== undefined) ortOptions.interOpNumThreads = options.interOpThreads;
    const session = await ort.InferenceSession.create(model, ortOptions);
    return {
      inputNames: session.inputNames,
      outputNames: session.outputNames,
      run: (feeds) => session.run(feeds),
      release: () => session.release(),
    };
  },
};
