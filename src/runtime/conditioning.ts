/**
 * Precomputed conditioning. The embed's timestep/condition path does not read the sample, so one batched run before
 * the denoising loop serves every step: each step then gathers its rows instead of running it again. In an adaLN
 * DiT this path is the modulation of every block — on the shipped model 5.0 M of 14.5 M parameters but 1 % of the
 * FLOPs — so per step it is bound by reading its weights (≈ 5 ms at batch 20), while one run over all
 * steps × distinct conditions reads them once.
 */
import { Tensor } from "onnxruntime-common";
import type { ModelManifest } from "../model/manifest.ts";
import { conditionTensor, defaultCondition, timestepTensor } from "./model-inputs.ts";
import type { Segment, TensorStore } from "./segment.ts";

/** Above this the table is not built and every step runs the conditioning itself. */
export const CONDITIONING_TABLE_BUDGET_BYTES = 256 * 1024 * 1024;

export class ConditioningTable {
  private readonly manifest: ModelManifest;
  /** Row of each (time, condition) pair. */
  private readonly rows: Map<string, number>;
  private readonly outputs: Map<string, Tensor>;

  private constructor(manifest: ModelManifest, rows: Map<string, number>, outputs: Map<string, Tensor>) {
    this.manifest = manifest;
    this.rows = rows;
    this.outputs = outputs;
  }

  /**
   * Runs `segment` once for every pair of `times` × `conditions` (condition ignored when the model has none).
   * Undefined when the table would exceed the budget or an output is not batch-major (then rows cannot be gathered).
   */
  static async build(
    segment: Segment,
    manifest: ModelManifest,
    times: ArrayLike<number>,
    conditions: number[],
    bytesPerRow: number,
  ): Promise<ConditioningTable | undefined> {
    const fill = defaultCondition(manifest);
    const conds = manifest.inputs.condition ? [...new Set(conditions.length > 0 ? conditions : [fill])] : [0];
    const count = times.length * conds.length;
    if (count === 0 || count * bytesPerRow > CONDITIONING_TABLE_BUDGET_BYTES) return undefined;
    const time = new Float64Array(count);
    const condition = new Int32Array(count);
    const rows = new Map<string, number>();
    for (let i = 0; i < times.length; i++) {
      for (let j = 0; j < conds.length; j++) {
        const r = i * conds.length + j;
        time[r] = times[i];
        condition[r] = conds[j];
        rows.set(rowKey(times[i], conds[j]), r);
      }
    }
    const store: TensorStore = new Map([[manifest.inputs.timestep.name, timestepTensor(manifest, time)]]);
    if (manifest.inputs.condition) store.set(manifest.inputs.condition.name, conditionTensor(manifest, condition));
    await segment.run(store);
    const outputs = new Map<string, Tensor>();
    for (const name of segment.plan.outputs) {
      const t = store.get(name) as Tensor;
      if (t.dims[0] !== count || typeof t.data === "string") return undefined;
      outputs.set(name, t);
    }
    return new ConditioningTable(manifest, rows, outputs);
  }

  /**
   * The conditioning tensors for one network call (only `names`, when given), or undefined when a (time, condition)
   * pair is not tabled.
   */
  lookup(time: Float64Array, condition?: Int32Array, names?: readonly string[]): Map<string, Tensor> | undefined {
    const runs = this.runsFor(time, condition);
    if (!runs) return undefined;
    // Every output of the call in one allocation: a step gathers dozens of small tensors (74 on the shipped model),
    // and one buffer instead of one each keeps the per-step host work and the garbage collector's load down.
    let bytes = 0;
    const offsets: number[] = [];
    const wanted = names ? names.map((n) => [n, this.outputs.get(n) as Tensor] as const) : [...this.outputs];
    for (const [, t] of wanted) {
      const size = (t.data as Float32Array).BYTES_PER_ELEMENT;
      bytes = Math.ceil(bytes / size) * size;
      offsets.push(bytes);
      bytes += rowWidth(t) * time.length * size;
    }
    const buffer = new ArrayBuffer(bytes);
    const out = new Map<string, Tensor>();
    for (const [k, [name, t]] of wanted.entries()) out.set(name, gather(t, runs, time.length, buffer, offsets[k]));
    return out;
  }

  /**
   * One call's conditioning gathered tensor by tensor, when first asked for (undefined for a name the table does not
   * hold); undefined when a (time, condition) pair is not tabled. A step that skips the stack reads a few of them
   * (the patch embed's and the head's), not all.
   */
  gatherer(time: Float64Array, condition?: Int32Array): ((name: string) => Tensor | undefined) | undefined {
    const runs = this.runsFor(time, condition);
    if (!runs) return undefined;
    return (name) => {
      const t = this.outputs.get(name);
      return t && gather(t, runs, time.length);
    };
  }

  /**
   * Runs of call rows copied as one block: [first table row, first call row, count, repeat]. A run is either
   * consecutive table rows, or (repeat) one table row repeated, as the unconditional half of a CFG batch is.
   */
  private runsFor(time: Float64Array, condition?: Int32Array): Run[] | undefined {
    const hasCondition = this.manifest.inputs.condition !== undefined;
    const fill = defaultCondition(this.manifest);
    const runs: Run[] = [];
    for (let i = 0; i < time.length; i++) {
      const r = this.rows.get(rowKey(time[i], hasCondition ? (condition?.[i] ?? fill) : 0));
      if (r === undefined) return undefined;
      const last = runs.at(-1);
      if (last && !last[3] && last[0] + last[2] === r) last[2]++;
      else if (last && last[0] === r && (last[3] || last[2] === 1)) {
        last[2]++;
        last[3] = true;
      } else runs.push([r, i, 1, false]);
    }
    return runs;
  }
}

/** A step's tensor store that takes a conditioning tensor from the table when something first reads it. */
export class ConditionedStore extends Map<string, Tensor> {
  private readonly gather: (name: string) => Tensor | undefined;

  constructor(entries: Iterable<readonly [string, Tensor]>, gather: (name: string) => Tensor | undefined) {
    super(entries);
    this.gather = gather;
  }

  override get(name: string): Tensor | undefined {
    const held = super.get(name);
    if (held !== undefined) return held;
    const gathered = this.gather(name);
    if (gathered !== undefined) super.set(name, gathered);
    return gathered;
  }

  override has(name: string): boolean {
    return this.get(name) !== undefined;
  }
}

type Run = [tableRow: number, callRow: number, count: number, repeat: boolean];

function rowWidth(t: Tensor): number {
  return (t.data as Float32Array).length / (t.dims[0] as number);
}

/** The call's rows of one table output, in `buffer` at `offset` when given. */
function gather(t: Tensor, runs: Run[], rows: number, buffer?: ArrayBuffer, offset = 0): Tensor {
  const data = t.data as Float32Array;
  const width = rowWidth(t);
  const View = data.constructor as Float32ArrayConstructor;
  const gathered = buffer ? new View(buffer, offset, rows * width) : new View(rows * width);
  for (const [r, i, n, repeat] of runs) {
    if (!repeat) {
      gathered.set(data.subarray(r * width, (r + n) * width), i * width);
      continue;
    }
    // One row, then doubled in place until the run is full.
    gathered.set(data.subarray(r * width, (r + 1) * width), i * width);
    for (let done = 1; done < n; done *= 2) {
      const count = Math.min(done, n - done);
      gathered.copyWithin((i + done) * width, i * width, (i + count) * width);
    }
  }
  return new Tensor(t.type as "float32", gathered, [rows, ...t.dims.slice(1)]);
}

function rowKey(time: number, condition: number): string {
  return `${time}|${condition}`;
}
