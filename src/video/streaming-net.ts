/**
 * One streaming network of a CDT model (encoder, context decoder or denoiser): its "first" and "next" ONNX graphs
 * and the cache state of every causal temporal conv, threaded from one chunk to the next (shared/specs/cdt.md,
 * "Causal temporal convolution and its cache").
 *
 * Uniform form: each slot starts at its padding (`initialFrames` zero frames) and the graph always runs on
 * concat(state, x) with no temporal padding, returning the new state, so the driver never special-cases a chunk.
 * `reset()` is the spec's clearing: between videos, and for the decoder and denoiser after every denoising step's
 * sweep over all chunks. Memory is Σ_j frames_j·C_j·H_j·W_j per network, whatever the video length.
 */
import type { Tensor } from "onnxruntime-common";
import { ModelError } from "../errors.ts";
import type { Session } from "../runtime/backend.ts";
import { float32 } from "../runtime/tensor-ops.ts";
import type { StreamSlot } from "../schema/stream-manifest.ts";

export interface StreamingNetOptions {
  /** "encoder", "context" or "denoiser": named in errors. */
  name: string;
  first: Session;
  next: Session;
  slots: readonly StreamSlot[];
  /** The graph's non-state outputs, in the order `run` returns them. */
  outputs: readonly string[];
}

export class StreamingNet {
  readonly name: string;
  readonly slots: readonly StreamSlot[];
  private readonly first: Session;
  private readonly next: Session;
  private readonly outputs: readonly string[];
  private states: Tensor[] = [];
  private chunks = 0;

  constructor(options: StreamingNetOptions) {
    this.name = options.name;
    this.slots = options.slots;
    this.first = options.first;
    this.next = options.next;
    this.outputs = options.outputs;
    for (const session of [options.first, options.next]) checkGraphNames(options, session);
    this.reset();
  }

  /** Clears every slot back to its padding; the next chunk runs the "first" graph. */
  reset(): void {
    this.states = this.slots.map((s) =>
      float32(new Float32Array(s.initialFrames * s.shape[0] * s.shape[1] * s.shape[2]), stateDims(s, s.initialFrames)),
    );
    this.chunks = 0;
  }

  /** Chunks run since the last reset. */
  get chunksRun(): number {
    return this.chunks;
  }

  /** Bytes of cache state held now (the spec's per-stream memory). */
  stateBytes(): number {
    return this.states.reduce((sum, t) => sum + (t.data as Float32Array).byteLength, 0);
  }

  /** Runs one chunk: feeds the states in, keeps the states out; returns the named outputs. */
  async run(feeds: Record<string, Tensor>): Promise<Tensor[]> {
    const session = this.chunks === 0 ? this.first : this.next;
    const all: Record<string, Tensor> = { ...feeds };
    this.states.forEach((t, j) => {
      all[`state_in_${j}`] = t;
    });
    const result = await session.run(all).catch((err: Error) => {
      throw new ModelError(
        "MODEL_MALFORMED",
        `${this.name}: ONNX Runtime refused chunk ${this.chunks} (${err.message.split("\n")[0]}); if a state_in is ` +
          "named, the manifest's slot shapes do not match the graph: re-export both with training/export_cdt.py",
        { chunk: this.chunks },
      );
    });
    this.states = this.slots.map((slot, j) => checkedState(this.name, slot, j, result[`state_out_${j}`]));
    this.chunks++;
    return this.outputs.map((n) => result[n]);
  }
}

function stateDims(slot: StreamSlot, frames: number): number[] {
  return [1, slot.shape[0], frames, slot.shape[1], slot.shape[2]];
}

/** A state_out must have exactly the slot's shape: a mismatch means the graph and the slot list disagree. */
function checkedState(net: string, slot: StreamSlot, j: number, t: Tensor | undefined): Tensor {
  const want = stateDims(slot, slot.frames);
  if (!t) throw new ModelError("MODEL_MALFORMED", `${net}: the graph returned no state_out_${j} (slot ${slot.name})`);
  if (t.dims.length !== want.length || t.dims.some((d, i) => d !== want[i])) {
    throw new ModelError(
      "MODEL_MALFORMED",
      `${net}: state_out_${j} (slot ${slot.name}) has shape [${t.dims.join(", ")}] but the manifest's slot says ` +
        `[${want.join(", ")}]: the graph and the manifest's slot list disagree; re-export both with ` +
        "training/export_cdt.py",
      { slot: slot.name, index: j, got: [...t.dims], expected: want },
    );
  }
  return t;
}

/** Every slot needs a state_in_j and state_out_j in the graph, and the graph no extra state. */
function checkGraphNames(options: StreamingNetOptions, session: Session): void {
  const ins = session.inputNames.filter((n) => n.startsWith("state_in_"));
  const outs = session.outputNames.filter((n) => n.startsWith("state_out_"));
  if (ins.length !== options.slots.length || outs.length !== options.slots.length) {
    throw new ModelError(
      "MODEL_MALFORMED",
      `${options.name}: the graph has ${ins.length} state inputs and ${outs.length} state outputs but the ` +
        `manifest lists ${options.slots.length} slots: re-export the model and its manifest together ` +
        "(training/export_cdt.py)",
      { graphStates: ins.length, slots: options.slots.length },
    );
  }
  for (const name of options.outputs) {
    if (!session.outputNames.includes(name)) {
      throw new ModelError("MODEL_MALFORMED", `${options.name}: the graph has no output '${name}'`);
    }
  }
}
