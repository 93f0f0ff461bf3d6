/** `ditto profile --method profilingdit`: the block split and its heat map. */
import type { ProfilingDitArtifact } from "../cache/policies/profilingdit.ts";
import type { Pipeline } from "../pipeline.ts";
import { heatmapSpec, renderChart } from "../plot/chart.ts";
import type { ArtifactHeader } from "./artifact.ts";
import type { CalibrationOptions } from "./calibration.ts";
import { type MaskSource, profileProfilingDit } from "./profilingdit.ts";

export const profilingditMethod = {
  summary: "split blocks into foreground- and background-focused by attention profiling",
  run(pipeline: Pipeline, options: CalibrationOptions, extra: Record<string, string | undefined>) {
    return profileProfilingDit(pipeline, {
      ...options,
      maskSource: (extra.mask as MaskSource | undefined) ?? "intensity",
      cachedBlocks: extra.cached !== undefined ? Number(extra.cached) : undefined,
      s0: extra.s0 !== undefined ? Number(extra.s0) : undefined,
    });
  },
  summarize(a: ArtifactHeader) {
    const t = a as ProfilingDitArtifact;
    return `cached (background) blocks [${t.blocks.cached.join(", ")}], computed [${t.blocks.computed.join(", ")}]; R = [${t.profile.R.map((r) => r.toFixed(2)).join(", ")}]; compute steps ${t.computeSteps.join(",")}`;
  },
  plot(a: ArtifactHeader) {
    const t = a as ProfilingDitArtifact;
    const blocksBySteps = t.profile.R.map((_, b) => t.profile.heat.map((row) => row[b]));
    return renderChart(
      heatmapSpec(
        "ProfilingDiT: foreground ratio R of each block's high-attention tokens",
        blocksBySteps,
        "block",
        "step",
        "R",
      ),
    );
  },
};
