/** The unsplit model as a network evaluator: the reference for parity tests and the overhead benchmark. */
import type { NetworkEvaluator } from "../sampling/denoise.ts";
import type { Session } from "./backend.ts";
import type { DiT } from "./dit.ts";
import { feedsFor, type ModelCall } from "./model-inputs.ts";

export class WholeModelEvaluator implements NetworkEvaluator {
  private readonly model: DiT;
  private readonly session: Session;

  private constructor(model: DiT, session: Session) {
    this.model = model;
    this.session = session;
  }

  static async create(model: DiT): Promise<WholeModelEvaluator> {
    return new WholeModelEvaluator(model, await model.wholeModel());
  }

  async evaluate(call: ModelCall): Promise<Float32Array> {
    const out = await this.session.run(feedsFor(this.model.manifest, call));
    return out[this.model.manifest.output.name].data as Float32Array;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
