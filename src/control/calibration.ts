/**
 * Calibration observations for a diffusion policy: the states an uncached rollout actually visits on a separate
 * calibration episode set (seed 1000, apart from the evaluation seed), spread over the whole course — start,
 * around the obstacle, near the goal — rather than BAC's single demo observation (shared/specs/bac.md, pitfall 1).
 */
import type { Pipeline } from "../pipeline.ts";
import type { SamplerKind } from "../sampling/samplers.ts";
import { policyLayout, rollout } from "./rollout.ts";

export const CALIBRATION_EPISODE_SEED = 1000;

export async function calibrationObservations(
  pipeline: Pipeline,
  options: { count: number; episodes?: number; sampler?: SamplerKind; steps?: number },
): Promise<Float32Array> {
  const { obsDim } = policyLayout(pipeline.manifest);
  const rows: Float32Array[] = [];
  await rollout(pipeline, {
    episodes: options.episodes ?? Math.max(2, Math.ceil(options.count / 2)),
    episodeSeed: CALIBRATION_EPISODE_SEED,
    seed: CALIBRATION_EPISODE_SEED,
    sampler: options.sampler,
    steps: options.steps,
    cache: "none",
    onObservations: (batch) => {
      for (let k = 0; k < batch.length / obsDim; k++) rows.push(batch.slice(k * obsDim, (k + 1) * obsDim));
    },
  });
  const count = Math.min(options.count, rows.length);
  const out = new Float32Array(count * obsDim);
  for (let i = 0; i < count; i++) out.set(rows[Math.floor((i * rows.length) / count)], i * obsDim);
  return out;
}
