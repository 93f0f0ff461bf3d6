import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { ImageBatch } from "../src/image/png.ts";
import { accuracy, Classifier } from "../src/metrics/classifier.ts";
import { psnr, ssim } from "../src/metrics/fidelity.ts";
import { featureStats, frechetDistance } from "../src/metrics/frechet.ts";
import { gaussianNoise } from "../src/sampling/noise.ts";

const batch = (data: number[] | Float32Array, h: number, w: number, count = 1): ImageBatch => ({
  data: Float32Array.from(data),
  count,
  channels: 1,
  height: h,
  width: w,
});

describe("PSNR and SSIM", () => {
  it("PSNR: a uniform 0.1 error is 20 dB; identical images are infinite", () => {
    const a = batch(new Array(16 * 16).fill(0.5), 16, 16);
    const b = batch(new Array(16 * 16).fill(0.6), 16, 16);
    assert.ok(Math.abs(psnr(a, b) - 20) < 1e-4);
    assert.equal(psnr(a, a), Number.POSITIVE_INFINITY);
  });

  it("SSIM: 1 for identical images; for two constants, (2ab + C1)/(a² + b² + C1)", () => {
    const a = batch(new Array(16 * 16).fill(0.5), 16, 16);
    const b = batch(new Array(16 * 16).fill(0.6), 16, 16);
    assert.equal(ssim(a, a), 1);
    assert.ok(Math.abs(ssim(a, b) - (0.6 + 1e-4) / (0.61 + 1e-4)) < 1e-6);
  });

  it("SSIM equals a direct (non-separable) evaluation on a random 12×12 pair", () => {
    const x = Array.from(gaussianNoise(1, 144), (v) => 0.5 + 0.2 * v);
    const y = Array.from(gaussianNoise(2, 144), (v, i) => 0.7 * x[i] + 0.1 * v);
    const g = Array.from({ length: 11 }, (_, i) => Math.exp(-((i - 5) ** 2) / 4.5));
    const norm = g.reduce((s, v) => s + v, 0) ** 2;
    let total = 0;
    for (let oy = 0; oy < 2; oy++) {
      for (let ox = 0; ox < 2; ox++) {
        let mx = 0,
          my = 0,
          sxx = 0,
          syy = 0,
          sxy = 0;
        for (let i = 0; i < 11; i++) {
          for (let j = 0; j < 11; j++) {
            const wgt = (g[i] * g[j]) / norm;
            const a = x[(oy + i) * 12 + ox + j];
            const b = y[(oy + i) * 12 + ox + j];
            mx += wgt * a;
            my += wgt * b;
            sxx += wgt * a * a;
            syy += wgt * b * b;
            sxy += wgt * a * b;
          }
        }
        const [c1, c2] = [1e-4, 9e-4];
        total +=
          ((2 * mx * my + c1) * (2 * (sxy - mx * my) + c2)) /
          ((mx * mx + my * my + c1) * (sxx - mx * mx + syy - my * my + c2));
      }
    }
    assert.ok(Math.abs(ssim(batch(x, 12, 12), batch(y, 12, 12)) - total / 4) < 1e-6);
  });
});

describe("Fréchet distance and the classifier", () => {
  let classifier: Classifier;
  before(async () => {
    classifier = await Classifier.load();
  });
  after(() => classifier.release());

  it("is ≈ 0 for a set against its own statistics and grows with added noise", () => {
    const dim = 8;
    const base = gaussianNoise(3, 400 * dim);
    const own = featureStats(base, dim);
    assert.ok(Math.abs(frechetDistance(own, own)) < 1e-8);
    let previous = 0;
    for (const scale of [0.1, 0.5, 1.5]) {
      const noisy = base.map((v, i) => v + scale * gaussianNoise(4, base.length)[i]);
      const fd = frechetDistance(featureStats(noisy, dim), own);
      assert.ok(fd > previous, `noise ${scale}: FD ${fd} should exceed ${previous}`);
      previous = fd;
    }
  });

  it("reaches its reported accuracy (−1 pt) on the shipped test subset, and the subset sits near the test statistics", async () => {
    const subset = await classifier.testSubset();
    assert.equal(subset.count, 1000);
    const out = await classifier.classify(subset.images, subset.count);
    const acc = accuracy(out.predictions, subset.labels);
    assert.ok(
      acc >= classifier.manifest.testAccuracy - 0.01,
      `accuracy ${acc} vs reported ${classifier.manifest.testAccuracy}`,
    );
    const fd = frechetDistance(featureStats(out.features, out.featureDim), await classifier.testStats());
    assert.ok(fd < 8, `FD of 1,000 real test images to the test statistics: ${fd}`);
  });
});
