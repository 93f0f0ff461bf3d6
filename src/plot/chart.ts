/**
 * Charts as PNG: a Vega-Lite spec compiled by vega-lite, rendered to SVG by vega (headless, no canvas), and
 * rasterised by resvg. All three are well-kept npm packages with no native build beyond resvg's prebuilt binary.
 */
import { Resvg } from "@resvg/resvg-js";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

export async function renderChart(spec: TopLevelSpec, scale = 2): Promise<Buffer> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, {
    fitTo: { mode: "zoom", value: scale },
    background: "white",
    font: { loadSystemFonts: true },
  }).render();
  return png.asPng();
}

/** A heat map of a matrix (rows × columns), e.g. blocks × steps, with labelled axes. */
export function heatmapSpec(
  title: string,
  matrix: number[][],
  rowLabel: string,
  columnLabel: string,
  valueLabel: string,
): TopLevelSpec {
  const values = matrix.flatMap((row, r) => row.map((v, c) => ({ [rowLabel]: r, [columnLabel]: c, [valueLabel]: v })));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title,
    width: Math.max(200, Math.min(700, matrix[0]?.length * 12)),
    height: Math.max(120, Math.min(500, matrix.length * 12)),
    data: { values },
    mark: "rect",
    encoding: {
      x: { field: columnLabel, type: "ordinal", title: columnLabel },
      y: { field: rowLabel, type: "ordinal", title: rowLabel },
      color: { field: valueLabel, type: "quantitative", title: valueLabel, scale: { scheme: "viridis" } },
    },
  };
}
