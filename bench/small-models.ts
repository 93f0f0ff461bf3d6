/**
 * `npx tsx bench/small-models.ts DIR`: writes small random-weight DiT-Llama-style graphs (built in TypeScript,
 * test/fixtures/dit-llama.ts) with reviewed manifests, for benchmarking Ditto on models that are not ours:
 * - gray32:   32×32×1, patch 2 → 256 tokens, width 64, 3 blocks (the issue-14 "32×32" shape)
 * - tokens49: 14×14×1, patch 2 → 49 tokens, width 64, 3 blocks (the shipped model's token count, small width)
 * - rgb32:    32×32×3, 256 tokens, width 64, 3 blocks (a 3-channel model)
 * Their images are noise (random weights): they measure speed and the metric plumbing, never sample quality.
 */
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type LlamaOptions, llamaManifest, writeDiTLlama } from "../test/fixtures/dit-llama.ts";

export const SMALL_MODELS: Record<string, LlamaOptions> = {
  gray32: { size: 32, width: 64 },
  tokens49: { size: 14, width: 64 },
  rgb32: { size: 32, width: 64, channels: 3 },
};

export function writeSmallModels(dir: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(SMALL_MODELS).map(([name, options]) => {
      const folder = writeDiTLlama(join(dir, name), options);
      const manifest = { ...llamaManifest(options), name: `random-${name}` };
      writeFileSync(join(folder, "manifest.json"), JSON.stringify(manifest, null, 2));
      return [name, folder];
    }),
  );
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("small-models.ts")) {
  const dir = resolve(process.argv[2] ?? "bench/small-models");
  for (const [name, path] of Object.entries(writeSmallModels(dir))) console.log(`${name}: ${path}`);
}
