/**
 * The page in a real browser (system Chromium, WASM backend, threads on through COOP/COEP): generate 2 images at
 * 10 steps uncached and with fora:interval=2, read the samples back and compare them with onnxruntime-node's
 * output for the same seeds. Saves a screenshot to test-output/web/ (or $DITTO_TEST_OUTPUT/web/).
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadPipeline, type Pipeline } from "../src/index.ts";
import { PACKAGE_ROOT } from "../src/serve/web-server.ts";
import type { PageResult } from "../web/page-result.ts";
import { type BrowserSession, buildPage, openPage } from "./web/browser.ts";

/**
 * Measured max |browser − Node| over all samples (model space [−1, 1]): 2.7e-6 uncached and 4.1e-6 with fora
 * (WASM and the native CPU EP use different kernels and summation orders); the bound leaves ~25× headroom.
 */
const TOLERANCE = 1e-4;
const CLASSES = [0, 1];
const SEEDS = [0, 1];
const STEPS = 10;

const outDir = join(process.env.DITTO_TEST_OUTPUT ?? join(PACKAGE_ROOT, "test-output"), "web");
let session: BrowserSession;
let pipeline: Pipeline;

before(async () => {
  await buildPage();
  session = await openPage("?classes=0,1&policy=fora");
  pipeline = await loadPipeline();
});

after(async () => {
  await session?.close();
  await pipeline?.release();
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

test("the page generates uncached and fora:interval=2 in Chromium, matching onnxruntime-node", {
  timeout: 300_000,
}, async () => {
  const { page } = session;
  // Served by the same server as `ditto web`: COOP/COEP make the page cross-origin isolated, so WASM threads work.
  assert.equal(await page.evaluate(() => crossOriginIsolated), true);
  await page.fill("#steps", String(STEPS));
  await page.fill("#per-class", "1");
  await page.fill("#seed", String(SEEDS[0]));
  await page.fill('[data-option="interval"] input', "2");
  await page.uncheck("#warmup"); // keep the test short; timings in the screenshot are then cold
  assert.equal(await page.textContent("#spec"), "fora:interval=2");
  await page.click("#generate");
  await page.waitForFunction(
    () => document.body.dataset.state === "done" || document.querySelector("#messages .error"),
    undefined,
    {
      timeout: 240_000,
    },
  );
  const errors = await page.$$eval("#messages .error", (els) => els.map((e) => e.textContent));
  assert.deepEqual(errors, []);
  const result = (await page.evaluate(
    () => (window as unknown as { ditto: { result: unknown } }).ditto.result,
  )) as PageResult;
  mkdirSync(outDir, { recursive: true });
  await page.screenshot({ path: join(outDir, "page.png"), fullPage: true });

  assert.equal(result.spec, "fora:interval=2,warmup=1"); // the canonical spec, defaults filled in
  assert.deepEqual(result.dims, [2, 1, 28, 28]);
  assert.deepEqual(result.classes, CLASSES);
  assert.deepEqual(result.seeds, SEEDS);
  const request = { classes: CLASSES, seeds: SEEDS, steps: STEPS, cfg: 3, batch: SEEDS.length };
  const nodeNone = await pipeline.generate(request);
  const nodeFora = await pipeline.generate({ ...request, cache: "fora:interval=2" });
  // The model bytes the browser fetched hash (WebCrypto) to what Node read: calibration artifacts match both.
  const browserSha = await page.evaluate(
    () => (window as unknown as { ditto: { pipeline: Pipeline } }).ditto.pipeline.model.onnx.sha256,
  );
  assert.equal(browserSha, pipeline.model.onnx.sha256);
  const diffNone = maxAbsDiff(result.uncached, nodeNone.samples);
  const diffFora = maxAbsDiff(result.cached, nodeFora.samples);
  writeFileSync(
    join(outDir, "comparison.json"),
    `${JSON.stringify({ tolerance: TOLERANCE, maxAbsDiff: { none: diffNone, fora: diffFora }, page: { speedup: result.speedup, idealSpeedup: result.idealSpeedup, psnr: result.psnr, ssim: result.ssim } }, null, 1)}\n`,
  );
  assert.ok(diffNone <= TOLERANCE, `uncached: browser vs Node max |Δ| ${diffNone} > ${TOLERANCE}`);
  assert.ok(diffFora <= TOLERANCE, `fora: browser vs Node max |Δ| ${diffFora} > ${TOLERANCE}`);
  // The cache really did something, and the page's numbers are the real ones.
  assert.ok(result.idealSpeedup > 1.3, `ideal speedup ${result.idealSpeedup}`);
  assert.ok(
    maxAbsDiff(result.cached, result.uncached) > 1e-4,
    "cached output identical to uncached: cache did nothing",
  );
  assert.ok(result.psnr > 15 && result.psnr < 100, `PSNR ${result.psnr}`);
  assert.ok(result.ssim > 0.5 && result.ssim <= 1, `SSIM ${result.ssim}`);
  // The screenshot's content: both grids drawn, the speedup shown.
  const metrics = await page.textContent("#metrics");
  assert.match(metrics ?? "", /Measured speedup\s*\d+\.\d\d×/);
  for (const id of ["grid-uncached", "grid-cached", "strip"]) {
    const inked = await page.$eval(`#${id}`, (c) => {
      const canvas = c as HTMLCanvasElement;
      const data = canvas.getContext("2d")?.getImageData(0, 0, canvas.width, canvas.height).data ?? [];
      let dark = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i] < 200) dark++;
      return dark;
    });
    assert.ok(inked > 100, `#${id} looks empty`);
  }
});

test("a calibrated policy takes its artifact from a picked file, checked against the run", {
  timeout: 240_000,
}, async () => {
  const { page } = session;
  await page.selectOption("#policy", "bac");
  await page.setInputFiles(
    '[data-option="artifact"] input[type="file"]',
    join(PACKAGE_ROOT, "bench/artifacts/bac.json"),
  );
  await page.waitForFunction(() => document.querySelector("#spec")?.textContent === "bac:artifact=picked:bac.json");
  await page.click("#generate");
  await page.waitForSelector("#messages .error", { timeout: 200_000 });
  const text = await page.textContent("#messages .error");
  // The picked file was loaded, parsed and checked against this run (it was calibrated for 50 steps).
  assert.match(text ?? "", /picked:bac\.json holds a 50×24 table; this run needs 10 steps.*\[ARTIFACT_MISMATCH\]/);
});

test("the page says clearly when the model fails to load", { timeout: 120_000 }, async () => {
  const broken = await openPage("", { modelsDir: mkdtempSync(join(tmpdir(), "ditto-no-models-")), allowError: true });
  try {
    const text = await broken.page.textContent("#messages .error");
    assert.match(text ?? "", /The model failed to load: .*models\/fashion-dit.*\[MODEL_NOT_FOUND\]/);
    assert.equal(await broken.page.isDisabled("#generate"), true);
  } finally {
    await broken.close();
  }
});
