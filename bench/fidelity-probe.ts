/**
 * Quick fidelity probe: PSNR/SSIM vs uncached and the per-step decisions of cache specs on the shipped model
 * (10 samples: seeds 0–9, classes 0–9, 50 steps, CFG 3). Quality only — timing is `ditto bench` / `ditto tune`.
 *   npx tsx bench/fidelity-probe.ts "taylorseer:interval=5,scope=stack" "easycache:threshold=0.2"
 */
import { toUnitRange } from "../src/image/png.ts";
import { psnr, ssim } from "../src/metrics/fidelity.ts";
import { type GenerationResult, loadPipeline } from "../src/pipeline.ts";

async function main(specs: string[]): Promise<void> {
  const pipeline = await loadPipeline();
  const seeds = Array.from({ length: 10 }, (_, i) => i);
  const request = { seeds, classes: seeds.map((i) => i % 10), steps: 50, cfg: 3 };
  const reference = await pipeline.generate(request);
  const image = (r: GenerationResult) => ({
    data: toUnitRange(r.samples, [-1, 1]),
    count: 10,
    channels: 1,
    height: 28,
    width: 28,
  });
  for (const spec of specs) {
    const r = await pipeline.generate({ ...request, cache: spec });
    const letters = r.reports[0].trace.map((t) => t.decisions[0]).join("");
    const cells = [
      `ideal ${r.reports[0].idealSpeedup.toFixed(2)}×`,
      `PSNR ${psnr(image(r), image(reference)).toFixed(2)} dB`,
      `SSIM ${ssim(image(r), image(reference)).toFixed(4)}`,
      letters,
    ];
    process.stdout.write(`${spec}\n  ${cells.join("  ")}\n`);
  }
  await pipeline.release();
}

await main(process.argv.slice(2));
