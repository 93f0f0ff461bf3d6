/**
 * Segment plans: which nodes each session holds and which tensors cross its boundary. A segment is the embed
 * (every context node plus the token nodes before the first block), a contiguous range of atoms, or the head.
 */
import type { GraphIndex } from "../onnx/graph.ts";
import type { ModelStructure } from "./discover.ts";

export interface SegmentPlan {
  name: string;
  inputs: string[];
  outputs: string[];
  nodes: number[];
}

export function planEmbed(g: GraphIndex, s: ModelStructure): SegmentPlan {
  return planNodes(g, s, "embed", s.embedNodes);
}

/**
 * The embed split by what it reads. `conditioning`: the nodes that see only the timestep and condition (in adaLN
 * DiTs, the modulation of every block: most of the parameters, little of the FLOPs). `patch`: the nodes that see the
 * sample. The first can run for many steps in one batch; the second must run every step.
 */
export function planConditioning(g: GraphIndex, s: ModelStructure): SegmentPlan {
  return planNodes(
    g,
    s,
    "conditioning",
    s.embedNodes.filter((i) => s.nodeClass[i] === "context"),
  );
}

export function planPatch(g: GraphIndex, s: ModelStructure): SegmentPlan {
  return planNodes(
    g,
    s,
    "patch",
    s.embedNodes.filter((i) => s.nodeClass[i] !== "context"),
  );
}

export function planHead(g: GraphIndex, s: ModelStructure): SegmentPlan {
  return planNodes(g, s, "head", s.headNodes);
}

/**
 * Atoms [start, end) as one segment. A single gated atom also outputs its pre-gate value, so a policy can cache it;
 * `extraOutputs` adds taps (e.g. attention probabilities while profiling).
 */
export function planRange(
  g: GraphIndex,
  s: ModelStructure,
  start: number,
  end: number,
  extraOutputs: string[] = [],
): SegmentPlan {
  const nodes = s.atoms
    .slice(start, end)
    .flatMap((a) => a.nodes)
    .sort((a, b) => a - b);
  const plan = planNodes(g, s, rangeName(s, start, end), nodes);
  const extra = end - start === 1 ? [s.atoms[start].value, ...extraOutputs] : extraOutputs;
  for (const name of extra) if (!plan.outputs.includes(name)) plan.outputs.push(name);
  if (extraOutputs.length > 0) plan.name += "+outputs";
  return plan;
}

export function rangeName(s: ModelStructure, start: number, end: number): string {
  const first = s.atoms[start];
  const last = s.atoms[end - 1];
  if (end - start === 1) return `block${first.block}.${first.kind}`;
  const wholeBlocks = s.blocks[first.block].atoms[0] === start && s.blocks[last.block].atoms.at(-1) === end - 1;
  if (wholeBlocks) return first.block === last.block ? `block${first.block}` : `blocks${first.block}-${last.block}`;
  return `atoms${start}-${end - 1}`;
}

function planNodes(g: GraphIndex, s: ModelStructure, name: string, nodes: number[]): SegmentPlan {
  const inSet = new Set(nodes);
  const produced = new Set(nodes.flatMap((n) => g.nodes[n].output));
  const inputs: string[] = [];
  for (const n of nodes) {
    for (const t of g.nodeInputs[n]) {
      if (produced.has(t) || inputs.includes(t) || g.initializers.has(t)) continue;
      const p = g.producer.get(t);
      if (p !== undefined && s.nodeClass[p] === "constant") continue; // pulled into the slice by the extractor
      inputs.push(t);
    }
  }
  const graphOutputs = new Set(g.graphOutputs);
  const outputs: string[] = [];
  for (const n of nodes) {
    for (const t of g.nodes[n].output) {
      if (t === "") continue;
      const readOutside = (g.consumers.get(t) ?? []).some((c) => !inSet.has(c));
      if (readOutside || graphOutputs.has(t)) outputs.push(t);
    }
  }
  return { name, inputs, outputs, nodes };
}
