/**
 * Trajectory plot of a rollout: one small panel per episode with the obstacle (disc outline), start, goal and the
 * executed path coloured by outcome; a title with the success rate. A Vega-Lite spec (rendered by plot/chart.ts).
 */
import type { TopLevelSpec } from "vega-lite";
import type { RolloutResult } from "./rollout.ts";

const OUTCOME_COLOURS = { domain: ["success", "collision", "timeout"], range: ["#2c7fb8", "#d7301f", "#fe9929"] };

export function trajectorySpec(result: RolloutResult, maxPanels = 30): TopLevelSpec {
  const shown = result.outcomes.slice(0, maxPanels);
  const rows: Record<string, number | string>[] = [];
  for (const o of shown) {
    const panel = `#${String(o.index).padStart(3, "0")} ${o.status}`;
    const { center, radius, start, goal } = o.episode;
    for (let k = 0; k <= 48; k++) {
      const a = (2 * Math.PI * k) / 48;
      rows.push({
        panel,
        layer: "obstacle",
        order: k,
        x: center[0] + radius * Math.cos(a),
        y: center[1] + radius * Math.sin(a),
      });
    }
    o.path.forEach(([x, y], k) => {
      rows.push({ panel, layer: o.status, order: k, x, y });
    });
    rows.push({ panel, layer: "start", x: start[0], y: start[1] });
    rows.push({ panel, layer: "goal", x: goal[0], y: goal[1] });
  }
  const s = result.success;
  const pct = (v: number) => `${(v * 100).toFixed(1)} %`;
  const axis = (field: string) => ({ field, type: "quantitative" as const, scale: { domain: [-1, 1] }, axis: null });
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: `${result.policy} · ${result.sampler.kind}-${result.sampler.steps} · success ${pct(s.rate)} [${pct(s.interval[0])}, ${pct(s.interval[1])}] of ${result.episodes} episodes`,
      subtitle: `first ${shown.length} episodes; blue success, red collision, orange time-out; grey disc = obstacle; square start, cross goal`,
    },
    data: { values: rows },
    facet: { field: "panel", type: "ordinal", sort: null, title: null, header: { labelFontSize: 9 } },
    columns: 6,
    spec: {
      width: 110,
      height: 110,
      layer: [
        {
          transform: [{ filter: "datum.layer === 'obstacle'" }],
          mark: { type: "line", color: "#888888", strokeWidth: 1.5 },
          encoding: { x: axis("x"), y: axis("y"), order: { field: "order" } },
        },
        {
          transform: [{ filter: "datum.layer !== 'obstacle' && datum.layer !== 'start' && datum.layer !== 'goal'" }],
          mark: { type: "line", strokeWidth: 1.5 },
          encoding: {
            x: axis("x"),
            y: axis("y"),
            order: { field: "order" },
            color: { field: "layer", type: "nominal", scale: OUTCOME_COLOURS, legend: null },
          },
        },
        {
          transform: [{ filter: "datum.layer === 'start' || datum.layer === 'goal'" }],
          mark: { type: "point", filled: true, size: 30 },
          encoding: {
            x: axis("x"),
            y: axis("y"),
            shape: {
              field: "layer",
              type: "nominal",
              scale: { domain: ["start", "goal"], range: ["square", "cross"] },
              legend: null,
            },
            color: { value: "#333333" },
          },
        },
      ],
    },
  } as TopLevelSpec;
}
