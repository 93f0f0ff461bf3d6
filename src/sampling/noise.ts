/**
 * Seeded Gaussian noise. Each sample draws from its own generator seeded by its seed, so a sample's noise does not
 * depend on what else is in the batch: same seed ⇒ bit-identical noise on any machine (the arithmetic is plain
 * IEEE double, rounded once to float32).
 */
import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";

/** `count` standard-normal values (Box–Muller on xoroshiro128+ uniforms). */
export function gaussianNoise(seed: number, count: number): Float32Array {
  const rng = xoroshiro128plus(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const u1 = 1 - uniformFloat64(rng); // (0, 1]: log stays finite
    const u2 = uniformFloat64(rng);
    const radius = Math.sqrt(-2 * Math.log(u1));
    out[i] = radius * Math.cos(2 * Math.PI * u2);
    if (i + 1 < count) out[i + 1] = radius * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

/** Noise for a batch: sample i uses seeds[i]. */
export function batchNoise(seeds: readonly number[], perSample: number): Float32Array {
  const out = new Float32Array(seeds.length * perSample);
  for (let i = 0; i < seeds.length; i++) out.set(gaussianNoise(seeds[i], perSample), i * perSample);
  return out;
}
