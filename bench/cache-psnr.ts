/**
 * PSNR of cache specs against the uncached run from the same noise, per item, peak = the sample range (issue 23's
 * fixed-compute ablations). Images: seeds 0–9, classes 0–9, CFG 3. Action-chunk policies: 32 chunks at the
 * observations an uncached rollout visits from the task's evaluation episode seed 7 (calibration uses 1000+).
 *   npx tsx bench/cache-psnr.ts MODEL|default STEPS SAMPLER|- SPEC…
 *   npx tsx bench/cache-psnr.ts models/reach-policy 50 ddim "ertacache:artifact=erta.json,adjust=false"
 */
import { policyLayout, rollout } from "../src/control/rollout.ts";
import { type GenerateOptions, loadPipeline } from "../src/pipeline.ts";
import type { SamplerKind } from "../src/sampling/samplers.ts";

const [model, stepsArg, samplerArg, ...specs] = process.argv.slice(2);
const pipeline = await loadPipeline(model === "default" ? undefined : model);
const m = pipeline.manifest;
const steps = Number(stepsArg);
const sampler = samplerArg === "-" ? undefined : (samplerArg as SamplerKind);
const isPolicy = m.inputs.sample.kind === "action-sequence";
const range = (isPolicy ? m.action?.range : m.image?.range) ?? [-1, 1];
let request: GenerateOptions;
if (isPolicy) {
  const { obsDim } = policyLayout(m);
  const rows: Float32Array[] = [];
  await rollout(pipeline, {
    episodes: 4,
    episodeSeed: 7,
    seed: 7,
    sampler,
    steps,
    cache: "none",
    onObservations: (b: Float32Array) => {
      for (let k = 0; k < b.length / obsDim; k++) rows.push(b.slice(k * obsDim, (k + 1) * obsDim));
    },
  });
  const n = 32;
  const observations = new Float32Array(n * obsDim);
  for (let i = 0; i < n; i++) observations.set(rows[Math.floor((i * rows.length) / n)], i * obsDim);
  request = { seeds: Array.from({ length: n }, (_, i) => i), observations, steps, sampler, batch: n };
} else {
  const seeds = Array.from({ length: 10 }, (_, i) => i);
  request = { seeds, classes: seeds.map((i) => i % 10), steps, cfg: 3, sampler };
}
const reference = await pipeline.generate(request);
const items = request.seeds?.length ?? 1;
const per = reference.samples.length / items;
const span = range[1] - range[0];
for (const spec of specs) {
  const r = await pipeline.generate({ ...request, cache: spec });
  let total = 0;
  for (let n = 0; n < items; n++) {
    let mse = 0;
    for (let i = n * per; i < (n + 1) * per; i++) mse += ((r.samples[i] - reference.samples[i]) / span) ** 2;
    total += 10 * Math.log10(per / mse);
  }
  const ideal = r.reports[0].idealSpeedup.toFixed(2);
  process.stdout.write(`${(total / items).toFixed(2)} dB  ideal ${ideal}×  ${spec}\n`);
}
await pipeline.release();
