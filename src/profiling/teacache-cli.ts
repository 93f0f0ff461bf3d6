/** `ditto profile --method teacache`: the fit and its picture. */
import type { TopLevelSpec } from "vega-lite";
import type { TeaCacheArtifact } from "../cache/policies/teacache.ts";
import { polyval } from "../cache/signals.ts";
import { renderChart } from "../plot/chart.ts";
import type { ArtifactHeader } from "./artifact.ts";
import { profileTeaCache } from "./teacache.ts";

export const teacacheMethod = {
  summary: "fit TeaCache's rescaling polynomial",
  run: (pipeline: Parameters<typeof profileTeaCache>[0], options: Parameters<typeof profileTeaCache>[1]) =>
    profileTeaCache(pipeline, options),
  summarize: (a: ArtifactHeader) => {
    const t = a as TeaCacheArtifact;
    return `polynomial [${t.coefficients.map((c) => c.toPrecision(4)).join(", ")}], R² ${t.fit.r2.toFixed(3)} on ${t.fit.pairs} pairs`;
  },
  plot: (a: ArtifactHeader) => {
    const t = a as TeaCacheArtifact;
    const [lo, hi] = t.fit.xRange;
    const curve = Array.from({ length: 80 }, (_, i) => {
      const x = lo + ((hi - lo) * i) / 79;
      return { x, y: polyval(t.coefficients, x), kind: "fit" };
    });
    const points = t.samples.map(([x, y]) => ({ x, y, kind: "calibration pair" }));
    const x = { field: "x", type: "quantitative", title: "relative L1 change of block 0's modulated input" } as const;
    const y = { field: "y", type: "quantitative", title: "relative L1 change of the model output" } as const;
    const spec: TopLevelSpec = {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      title: `TeaCache rescaling polynomial (R² ${t.fit.r2.toFixed(3)}, ${t.fit.pairs} pairs)`,
      width: 480,
      height: 320,
      layer: [
        { data: { values: points }, mark: { type: "point", opacity: 0.3, size: 12 }, encoding: { x, y } },
        { data: { values: curve }, mark: { type: "line", color: "firebrick" }, encoding: { x, y } },
      ],
    };
    return renderChart(spec);
  },
};
