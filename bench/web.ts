/**
 * `npm run bench:web` (P5): the same generation timed in the page (onnxruntime-web, WASM, threads on) and in Node
 * (onnxruntime-node, CPU EP, the same thread count), interleaved repeats, medians. Prints browser ÷ Node per cache
 * setting; last line JSON. Env: THREADS (default 2), REPEATS (5), PROXY (1: ONNX Runtime in a worker), IMAGES (4), STEPS (10), CACHE ("none,fora:interval=2").
 * Wall times exclude model loading and session creation on both sides (Pipeline.generate's wallMs).
 */
import { median } from "../src/bench/harness.ts";
import { loadPipeline } from "../src/index.ts";
import { buildPage, openPage } from "../test/web/browser.ts";

const threads = Number(process.env.THREADS ?? 2);
const repeats = Number(process.env.REPEATS ?? 5);
const images = Number(process.env.IMAGES ?? 4);
const steps = Number(process.env.STEPS ?? 10);
const caches = (process.env.CACHE ?? "none,fora:interval=2").split(",").map((s) => s.replace(/;/g, ","));

await buildPage();
const proxy = process.env.PROXY === "1";
const session = await openPage(`?threads=${threads}${proxy ? "&proxy=1" : ""}`);
const pipeline = await loadPipeline(undefined, { session: { intraOpThreads: threads, interOpThreads: 1 } });
const pageThreads = await session.page.evaluate(
  () => (window as unknown as { ditto: { threads: number } }).ditto.threads,
);
if (pageThreads !== threads)
  throw new Error(`the page runs ${pageThreads} threads, not ${threads} (cross-origin isolation?)`);

const request = {
  classes: Array.from({ length: images }, (_, i) => i % 10),
  seeds: Array.from({ length: images }, (_, i) => i),
  steps,
  cfg: 3,
};
const inBrowser = (cache: string) =>
  session.page.evaluate((o) => (window as unknown as { ditto: { time(o: unknown): Promise<number> } }).ditto.time(o), {
    ...request,
    cache,
  });
const inNode = async (cache: string) => (await pipeline.generate({ ...request, cache, batch: images })).wallMs;

const rows: Record<string, { browserMs: number; nodeMs: number; ratio: number }> = {};
for (const cache of caches) {
  await inBrowser(cache); // warm-up: first-run allocations, engine sessions
  await inNode(cache);
  const browser: number[] = [];
  const node: number[] = [];
  for (let r = 0; r < repeats; r++) {
    browser.push(await inBrowser(cache));
    node.push(await inNode(cache));
  }
  const b = median(browser);
  const n = median(node);
  rows[cache] = { browserMs: Math.round(b), nodeMs: Math.round(n), ratio: Math.round((b / n) * 100) / 100 };
  console.log(
    `${cache.padEnd(18)} browser ${(b / 1000).toFixed(2)} s  node ${(n / 1000).toFixed(2)} s  browser ÷ node ${(b / n).toFixed(2)}  (medians of ${repeats})`,
  );
}
await session.close();
await pipeline.release();
console.log(JSON.stringify({ threads, proxy, images, steps, repeats, rows }));
