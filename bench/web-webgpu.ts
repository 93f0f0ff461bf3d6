/**
 * `npm run check:webgpu`: the page on the WebGPU backend in headless Chromium (SwiftShader: a CPU rasteriser, so
 * correct but far slower than WASM; a check of correctness, not speed). 1 image, 2 steps, uncached and FORA,
 * compared with onnxruntime-node for the same seed. Not in `npm test`: it takes about a minute of CPU.
 */
import { loadPipeline } from "../src/index.ts";
import { buildPage, openPage } from "../test/web/browser.ts";

const request = { classes: [0], seeds: [0], steps: 2, cfg: 3 };
await buildPage();
const session = await openPage("?device=webgpu&classes=0&policy=fora", {
  extraArgs: ["--enable-unsafe-webgpu", "--enable-unsafe-swiftshader", "--use-webgpu-adapter=swiftshader"],
});
const { page } = session;
await page.fill("#steps", String(request.steps));
await page.fill('[data-option="interval"] input', "2");
await page.uncheck("#warmup");
await page.click("#generate");
await page.waitForFunction(
  () => document.body.dataset.state === "done" || document.querySelector("#messages .error"),
  undefined,
  { timeout: 500_000 },
);
const errors = await page.$$eval("#messages .error", (els) => els.map((e) => e.textContent));
if (errors.length) throw new Error(errors.join("\n"));
const environment = await page.textContent("#environment");
const result = (await page.evaluate(() => (window as unknown as { ditto: { result: unknown } }).ditto.result)) as {
  uncached: number[];
  cached: number[];
  uncachedMs: number;
  cachedMs: number;
};
await session.close();
const pipeline = await loadPipeline();
const none = await pipeline.generate(request);
const fora = await pipeline.generate({ ...request, cache: "fora:interval=2" });
await pipeline.release();
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
console.log(environment);
console.log(
  JSON.stringify({
    maxAbsDiff: { none: maxAbs(result.uncached, none.samples), fora: maxAbs(result.cached, fora.samples) },
    browserMs: { none: Math.round(result.uncachedMs), fora: Math.round(result.cachedMs) },
  }),
);
