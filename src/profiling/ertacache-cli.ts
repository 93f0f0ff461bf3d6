/** `ditto profile --method ertacache`: one artifact for --set lambda=λ or --set computed=N. */
import type { ErtaCacheArtifact, PhiMode } from "../cache/policies/ertacache.ts";
import { InputError } from "../errors.ts";
import type { Pipeline } from "../pipeline.ts";
import { heatmapSpec, renderChart } from "../plot/chart.ts";
import type { ArtifactHeader } from "./artifact.ts";
import type { CalibrationOptions } from "./calibration.ts";
import { profileErtaCache } from "./ertacache.ts";

function phiMode(value: string | undefined): PhiMode | undefined {
  if (value === undefined) return undefined;
  if (value === "endpoint" || value === "notes" || value === "norm") return value;
  throw new InputError("OPTION_INVALID", `ertacache takes --set phi=endpoint|notes|norm (got '${value}')`);
}

export const ertacacheMethod = {
  summary: "offline reuse set, φ and rectification for ERTACache",
  async run(pipeline: Pipeline, options: CalibrationOptions, extra: Record<string, string | undefined>) {
    const lambda = extra.lambda !== undefined ? Number(extra.lambda) : undefined;
    const computed = extra.computed !== undefined ? Number(extra.computed) : undefined;
    if ((lambda !== undefined && !(lambda >= 0)) || (computed !== undefined && !(computed >= 1))) {
      throw new InputError("OPTION_INVALID", "ertacache takes --set lambda=λ (≥ 0) or --set computed=N (≥ 1)");
    }
    const [artifact] = await profileErtaCache(pipeline, {
      ...options,
      lambdas: lambda !== undefined ? [lambda] : computed === undefined ? [0.1] : [],
      computedSteps: computed !== undefined ? [computed] : [],
      granularity: extra.granularity === "tensor" ? "tensor" : "channel",
      phiMode: phiMode(extra.phi),
      phiMax: extra.phiMax !== undefined ? Number(extra.phiMax) : undefined,
    });
    return artifact;
  },
  summarize(a: ArtifactHeader) {
    const t = a as ErtaCacheArtifact;
    const reused = t.reuse.filter(Boolean).length;
    return `λ ${t.lambda.toPrecision(3)}: ${t.reuse.length - reused} computed, ${reused} reused steps; mean φ ${(t.phi.filter((_, i) => t.reuse[i]).reduce((x, y) => x + y, 0) / Math.max(1, reused)).toFixed(3)}`;
  },
  plot(a: ArtifactHeader) {
    const t = a as ErtaCacheArtifact;
    const logE = t.E.map((row, j) => row.map((v, i) => (i > j ? Math.log10(Math.max(v, 1e-6)) : Number.NaN)));
    return renderChart(
      heatmapSpec(
        `ERTACache reuse error log10 E[j][i] (λ ${t.lambda.toPrecision(3)})`,
        logE,
        "source step j",
        "reused step i",
        "log10 E",
      ),
    );
  },
};
