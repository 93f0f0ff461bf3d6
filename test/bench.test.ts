/** The benchmark's smoke test: the table's structure and the identities, not speed. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_WINDOW_RUNS, meanOfRuns, QUICK_SETTINGS, runBench, runsToSpan } from "../src/bench/harness.ts";
import { benchJson, benchMarkdown, benchPlot } from "../src/bench/report.ts";
import { type GenerationResult, loadPipeline } from "../src/pipeline.ts";
import { SHIPPED_MODEL } from "./helpers.ts";

describe("ditto bench --quick", () => {
  it("writes every contract field, PSNR = ∞ and SSIM = 1 for uncached vs uncached, and a PNG plot", async () => {
    const pipeline = await loadPipeline(SHIPPED_MODEL);
    const result = await runBench(pipeline, ["none", "fora:interval=2"], QUICK_SETTINGS);
    const parsed = JSON.parse(benchJson(result));
    assert.equal(parsed.rows.length, 2);
    for (const row of parsed.rows) {
      for (const key of [
        "policy",
        "label",
        "spec",
        "wallMs",
        "speedup",
        "idealSpeedup",
        "psnr",
        "ssim",
        "fd",
        "accuracy",
        "tfupAccuracy",
        "cacheBytes",
      ]) {
        assert.ok(key in row, `row has ${key}`);
      }
    }
    const [uncached, fora] = parsed.rows;
    assert.equal(uncached.psnr, Number.POSITIVE_INFINITY, "1e999 reads back as Infinity");
    assert.equal(uncached.ssim, 1);
    assert.equal(uncached.idealSpeedup, 1);
    assert.ok(Number.isFinite(fora.psnr) && fora.psnr > 5);
    assert.ok(fora.idealSpeedup > 1.5);
    // TFUP-adapted accuracy is always shown beside the plain accuracy (generated samples, labels = their classes).
    for (const row of parsed.rows)
      assert.ok(row.tfupAccuracy >= 0 && row.tfupAccuracy <= 1, `tfupAccuracy ${row.tfupAccuracy}`);
    assert.equal(parsed.settings.steps, QUICK_SETTINGS.steps);
    const md = benchMarkdown(result, "ditto bench --quick");
    assert.match(md, /\| `none` \| [\d.]+× \| 1\.00× \|/);
    assert.match(md, /\| ∞ \| 1\.0000 \|/);
    assert.match(md, /\| accuracy \| TFUP accuracy \|/);
    const png = await benchPlot(result);
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], "a PNG");
    await pipeline.release();
  });
});

describe("runsToSpan and meanOfRuns", () => {
  const runsOf = (ms: number) => {
    let calls = 0;
    const generate = async () => {
      calls++;
      return { wallMs: ms } as GenerationResult;
    };
    return { generate, calls: () => calls };
  };
  it("fixes the run count from one calibration run, then averages that many runs", async () => {
    const r = runsOf(30);
    const runs = await runsToSpan(100, r.generate);
    const w = await meanOfRuns(runs, r.generate);
    assert.deepEqual([runs, w.runs, w.meanMs, r.calls()], [3, 3, 30, 4]);
  });
  it("runs once when one run already spans the window, and at most MAX_WINDOW_RUNS times", async () => {
    assert.equal(await runsToSpan(10, runsOf(50).generate), 1);
    assert.equal(await runsToSpan(1e9, runsOf(1).generate), MAX_WINDOW_RUNS);
  });
  it("does not let the timed runs decide how many of them count", async () => {
    // A slow first run followed by fast ones: the mean covers every run asked for, not just the first.
    const times = [80, 20, 20];
    const generate = async () => ({ wallMs: times.shift() as number }) as GenerationResult;
    assert.equal((await meanOfRuns(3, generate)).meanMs, 40);
  });
});
