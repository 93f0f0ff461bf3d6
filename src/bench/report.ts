/** Benchmark output: the JSON contract, a Markdown table, and the Pareto chart (measured speedup vs PSNR). */
import type { TopLevelSpec } from "vega-lite";
import { renderChart } from "../plot/chart.ts";
import type { BenchResult } from "./harness.ts";

/**
 * `{"rows": [{"policy", "spec", "wallMs", "speedup", "speedupRange", "speedupSpread", "idealSpeedup", "psnr", "ssim",
 * "nlpd", "fd", "kid", "accuracy", "tfupAccuracy", "cacheBytes", …}], "settings": {…}, "warnings": […]}`. Metrics
 * not available for the model (no evaluation classifier) are null. An infinite PSNR (identical images) is written as 1e999, a valid JSON
 * number that JavaScript's and Python's JSON parsers read back as Infinity.
 */
export function benchJson(result: BenchResult): string {
  return jsonWithInfinity(result, 1);
}

/** JSON in which +Infinity (PSNR of identical images) is written as 1e999, which parsers read back as Infinity. */
export function jsonWithInfinity(value: unknown, indent?: number): string {
  const marked = JSON.stringify(value, (_key, v) => (v === Number.POSITIVE_INFINITY ? "__INF__" : v), indent);
  return marked.replaceAll('"__INF__"', "1e999");
}

export function benchMarkdown(result: BenchResult, command: string): string {
  const s = result.settings;
  const fmt = (v: number, digits: number) =>
    v === Number.POSITIVE_INFINITY ? "∞" : Number.isNaN(v) ? "n/a" : v.toFixed(digits);
  const pct = (v: number) => (Number.isNaN(v) ? "n/a" : `${(v * 100).toFixed(1)} %`);
  const sampler = s.sampler === "ddim" ? "DDIM" : "Euler";
  const judged = s.classifier
    ? `classifier metrics by ${s.classifier} over the same ${s.samples} samples (FD is biased below ~1,000 samples; KID, unbiased, is against the classifier's real test subset)`
    : "classifier metrics (FD, KID, accuracy, TFUP, feature dist.): n/a — the model's manifest names no evaluation classifier";
  const lines = [
    `Measured on ${s.date}, model ${s.model}, ${s.steps} ${sampler} steps, CFG ${s.cfg}; quality over ${s.samples} samples ` +
      `(seeds 0–${s.samples - 1}, classes cycling); timing: median of ${s.repeats} interleaved pairs (order flipped each repeat) of ${s.timingSamples} ` +
      `samples, each cached run repeated back to back to span its uncached partner's time (range: min–max speedup ` +
      `over the repeats), uncached ${fmt(s.uncachedWallMs / 1000, 2)} s; ${judged}. ` +
      `Command: \`${command}\``,
    "",
    "| policy | speedup (measured) | ideal | measured ÷ ideal | speedup range | PSNR (dB) | SSIM | NLPD | FD | KID | accuracy | TFUP accuracy | feature dist. | cache MiB |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...result.rows.map(
      (r) =>
        `| \`${r.label}\` | ${fmt(r.speedup, 2)}× | ${fmt(r.idealSpeedup, 2)}× | ${fmt(r.efficiency, 2)} | ${range(r.speedupRange)} | ` +
        `${fmt(r.psnr, 2)} | ${fmt(r.ssim, 4)} | ${fmt(r.nlpd, 3)} | ${fmt(r.fd, 2)} | ${fmt(r.kid, 4)} | ${pct(r.accuracy)} | ` +
        `${pct(r.tfupAccuracy)} | ${fmt(r.featureDistance, 3)} | ${fmt(r.cacheBytes / 2 ** 20, 1)} |`,
    ),
  ];
  return `${lines.join("\n")}\n`;
}

function range(r: [number, number] | undefined): string {
  return r ? `${r[0].toFixed(2)}–${r[1].toFixed(2)}×` : "n/a";
}

/** One labelled point per policy setting; identical-to-uncached rows (PSNR ∞) are drawn at the top edge. */
export function benchPlot(result: BenchResult): Promise<Buffer> {
  const finite = result.rows.map((r) => r.psnr).filter(Number.isFinite);
  const top = Math.ceil((finite.length ? Math.max(...finite) : 40) / 5) * 5 + 5;
  const points = result.rows.map((r) => ({
    speedup: r.speedup,
    psnr: Number.isFinite(r.psnr) ? r.psnr : top,
    policy: r.policy,
    label: Number.isFinite(r.psnr) ? shortLabel(r.label) : `${shortLabel(r.label)} (∞ dB)`,
  }));
  const x = {
    field: "speedup",
    type: "quantitative",
    title: "measured wall-clock speedup vs uncached (×)",
    scale: { zero: false },
  } as const;
  const y = { field: "psnr", type: "quantitative", title: "PSNR vs uncached (dB)", scale: { zero: false } } as const;
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: `Speed vs fidelity — ${result.settings.model}, ${result.settings.steps} steps, CFG ${result.settings.cfg} (${result.settings.date})`,
    width: 760,
    height: 500,
    data: { values: points },
    layer: [
      {
        mark: { type: "point", filled: true, size: 70 },
        encoding: {
          x,
          y,
          color: { field: "policy", type: "nominal", title: "policy", scale: { scheme: "tableau20" } },
        },
      },
      {
        mark: { type: "text", dx: 6, dy: -6, align: "left", fontSize: 9 },
        encoding: { x, y, text: { field: "label" } },
      },
    ],
  };
  return renderChart(spec);
}

/** "bac:artifact=bench/artifacts/bac.json,table=acs" → "bac table=acs": artifact files by name, unless named after the policy. */
export function shortLabel(label: string): string {
  const colon = label.indexOf(":");
  if (colon < 0) return label;
  const name = label.slice(0, colon);
  const options = label
    .slice(colon + 1)
    .split(",")
    .map((o) => o.replace(/^(?:artifact|calibration)=(?:.*\/)?([^/]+?)(?:\.json)?$/, "$1"))
    .filter((o) => o !== name);
  return [name, options.join(",")].filter(Boolean).join(" ");
}
