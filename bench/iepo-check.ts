/**
 * HarmoniCa's IEPO proxy against what it stands for (issue 23): for every step s ≥ 1, the final-sample MSE of caching
 * every unit at s alone (all other steps full), beside the λ_s a router artifact was fitted with; prints the Spearman
 * rank correlation and the spread of λ / measured. Calibration items: seeds 1000…, classes 0…, CFG 3.
 *   npx tsx bench/iepo-check.ts bench/artifacts/harmonica.json [items=4]
 */
import { readFileSync } from "node:fs";
import { tablePolicy } from "../src/cache/policies/schedule.ts";
import { loadPipeline } from "../src/pipeline.ts";

const artifact = JSON.parse(readFileSync(process.argv[2], "utf8")) as { m: (0 | 1)[][]; lambda: number[] };
const items = Number(process.argv[3] ?? 4);
const S = artifact.m.length;
const U = artifact.m[0].length;
const pipeline = await loadPipeline();
const seeds = Array.from({ length: items }, (_, i) => 1000 + i);
const request = { seeds, classes: seeds.map((_, i) => i % 10), steps: S, cfg: 3, batch: items };
const ones = () => Array.from({ length: S }, () => new Array<0 | 1>(U).fill(1));
const reference = (await pipeline.generate({ ...request, cache: tablePolicy(ones()) })).samples;
const measured: number[] = [];
for (let s = 1; s < S; s++) {
  const table = ones();
  table[s] = new Array<0 | 1>(U).fill(0);
  const out = (await pipeline.generate({ ...request, cache: tablePolicy(table) })).samples;
  measured.push(out.reduce((acc, v, i) => acc + (v - reference[i]) ** 2, 0) / out.length);
  process.stdout.write(
    `step ${s}: measured ${measured[s - 1].toExponential(2)}  λ ${artifact.lambda[s].toExponential(2)}\n`,
  );
}
const rank = (v: number[]) => {
  const order = v.map((x, i) => ({ x, i })).sort((a, b) => a.x - b.x);
  const r = new Array<number>(v.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1].x === order[i].x) j++;
    for (let k = i; k <= j; k++) r[order[k].i] = (i + j) / 2;
    i = j + 1;
  }
  return r;
};
const a = rank(measured);
const b = rank(artifact.lambda.slice(1));
const mean = (v: number[]) => v.reduce((x, y) => x + y, 0) / v.length;
const [ma, mb] = [mean(a), mean(b)];
const cov = a.reduce((acc, x, i) => acc + (x - ma) * (b[i] - mb), 0);
const spearman =
  cov / Math.sqrt(a.reduce((acc, x) => acc + (x - ma) ** 2, 0) * b.reduce((acc, x) => acc + (x - mb) ** 2, 0));
const ratios = measured.map((x, i) => artifact.lambda[i + 1] / x);
process.stdout.write(
  `Spearman(λ, measured) ${spearman.toFixed(3)}; λ/measured from ${Math.min(...ratios).toExponential(2)} to ${Math.max(...ratios).toExponential(2)}\n`,
);
await pipeline.release();
