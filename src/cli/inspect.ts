/** `ditto inspect`: the structure Ditto found in a model — blocks, units, cut tensors, parameters and FLOPs. */
import { parseArgs } from "node:util";
import { loadDiT } from "../runtime/dit.ts";
import { MODEL_HELP, MODEL_OPTIONS, modelLoadOptions } from "./common.ts";

const HELP = `Usage: ditto inspect [MODEL] [options]

MODEL is a model folder, a manifest.json or an .onnx file (without a manifest, the input roles are guessed).

  --json             print {"blocks": [{"index", "units": [{"kind", "params", "flops"}]}], "blockFlopsFraction", …}
  --tensors          list every tensor with its producing op (to write a structure override)
${MODEL_HELP}
`;

export async function run(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      ...MODEL_OPTIONS,
      json: { type: "boolean", default: false },
      tensors: { type: "boolean", default: false },
    },
    allowPositionals: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const model = await loadDiT(positionals[0] ?? values.model, { ...modelLoadOptions(values), inferManifest: true });
  const { structure, graph } = model;
  if (values.tensors) {
    for (const node of graph.nodes)
      for (const out of node.output) process.stdout.write(`${out}\t${node.opType}\t${node.name ?? ""}\n`);
    return;
  }
  const flops = await model.flopsBreakdown();
  const blockFlops = flops.atoms.reduce((a, b) => a + b, 0);
  const total = blockFlops + flops.embed + flops.head;
  const info = {
    model: model.manifest.onnxPath,
    sha256: model.onnx.sha256,
    groupedBy: structure.groupedBy,
    parameters: [...graph.initializers.values()].reduce(
      (a, t) => a + (t.dims ?? []).reduce((x: number, d) => x * Number(d), 1),
      0,
    ),
    embed: {
      params: model.partParams("embed"),
      flops: flops.embed,
      outputs: (await model.embed()).plan.outputs.length,
    },
    head: { params: model.partParams("head"), flops: flops.head },
    blocks: structure.blocks.map((b) => ({
      index: b.index,
      scope: b.scope ?? null,
      input: b.streamIn,
      output: b.streamOut,
      units: b.atoms.map((a) => {
        const atom = structure.atoms[a];
        return {
          kind: atom.kind,
          params: model.atomParams(a),
          flops: flops.atoms[a],
          value: atom.value,
          gate: atom.gate ?? null,
          valueKind: atom.gate ? "pre-gate" : atom.value === atom.streamOut ? "none" : "branch-output",
        };
      }),
    })),
    blockFlopsFraction: blockFlops / total,
    flopsPerSample: total,
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(info)}\n`);
    return;
  }
  const g = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GFLOP` : `${(n / 1e6).toFixed(1)} MFLOP`);
  const p = (n: number) => `${(n / 1e6).toFixed(2)} M params`;
  const lines = [
    `${info.model}`,
    `sha256 ${info.sha256.slice(0, 16)}…  ${(info.parameters / 1e6).toFixed(2)} M parameters, ${g(total)} per sample`,
    `${structure.blocks.length} blocks (found by ${structure.groupedBy}), ${structure.atoms.length} units; blocks hold ${(info.blockFlopsFraction * 100).toFixed(1)} % of FLOPs`,
    `embed (with all modulation): ${p(info.embed.params)}, ${g(flops.embed)}, ${info.embed.outputs} tensors passed on`,
  ];
  for (const b of info.blocks) {
    lines.push(`block ${b.index}${b.scope ? ` (${b.scope})` : ""}: ${b.input} → ${b.output}`);
    for (const u of b.units) {
      lines.push(
        `  ${u.kind.padEnd(5)} ${p(u.params).padEnd(16)} ${g(u.flops).padEnd(14)} ${u.valueKind} ${u.value}${u.gate ? ` × gate ${u.gate}` : ""}`,
      );
    }
  }
  lines.push(`head: ${p(info.head.params)}, ${g(flops.head)}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}
