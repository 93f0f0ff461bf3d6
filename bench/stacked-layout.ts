/**
 * `npx tsx bench/stacked-layout.ts [BATCH …]`: what the stacked unit of FORA/TaylorSeer costs in each layout it
 * could use (issue 22 part 3, issue 14). A full step hands every branch's pre-gate value out of the stack session;
 * a forecast step reads them back as Σ_u g_u ⊙ Σ_j c_j·V_{j,u}. Per network batch (default 12, 20 and 40), median
 * wall and CPU time (user + system) of interleaved repeats:
 * - the full step: the plain stack session, and the stack handing its 24 values out as Ditto does
 *   ([B, D, U, T']: Concat + Transpose, the layout the forecast reads with one batched MatMul), concatenated only
 *   ([B, U, T', D], no Transpose), or as 24 separate outputs (no Concat either);
 * - the forecast with 1, 2 and 3 stored values per branch (FORA, TaylorSeer O = 1, 2): Ditto's MatMul over
 *   [B, D, U, T'], Mul + ReduceSum over [B, U, T', D], and the per-branch Mul + Sum over 24 separate tensors;
 * - whether onnxruntime-node writes a session output into a caller's pre-allocated tensor without a copy.
 * Env: REPEATS (default 20). Needs no arguments; a benchmark, not a test.
 */

import { Tensor } from "onnxruntime-common";
import * as ort from "onnxruntime-node";
import { relaunchWithMallocTuning } from "../bin/malloc-tuning.js";
import { median } from "../src/bench/harness.ts";
import { accumulatePiece, stackedPiece } from "../src/cache/accumulate.ts";
import { planRange } from "../src/model/plan.ts";
import { extractSubModel } from "../src/onnx/extract.ts";
import { fuseTanhGelu } from "../src/onnx/fuse-gelu.ts";
import { graphOf, type ModelProto, onnx } from "../src/onnx/proto.ts";
import { appendStackedValues } from "../src/onnx/rewrite.ts";
import type { Session } from "../src/runtime/backend.ts";
import { loadDiT } from "../src/runtime/dit.ts";
import { feedsFor } from "../src/runtime/model-inputs.ts";

relaunchWithMallocTuning();
const repeats = Number(process.env.REPEATS ?? 20);
const batches = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [12, 20, 40];

const model = await loadDiT(undefined, { graphCache: false });
const { graph, structure } = model;
const U = structure.atoms.length;
const values = structure.atoms.map((a) => a.value);
const plan = planRange(graph, structure, 0, U);
const [, T, D] = model.probeDims(values[0]) as number[];

/** The stack session with its values handed out by `handOut` (none: the plain stack). */
function stackGraph(handOut?: (m: ModelProto) => void): Uint8Array {
  const types = (model as unknown as { types: Parameters<typeof extractSubModel>[1]["types"] }).types;
  const outputs = [...plan.outputs, ...(handOut ? values : [])];
  const { model: m } = extractSubModel(model.onnx.proto, { inputs: plan.inputs, outputs, types }, graph);
  if (handOut) {
    const g = graphOf(m);
    g.output = g.output.filter((o) => plan.outputs.includes(o.name ?? ""));
    handOut(m);
  }
  fuseTanhGelu(m);
  return onnx.ModelProto.encode(m).finish();
}

const node = (opType: string, input: string[], output: string, attribute: object[] = []) =>
  onnx.NodeProto.create({ opType, input, output: [output], attribute });
const floatInfo = (name: string, dims?: number[]) =>
  onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: 1, shape: dims ? { dim: dims.map((d) => ({ dimValue: d })) } : undefined } },
  });
const ints = (name: string, v: number[]) =>
  onnx.TensorProto.create({ name, dims: [v.length], dataType: 7, int64Data: v });

/** [B, U, T', D]: each value unsqueezed and concatenated on axis 1, no transpose. */
function concatOnly(m: ModelProto): void {
  const g = graphOf(m);
  g.initializer.push(ints("bench_axis", [1]));
  g.node.push(
    ...values.map((v, i) => node("Unsqueeze", [v, "bench_axis"], `bench_u${i}`)),
    node(
      "Concat",
      values.map((_, i) => `bench_u${i}`),
      "bench_stack",
      [{ name: "axis", type: 2, i: 1 }],
    ),
  );
  g.output.push(floatInfo("bench_stack"));
}

function separate(m: ModelProto): void {
  graphOf(m).output.push(...values.map((v) => floatInfo(v)));
}

/** The forecast over [B, U, T', D] values: h + Σ_j ReduceSum_U((c_j·G) ⊙ S_j), G = the gates as [B, U, 1, D]. */
function reduceForecast(terms: number): Uint8Array {
  const nodes = values.map((_, i) => node("Reshape", [`g${i}`, "b11d"], `gc${i}`));
  nodes.push(
    node(
      "Concat",
      values.map((_, i) => `gc${i}`),
      "G",
      [{ name: "axis", type: 2, i: 1 }],
    ),
  );
  const inputs = [floatInfo("h"), ...values.map((_, i) => floatInfo(`g${i}`))];
  for (let j = 0; j < terms; j++) {
    inputs.push(floatInfo(`s${j}`), floatInfo(`c${j}`, []));
    nodes.push(
      node("Mul", ["G", `c${j}`], `G${j}`),
      node("Mul", [`G${j}`, `s${j}`], `p${j}`),
      node("ReduceSum", [`p${j}`, "axis1"], `r${j}`, [{ name: "keepdims", type: 2, i: 0 }]),
    );
  }
  const sum = terms > 1 ? "rsum" : "r0";
  if (terms > 1)
    nodes.push(
      node(
        "Sum",
        Array.from({ length: terms }, (_, j) => `r${j}`),
        "rsum",
      ),
    );
  nodes.push(node("Add", ["h", sum], "out"));
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 17 }],
      graph: {
        name: "reduce_forecast",
        node: nodes,
        initializer: [ints("b11d", [0, 1, 1, -1]), ints("axis1", [1])],
        input: inputs,
        output: [floatInfo("out")],
      },
    }),
  ).finish();
}

/** Median wall and CPU ms of each case, interleaved (order reversed every other repeat). */
async function timeCases(cases: Record<string, () => Promise<unknown>>): Promise<Record<string, [number, number]>> {
  const names = Object.keys(cases);
  const wall: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const cpu: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = -3; r < repeats; r++) {
    for (const n of r % 2 === 0 ? names : [...names].reverse()) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      await cases[n]();
      const c = process.cpuUsage(c0);
      if (r < 0) continue;
      wall[n].push(performance.now() - t0);
      cpu[n].push((c.user + c.system) / 1000);
    }
  }
  return Object.fromEntries(names.map((n) => [n, [median(wall[n]), median(cpu[n])]]));
}

const print = (label: string, t: Record<string, [number, number]>, base: string) => {
  const [bw, bc] = t[base];
  const cells = Object.entries(t).map(
    ([n, [w, c]]) => `${n} ${w.toFixed(2)} / ${c.toFixed(2)} ms (×${(w / bw).toFixed(3)} / ×${(c / bc).toFixed(3)})`,
  );
  console.log(`${label}: ${cells.join("; ")}`);
};

const options = model.sessionOptions;
const create = (bytes: Uint8Array) => model.backend.createSession(bytes, options);
const stacks: Record<string, Session> = {
  plain: await create(stackGraph()),
  ditto: await create(stackGraph((m) => appendStackedValues(m, values, 3))),
  concatOnly: await create(stackGraph(concatOnly)),
  separate: await create(stackGraph(separate)),
};
const embed = await model.embed();
console.log(
  `wall / CPU ms (median of ${repeats} interleaved repeats), ×: ÷ the first case; U = ${U}, T' = ${T}, D = ${D}`,
);
for (const batch of batches) {
  const x = new Float32Array(batch * 784).map((_, i) => Math.sin(i));
  const store = new Map(
    Object.entries(
      feedsFor(model.manifest, {
        sample: new Tensor("float32", x, [batch, 1, 28, 28]),
        time: new Float64Array(batch).fill(0.5),
        condition: new Int32Array(batch).map((_, i) => i % 10),
      }),
    ),
  );
  await embed.run(store);
  const feeds = Object.fromEntries(plan.inputs.map((n) => [n, store.get(n) as Tensor]));
  print(
    `batch ${batch}, full step`,
    await timeCases(Object.fromEntries(Object.entries(stacks).map(([k, s]) => [k, () => s.run(feeds)]))),
    "plain",
  );

  const random = (n: number) => new Float32Array(n).map((_, i) => Math.sin(i * 0.7));
  const h = new Tensor("float32", random(batch * T * D), [batch, T, D]);
  const gates = values.map(() => new Tensor("float32", random(batch * D), [batch, 1, D]));
  for (const terms of [1, 2, 3]) {
    const coefs = [3, -3, 1].slice(0, terms);
    if (terms === 1) coefs[0] = 1;
    const stacked = stackedPiece(gates, {
      terms: coefs.map((coef) => ({
        tensor: new Tensor("float32", random(batch * D * U * T), [batch, D, U, T]),
        coef,
      })),
    });
    const perBranch = accumulatePiece(
      gates.map((gate) => ({
        gate,
        approximation: {
          terms: coefs.map((coef) => ({ tensor: new Tensor("float32", random(batch * T * D), [batch, T, D]), coef })),
        },
      })),
    );
    const reduceFeeds: Record<string, Tensor> = { h };
    gates.forEach((g, i) => {
      reduceFeeds[`g${i}`] = g;
    });
    coefs.forEach((c, j) => {
      reduceFeeds[`s${j}`] = new Tensor("float32", random(batch * D * U * T), [batch, U, T, D]);
      reduceFeeds[`c${j}`] = new Tensor("float32", Float32Array.of(c), []);
    });
    const sessions = {
      ditto: await create(onnx.ModelProto.encode(stacked.model()).finish()),
      reduceSum: await create(reduceForecast(terms)),
      perBranch: await create(onnx.ModelProto.encode(perBranch.model()).finish()),
    };
    print(
      `batch ${batch}, forecast with ${terms} stored value(s)`,
      await timeCases({
        ditto: () => sessions.ditto.run({ h, ...stacked.feeds() }),
        reduceSum: () => sessions.reduceSum.run(reduceFeeds),
        perBranch: () => sessions.perBranch.run({ h, ...perBranch.feeds() }),
      }),
      "ditto",
    );
    for (const s of Object.values(sessions)) await s.release();
  }
}

// Pre-allocated outputs: does the returned tensor share the caller's buffer?
const tiny = onnx.ModelProto.encode(
  onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: { name: "relu", node: [node("Relu", ["a"], "b")], input: [floatInfo("a")], output: [floatInfo("b")] },
  }),
).finish();
const relu = await ort.InferenceSession.create(tiny);
const given = new ort.Tensor("float32", new Float32Array(4), [4]);
const returned = (await relu.run({ a: new ort.Tensor("float32", Float32Array.of(1, 2, 3, 4), [4]) }, { b: given })).b;
const written = (given.data as Float32Array)[3] === 4;
(given.data as Float32Array)[0] = 42;
console.log(
  `pre-allocated output: written into the caller's buffer ${written ? "yes" : "no"}; returned tensor shares it ` +
    `${(returned.data as Float32Array)[0] === 42 ? "yes" : "no (onnxruntime-node copies it into a new buffer)"}`,
);
