/**
 * `npm run bench:unit-tax [MODEL_DIR …]`: the per-unit tax (issue 14, part 4). A policy that computes every unit
 * should cost what the uncached run costs; this measures, per model and network batch (1 and 16):
 * - generation time of `fbcache:threshold=0`, `fora:interval=1` and an all-compute schedule table against
 *   uncached (`none`), as uncached ÷ policy (1 = no tax), median and range of interleaved repeats (order rotated;
 *   each repeat the mean of back-to-back runs filling 300 ms, so a few-millisecond run on a small graph is not
 *   timed alone), both in wall time and in this process's CPU time (user + system). With one ONNX Runtime thread the CPU time
 *   counts the work done and hardly the waiting, so on a shared machine it is the steadier of the two;
 * - session calls per step of each (from the engine's report);
 * - where one forward's time goes: the whole model as one session, the block-split chain (embed, blocks, head),
 *   each segment alone, and the stack session with and without every branch value as an extra output (the
 *   hand-out an all-compute step of a branch-level policy pays); the rest of a policy's tax is host-side work.
 * Without arguments: the shipped model and two random-weight graphs (bench/small-models.ts: 32×32 with 256 tokens
 * and 49 tokens, width 64). Env: REPEATS (default 15), STEPS (default 10), THREADS (ONNX Runtime intra-op threads;
 * default 1, which on a shared machine varies far less than all cores). CFG 1, so the network batch is the batch.
 * The last line is JSON: {"<model>": {"batch1": {"fbcache:threshold=0": ratio, …, "splitOverWhole": r}, …}, …}.
 */
import { relaunchWithMallocTuning } from "../bin/malloc-tuning.js";
import { defaultTaxModels, measureUnitTax } from "./unit-tax-measure.ts";

// The same malloc tuning as the ditto command (bin/malloc-tuning.js), so the ratios are the ones users get.
relaunchWithMallocTuning();

const paths = process.argv.slice(2);
const summary = await measureUnitTax(paths.length > 0 ? paths : defaultTaxModels(), {
  repeats: Number(process.env.REPEATS ?? 15),
  steps: Number(process.env.STEPS ?? 10),
  threads: Number(process.env.THREADS ?? 1),
});
console.log(JSON.stringify(summary));
