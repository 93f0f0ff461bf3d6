/**
 * The precomputed conditioning (runtime/conditioning.ts) must hand each step exactly what the embed computes, and
 * must refuse (so the engine runs the embed) any (time, condition) pair it did not precompute.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Tensor } from "onnxruntime-common";
import { ConditionedStore, ConditioningTable } from "../src/runtime/conditioning.ts";
import { loadDiT } from "../src/runtime/dit.ts";
import { feedsFor } from "../src/runtime/model-inputs.ts";
import type { TensorStore } from "../src/runtime/segment.ts";
import { assertBitIdentical, SHIPPED_MODEL } from "./helpers.ts";

describe("precomputed conditioning on the shipped model", () => {
  it("equals the embed's outputs bit for bit, rows gathered in any order, and misses unknown pairs", async () => {
    const model = await loadDiT(SHIPPED_MODEL);
    const conditioning = await model.conditioning();
    assert.ok(conditioning, "the shipped model's embed has a timestep/condition-only part");
    assert.ok(!conditioning.plan.inputs.includes(model.manifest.inputs.sample.name));
    const times = Float64Array.from({ length: 20 }, (_, i) => 1 - i / 20);
    const table = await ConditioningTable.build(conditioning, model.manifest, times, [3, 7, 10, 7], 1);
    assert.ok(table);
    const time = new Float64Array(5).fill(times[13]);
    const condition = Int32Array.from([7, 3, 10, 10, 7]);
    const rows = table.lookup(time, condition);
    assert.ok(rows);
    const store: TensorStore = new Map(
      Object.entries(
        feedsFor(model.manifest, {
          sample: new Tensor("float32", new Float32Array(5 * 784), [5, 1, 28, 28]),
          time,
          condition,
        }),
      ),
    );
    await (await model.embed()).run(store);
    assert.deepEqual([...rows.keys()].sort(), [...conditioning.plan.outputs].sort());
    for (const [name, t] of rows) {
      assert.deepEqual(t.dims, (store.get(name) as Tensor).dims, name);
      assertBitIdentical(t.data as Float32Array, (store.get(name) as Tensor).data as Float32Array, name);
    }
    // Gathered one tensor at a time when a session reads it (the engine's store): the same tensors, nothing else.
    const lazy = new ConditionedStore([], table.gatherer(time, condition) as (name: string) => Tensor | undefined);
    for (const [name, t] of rows) {
      assert.ok(lazy.has(name), name);
      assertBitIdentical((lazy.get(name) as Tensor).data as Float32Array, t.data as Float32Array, name);
    }
    assert.equal(lazy.get("not a conditioning tensor"), undefined);
    assert.equal(table.gatherer(time, Int32Array.from([7, 3, 10, 10, 2])), undefined, "a class not in the table");
    // A row repeated (the unconditional half of a CFG batch) between other rows: each call row is its table row.
    const repeated = Int32Array.from([3, 10, 10, 10, 10, 10, 10, 10, 7, 7, 7]);
    const many = table.lookup(new Float64Array(repeated.length).fill(times[13]), repeated);
    assert.ok(many);
    repeated.forEach((c, i) => {
      const one = table.lookup(Float64Array.of(times[13]), Int32Array.of(c)) as Map<string, Tensor>;
      for (const [name, t] of many) {
        const width = (t.data as Float32Array).length / repeated.length;
        const row = (t.data as Float32Array).subarray(i * width, (i + 1) * width);
        assertBitIdentical(row, (one.get(name) as Tensor).data as Float32Array, `${name}, row ${i}`);
      }
    });
    assert.equal(table.lookup(new Float64Array(5).fill(0.123), condition), undefined, "a time not in the grid");
    assert.equal(table.lookup(time, Int32Array.from([7, 3, 10, 10, 2])), undefined, "a class not in the table");
    const tooBig = await ConditioningTable.build(conditioning, model.manifest, times, [1, 2], 1 << 30);
    assert.equal(tooBig, undefined, "over the memory budget the table is not built");
    await model.release();
  });
});
