/** `ditto profile --method harmonica|l2c`: fit a cache router table gradient-free. */
import type { TopLevelSpec } from "vega-lite";
import type { Pipeline } from "../pipeline.ts";
import { renderChart } from "../plot/chart.ts";
import type { ArtifactHeader } from "./artifact.ts";
import type { CalibrationOptions } from "./calibration.ts";
import { profileRouter, type RouterArtifact } from "./harmonica.ts";

function routerMethod(mode: "harmonica" | "l2c") {
  return {
    summary:
      mode === "harmonica"
        ? "HarmoniCa router (SDT + IEPO), fitted gradient-free"
        : "Learning-to-Cache router, fitted gradient-free",
    run(pipeline: Pipeline, options: CalibrationOptions, extra: Record<string, string | undefined>) {
      const num = (k: string) => (extra[k] !== undefined ? Number(extra[k]) : undefined);
      return profileRouter(pipeline, {
        ...options,
        mode,
        beta: num("beta"),
        rho: num("rho"),
        rounds: num("rounds"),
        lambdaChunk: num("chunk"),
        warm: extra.warm,
        weights: extra.weights === "equal" ? "equal" : "flops",
        optimizer: extra.optimizer === "cem" ? "cem" : undefined,
        population: num("population"),
        iterations: num("iterations"),
        init: extra.init,
      });
    },
    summarize(a: ArtifactHeader) {
      const t = a as RouterArtifact;
      return `${t.kind}: computed fraction ${(t.cost.computedFraction * 100).toFixed(1)} % (β ${t.beta.toPrecision(3)}), ${t.cost.forwards} forward-equivalents`;
    },
    plot(a: ArtifactHeader) {
      const t = a as RouterArtifact;
      const cells = t.m.flatMap((row, s) =>
        row.map((v, u) => ({ step: s, unit: `${String(u).padStart(2, "0")} ${t.units[u].kind}`, computed: v })),
      );
      const spec: TopLevelSpec = {
        $schema: "https://vega.github.io/schema/vega-lite/v6.json",
        title: `${t.kind} router table m[s][u] (computed ${(t.cost.computedFraction * 100).toFixed(1)} %)`,
        data: { values: cells },
        width: 640,
        height: 360,
        mark: "rect",
        encoding: {
          x: { field: "step", type: "ordinal" },
          y: { field: "unit", type: "ordinal", sort: null },
          color: { field: "computed", type: "nominal", scale: { range: ["#eeeeee", "#2c7fb8"] } },
        },
      };
      return renderChart(spec);
    },
  };
}

export const harmonicaMethod = routerMethod("harmonica");
export const l2cMethod = routerMethod("l2c");
