/**
 * What the step-level policies (TeaCache, MagCache, EasyCache) share: one decision per step for the whole stack,
 * taken in `beginStep`, and the last computed stack residual h_L − h_0, reused as it is on a skipped step.
 */
import type { Tensor } from "onnxruntime-common";
import { byteSize } from "../runtime/tensor-ops.ts";
import type { Approximation, ComputedUnit, Decision, PolicyState, StepView } from "./policy.ts";

export abstract class StackReuseState implements PolicyState {
  protected residual?: Tensor;
  protected decision: Decision = "compute";

  abstract beginStep(view: StepView): void | Promise<void>;

  plan(): Decision[] {
    return [this.decision];
  }

  decide(): Decision {
    return this.decision;
  }

  update(_unit: number, computed: ComputedUnit): void {
    this.residual = computed.value();
  }

  approximate(): Approximation | undefined {
    return this.residual ? { terms: [{ tensor: this.residual, coef: 1 }] } : undefined;
  }

  /** Marks that a residual exists (for rule tests without a model). */
  primeResidual(residual: Tensor): void {
    this.residual = residual;
  }

  bytes(): number {
    return this.residual ? byteSize(this.residual) : 0;
  }
}
