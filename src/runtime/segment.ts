/** One ONNX Runtime session for one segment of the model, fed from and writing to a per-step tensor store. */
import type { Tensor } from "onnxruntime-common";
import { DittoError } from "../errors.ts";
import type { SegmentPlan } from "../model/plan.ts";
import type { Session } from "./backend.ts";

export type TensorStore = Map<string, Tensor>;

export class Segment {
  readonly plan: SegmentPlan;
  /** FLOPs per sample of one run. */
  readonly flops: number;
  readonly params: number;
  private readonly session: Session;
  /** Number of runs since creation, for traces and tests ("a forecast step calls no block session"). */
  calls = 0;

  constructor(plan: SegmentPlan, session: Session, flops: number, params: number) {
    this.plan = plan;
    this.session = session;
    this.flops = flops;
    this.params = params;
  }

  get name(): string {
    return this.plan.name;
  }

  /** Reads the plan's inputs from the store and writes every output into it. */
  async run(store: TensorStore): Promise<void> {
    const feeds: Record<string, Tensor> = {};
    for (const name of this.plan.inputs) {
      const t = store.get(name);
      if (!t)
        throw new DittoError(
          "RUNTIME_FAILED",
          `segment ${this.name} needs tensor '${name}', which nothing computed this step`,
        );
      feeds[name] = t;
    }
    let results: Record<string, Tensor>;
    try {
      results = await this.session.run(feeds);
    } catch (err) {
      throw new DittoError("RUNTIME_FAILED", `ONNX Runtime failed in segment ${this.name}: ${(err as Error).message}`, {
        segment: this.name,
      });
    }
    this.calls++;
    for (const [name, t] of Object.entries(results)) store.set(name, t);
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
