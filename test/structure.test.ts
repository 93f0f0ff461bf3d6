import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { discoverStructure } from "../src/model/discover.ts";
import { GraphIndex } from "../src/onnx/graph.ts";
import { decodeOnnx } from "../src/onnx/load.ts";
import { graphOf } from "../src/onnx/proto.ts";
import { loadDiT } from "../src/runtime/dit.ts";
import { buildDiTLlama } from "./fixtures/dit-llama.ts";
import { assertRejectsWith, llamaModel, SHIPPED_MODEL } from "./helpers.ts";

function llamaIndex(options = {}) {
  return new GraphIndex(graphOf(decodeOnnx(buildDiTLlama(options), "llama")));
}

describe("structure discovery", () => {
  it("finds the shipped model's 12 blocks, both branches of each, their pre-gate outputs and gates", async () => {
    const model = await loadDiT(SHIPPED_MODEL);
    const s = model.structure;
    assert.equal(s.groupedBy, "scopes");
    assert.equal(
      s.blocks.length,
      model.manifest.architecture ? (model.manifest.architecture as { blocks: number }).blocks : 12,
    );
    for (const block of s.blocks) {
      assert.deepEqual(
        block.atoms.map((a) => s.atoms[a].kind),
        ["attn", "mlp"],
      );
      for (const a of block.atoms) {
        const atom = s.atoms[a];
        assert.ok(atom.gate, `block ${block.index} ${atom.kind} has a gate`);
        assert.match(atom.value, new RegExp(`/blocks\\.${block.index}/(attn/proj|mlp/mlp\\.2)/Add_output_0`));
      }
    }
    // torch hoists SiLU(c) into block 0's scope; it must be computed with the embed, never inside block 0's segment.
    const hoisted = model.graph.nodes.findIndex((n) => n.name === "/blocks.0/adaLN_modulation/adaLN_modulation.0/Mul");
    assert.ok(hoisted >= 0, "the export hoists SiLU(c) into block 0");
    assert.ok(s.embedNodes.includes(hoisted));
    await model.release();
  });

  it("finds DiT-Llama blocks by /layers.N/ scopes and, with names stripped, by repetition", () => {
    for (const [options, groupedBy] of [
      [{}, "scopes"],
      [{ stripNames: true }, "repetition"],
      [{ norm: "layer" }, "scopes"],
    ] as const) {
      const s = discoverStructure(llamaIndex(options), "x");
      assert.equal(s.groupedBy, groupedBy);
      assert.equal(s.blocks.length, 3);
      assert.deepEqual(
        s.atoms.map((a) => `${a.block}:${a.kind}:${a.gate ? "gated" : "plain"}`),
        ["0:attn:gated", "0:mlp:gated", "1:attn:gated", "1:mlp:gated", "2:attn:gated", "2:mlp:gated"],
      );
      assert.equal(s.atoms[0].softmax.length, 1);
    }
  });

  it("fails on a graph with no blocks, saying what it found and how to write the override", () => {
    assert.throws(
      () => discoverStructure(llamaIndex({ noBlocks: true }), "x"),
      (err: Error & { code?: string }) =>
        err.code === "STRUCTURE_NOT_FOUND" && /blockBoundaries/.test(err.message) && /0 residual add/.test(err.message),
    );
  });

  it("accepts a manifest override naming the block boundaries", async () => {
    const dir = llamaModel({ stripNames: true });
    const auto = await loadDiT(dir);
    const boundaries = [auto.structure.atoms[0].streamIn, ...auto.structure.blocks.map((b) => b.streamOut)];
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    manifest.structure = { blockBoundaries: boundaries.slice(0, 3) };
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
    const overridden = await loadDiT(dir);
    assert.equal(overridden.structure.groupedBy, "override");
    assert.equal(overridden.structure.blocks.length, 2, "two blocks between the three named boundaries");
    manifest.structure = { blockBoundaries: ["no/such/tensor", boundaries[1]] };
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
    await assertRejectsWith(() => loadDiT(dir), "STRUCTURE_NOT_FOUND", /no\/such\/tensor/);
  });
});
