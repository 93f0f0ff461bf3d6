/** The simplest cache: the last computed value per unit. Shared by every reuse-only policy. */
import type { Tensor } from "onnxruntime-common";
import { byteSize } from "../runtime/tensor-ops.ts";

export class LastValueCache {
  private readonly values = new Map<number, Tensor>();
  /** Step at which each unit was last computed. */
  readonly computedAt = new Map<number, number>();

  set(unit: number, value: Tensor, step: number): void {
    this.values.set(unit, value);
    this.computedAt.set(unit, step);
  }

  get(unit: number): Tensor | undefined {
    return this.values.get(unit);
  }

  has(unit: number): boolean {
    return this.values.has(unit);
  }

  bytes(): number {
    let total = 0;
    for (const t of this.values.values()) total += byteSize(t);
    return total;
  }
}
