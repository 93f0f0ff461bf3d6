/** `ditto rollout`: closed-loop task success of a diffusion policy, with a cache policy against uncached. */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { jsonWithInfinity } from "../bench/report.ts";
import { trajectorySpec } from "../control/plot.ts";
import { type RolloutResult, rollout } from "../control/rollout.ts";
import { InputError } from "../errors.ts";
import { loadPipeline } from "../pipeline.ts";
import { renderChart } from "../plot/chart.ts";
import type { SamplerKind } from "../sampling/samplers.ts";
import { parseNumber } from "./args.ts";
import { MODEL_HELP, MODEL_OPTIONS, sessionOptions } from "./common.ts";
import { Progress } from "./progress.ts";

const HELP = `Usage: ditto rollout --model models/reach-policy [options]

Runs the policy closed-loop on a seeded episode set (all episodes batched; re-plan every 'execute' steps) and
reports success / collision / time-out rates with 95 % Wilson intervals. With a cache policy, the uncached chunk
is sampled too from the same state and noise: action MSE and measured speedup side by side.

  --episodes N       evaluation episodes (default 200)
  --cache SPEC       cache policy, e.g. fora:interval=3 or bac:schedule=FILE.json (default none)
  --sampler KIND     ddpm or ddim (default: the manifest's)
  --steps N          denoising steps (default: the manifest's)
  --seed N           noise seed (default 0)
  --episode-seed N   episode-set seed (default: the manifest's task.evalSeed)
  --compare-every N  sample the uncached reference on every N-th re-plan only, from the first (default 1)
  --json             print the result as JSON (outcomes without paths)
  --plot FILE.png    trajectories of the first 30 episodes
${MODEL_HELP}
`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...MODEL_OPTIONS,
      episodes: { type: "string" },
      cache: { type: "string" },
      sampler: { type: "string" },
      steps: { type: "string" },
      seed: { type: "string" },
      "episode-seed": { type: "string" },
      "compare-every": { type: "string" },
      json: { type: "boolean", default: false },
      plot: { type: "string" },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (!values.model) {
    throw new InputError("OPTION_INVALID", "--model is required: a diffusion policy folder, e.g. models/reach-policy");
  }
  const sampler = values.sampler;
  if (sampler !== undefined && sampler !== "ddpm" && sampler !== "ddim") {
    throw new InputError("OPTION_INVALID", `--sampler must be ddpm or ddim (got '${sampler}')`);
  }
  const episodes = parseNumber("episodes", values.episodes ?? "200", true) as number;
  const pipeline = await loadPipeline(values.model, { session: sessionOptions(values) });
  const bar = new Progress("rollout", episodes, !values.quiet);
  const result = await rollout(pipeline, {
    episodes,
    cache: values.cache ?? "none",
    sampler: sampler as SamplerKind | undefined,
    steps: parseNumber("steps", values.steps, true),
    seed: parseNumber("seed", values.seed, true),
    episodeSeed: parseNumber("episode-seed", values["episode-seed"], true),
    compareEvery: parseNumber("compare-every", values["compare-every"], true),
    onReplan: (p) => bar.update(p.finished, `re-plan ${p.replan}, ${p.live} running`),
  });
  bar.update(episodes);
  if (values.plot) writeFileSync(resolve(values.plot), await renderChart(trajectorySpec(result)));
  if (values.json) process.stdout.write(`${jsonWithInfinity(summary(result))}\n`);
  else process.stdout.write(text(result));
  await pipeline.release();
}

/** The JSON report: everything but the paths (per-episode status and steps kept). */
export function summary(r: RolloutResult) {
  const round = (v: number | null, d = 4) => (v === null ? null : Math.round(v * 10 ** d) / 10 ** d);
  const rate = (x: RolloutResult["success"]) => ({
    rate: x.rate,
    count: x.count,
    interval95: [round(x.interval[0]), round(x.interval[1])],
  });
  return {
    policy: r.policy,
    sampler: r.sampler,
    episodes: r.episodes,
    episodeSeed: r.episodeSeed,
    seed: r.seed,
    success: rate(r.success),
    collision: rate(r.collision),
    timeout: rate(r.timeout),
    replans: r.replans,
    chunks: r.chunks,
    comparedChunks: r.comparedChunks,
    actionMse: r.actionMse === null ? null : Number(r.actionMse.toPrecision(4)),
    msPerChunk: round(r.msPerChunk),
    msPerReplan: round(r.msPerReplan, 2),
    uncachedMsPerChunk: round(r.uncachedMsPerChunk),
    measuredSpeedup: round(r.measuredSpeedup, 3),
    idealSpeedup: round(r.idealSpeedup, 3),
    computedFraction: round(r.computedFraction),
    outcomes: r.outcomes.map((o) => ({ index: o.index, status: o.status, steps: o.steps })),
  };
}

function text(r: RolloutResult): string {
  const pct = (v: number) => `${(v * 100).toFixed(1)} %`;
  const rate = (x: RolloutResult["success"]) => `${pct(x.rate)} [${pct(x.interval[0])}, ${pct(x.interval[1])}]`;
  const lines = [
    `${r.policy} · ${r.sampler.kind}-${r.sampler.steps} · ${r.episodes} episodes (seed ${r.episodeSeed}), noise seed ${r.seed}`,
    `success   ${rate(r.success)}`,
    `collision ${rate(r.collision)}`,
    `time-out  ${rate(r.timeout)}`,
    `${r.replans} re-plans, ${r.chunks} chunks; ${r.msPerChunk.toFixed(3)} ms per chunk (${r.msPerReplan.toFixed(1)} ms per batched re-plan)`,
  ];
  if (r.measuredSpeedup !== null) {
    lines.push(
      `vs uncached from the same states and noise (${r.comparedChunks} chunks): action MSE ${r.actionMse?.toExponential(3)}, measured speedup ${r.measuredSpeedup.toFixed(2)}×, ideal ${r.idealSpeedup.toFixed(2)}× (${pct(r.computedFraction)} of units computed)`,
    );
  }
  return `${lines.join("\n")}\n`;
}
