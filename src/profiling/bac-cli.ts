/** `ditto profile --method bac`: the per-unit schedule, with the similarity matrices and schedule as heat maps. */
import type { TopLevelSpec } from "vega-lite";
import { computedFraction } from "../cache/policies/schedule.ts";
import type { Pipeline } from "../pipeline.ts";
import { renderChart } from "../plot/chart.ts";
import type { ArtifactHeader } from "./artifact.ts";
import { type BacArtifact, profileBac } from "./bac.ts";
import type { CalibrationOptions } from "./calibration.ts";

export const bacMethod = {
  summary: "per-unit update steps by the ACS dynamic program, with the Bubbling Union",
  run(pipeline: Pipeline, options: CalibrationOptions, extra: Record<string, string | undefined>) {
    return profileBac(pipeline, {
      ...options,
      budget: extra.M !== undefined ? Number(extra.M) : undefined,
      promote: extra.n !== undefined ? Number(extra.n) : undefined,
    });
  },
  summarize(a: ArtifactHeader) {
    const t = a as BacArtifact;
    const f = (table: (0 | 1)[][]) => `${(computedFraction(table) * 100).toFixed(1)} %`;
    return `M ${t.M}, promoted units [${t.promoted.join(", ")}]; computed: BAC ${f(t.m)}, ACS ${f(t.tables.acs)}, unified ${f(t.tables.unified)}, uniform ${f(t.tables.uniform)}`;
  },
  plot(a: ArtifactHeader) {
    const t = a as BacArtifact;
    const schedule = t.m.flatMap((row, s) =>
      row.map((v, u) => ({
        step: s,
        unit: `${u} ${t.units[u].kind}${t.promoted.includes(u) ? "*" : ""}`,
        computed: v,
      })),
    );
    const stride = Math.max(1, Math.ceil(t.m.length / 25));
    const sim = t.similarity.flatMap((S, u) =>
      S.flatMap((row, i) =>
        i % stride
          ? []
          : row.flatMap((v, j) => (j % stride ? [] : [{ unit: `${u} ${t.units[u].kind}`, i, j, cos: v }])),
      ),
    );
    const spec: TopLevelSpec = {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      title: `BAC: per-unit update steps (M ${t.M}, * = promoted by the Bubbling Union) and step × step cosine similarity`,
      vconcat: [
        {
          data: { values: schedule },
          width: 640,
          height: 360,
          mark: "rect",
          encoding: {
            x: { field: "step", type: "ordinal", title: "step" },
            y: { field: "unit", type: "ordinal", sort: null, title: "unit" },
            color: { field: "computed", type: "nominal", title: "computed", scale: { range: ["#eeeeee", "#2c7fb8"] } },
          },
        },
        {
          data: { values: sim },
          columns: 8,
          facet: { field: "unit", type: "ordinal", sort: null, title: "similarity matrix per unit (cosine)" },
          spec: {
            width: 70,
            height: 70,
            mark: "rect",
            encoding: {
              x: { field: "j", type: "ordinal", axis: null },
              y: { field: "i", type: "ordinal", axis: null },
              color: { field: "cos", type: "quantitative", scale: { scheme: "viridis" }, title: "cos" },
            },
          },
        },
      ],
    };
    return renderChart(spec);
  },
};
