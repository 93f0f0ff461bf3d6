/**
 * The library's entry point: load a model once, then generate images with any cache policy.
 *
 *   const pipeline = await loadPipeline();             // the shipped model
 *   const result = await pipeline.generate({ classes: [0, 7], cache: taylorseer({ interval: 4 }) });
 */
import { CacheEngine, type EngineObserver, type RunReport } from "./cache/engine.ts";
import { none } from "./cache/policies/none.ts";
import type { CachePolicy } from "./cache/policy.ts";
import { parseCacheSpec } from "./cache/registry.ts";
import { InputError } from "./errors.ts";
import { classCondition, observationSpec, sampleShape } from "./model/manifest.ts";
import { checkQuantizedGrid } from "./quant/grid.ts";
import { type DiT, type LoadOptions, loadDiT } from "./runtime/dit.ts";
import { checkSampleShape } from "./runtime/model-inputs.ts";
import type { CfgMode, StepResult } from "./sampling/denoise.ts";
import { batchNoise, gaussianNoise } from "./sampling/noise.ts";
import { createSampler, type SamplerKind } from "./sampling/samplers.ts";

export interface GenerateOptions {
  /** Class of each sample (default: 0, 1, … cycling over the classes). */
  classes?: number[];
  /** Seed of each sample (default: seed, seed + 1, …). */
  seeds?: number[];
  seed?: number;
  /** Number of samples when neither classes nor seeds is given. */
  count?: number;
  steps?: number;
  cfg?: number;
  cfgMode?: CfgMode;
  shift?: number;
  sampler?: SamplerKind;
  cache?: CachePolicy | string;
  /** Samples per network batch (default 16; CFG doubles the network batch). */
  batch?: number;
  /** Initial noise to use instead of seeded noise, [N, C, H, W] (calibration and tests). */
  noise?: Float32Array;
  /** For an observation-conditioned policy: one observation per sample, [N, dim] row-major. */
  observations?: Float32Array;
  onStep?: (progress: GenerationProgress) => void;
  /** Sees every network evaluation's tensors (profiling, calibration). */
  observer?: EngineObserver;
}

export interface GenerationProgress {
  batch: number;
  batches: number;
  step: number;
  steps: number;
  result: StepResult;
}

export interface GenerationResult {
  /** Final samples in model space, [N, C, H, W] (or [N, horizon, dim] for an action-sequence policy). */
  samples: Float32Array;
  dims: number[];
  classes?: Int32Array;
  seeds: number[];
  /** Wall time of the denoising loops, model loading and session creation excluded. */
  wallMs: number;
  /** One report per batch. */
  reports: RunReport[];
}

export class Pipeline {
  readonly model: DiT;
  private readonly engines = new WeakMap<CachePolicy, Promise<CacheEngine>>();

  constructor(model: DiT) {
    this.model = model;
  }

  get manifest() {
    return this.model.manifest;
  }

  /**
   * The engine for a policy object, created once per object. Engines are cheap: the sessions they run are made
   * once per model and shared, so a policy parsed anew from the same spec string costs no new session.
   */
  engine(policy: CachePolicy): Promise<CacheEngine> {
    let e = this.engines.get(policy);
    if (!e) {
      e = CacheEngine.create(this.model, policy);
      this.engines.set(policy, e);
    }
    return e;
  }

  async generate(options: GenerateOptions = {}): Promise<GenerationResult> {
    const m = this.manifest;
    const policy = typeof options.cache === "string" ? parseCacheSpec(options.cache) : (options.cache ?? none());
    const engine = await this.engine(policy);
    const { classes, seeds } = this.resolveSamples(options);
    const n = seeds.length;
    const shape = sampleShape(m);
    const perSample = shape.reduce((a, b) => a * b, 1);
    const sampler = createSampler(m, {
      steps: options.steps ?? m.recommended?.steps ?? 50,
      shift: options.shift,
      kind: options.sampler,
    });
    // An ancestral sampler draws fresh noise every step: each sample's from its own seed, after its initial noise.
    const draws = sampler.stochastic ? seeds.map((s) => gaussianNoise(s, perSample * (sampler.steps + 1))) : undefined;
    const noise = options.noise ?? batchNoise(seeds, perSample);
    if (noise.length !== n * perSample) {
      throw new InputError(
        "INPUT_INVALID",
        `noise has ${noise.length} values; ${n} samples of [${shape.join(", ")}] need ${n * perSample}`,
      );
    }
    checkSampleShape(m, [n, ...shape]);
    const obsDim = observationSpec(m)?.dim ?? 0;
    if (obsDim > 0 && options.observations?.length !== n * obsDim) {
      throw new InputError(
        "INPUT_INVALID",
        `this policy needs one observation of ${obsDim} values per sample: ${n} samples need ${n * obsDim} values (got ${options.observations?.length ?? "none"})`,
      );
    }
    checkQuantizedGrid(m, sampler.describe);
    const cfgScale = options.cfg ?? m.recommended?.cfgScale ?? 1;
    if (!(cfgScale >= 0)) throw new InputError("OPTION_INVALID", `--cfg must be ≥ 0 (got ${cfgScale})`);
    const batchSize = options.batch ?? 16;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new InputError("OPTION_INVALID", `--batch must be a positive integer (got ${batchSize})`);
    const samples = new Float32Array(n * perSample);
    const reports: RunReport[] = [];
    const batches = Math.ceil(n / batchSize);
    let wallMs = 0;
    for (let b = 0; b < batches; b++) {
      const lo = b * batchSize;
      const hi = Math.min(n, lo + batchSize);
      const start = performance.now();
      let x: Float32Array = noise.slice(lo * perSample, hi * perSample);
      for await (const result of engine.generate(
        {
          noise: x,
          dims: [hi - lo, ...shape],
          classes: classes?.slice(lo, hi),
          observations: obsDim > 0 ? options.observations?.slice(lo * obsDim, hi * obsDim) : undefined,
          nullClass: classCondition(m)?.nullClass,
          cfgScale: classes ? cfgScale : 1,
          cfgMode: options.cfgMode,
          sampler,
          stepNoise: draws && ((step) => stepNoiseRows(draws.slice(lo, hi), perSample, step + 1)),
        },
        options.observer && ((event) => options.observer?.({ ...event, batch: b })),
      )) {
        x = result.x;
        options.onStep?.({ batch: b, batches, step: result.step, steps: sampler.steps, result });
      }
      wallMs += performance.now() - start;
      samples.set(x, lo * perSample);
      reports.push(engine.report());
    }
    return { samples, dims: [n, ...shape], classes, seeds, wallMs, reports };
  }

  async release(): Promise<void> {
    await this.model.release();
  }

  private resolveSamples(options: GenerateOptions): { classes?: Int32Array; seeds: number[] } {
    const cond = classCondition(this.manifest);
    const base = options.seed ?? 0;
    const obsDim = observationSpec(this.manifest)?.dim;
    const fromObservations = obsDim && options.observations ? options.observations.length / obsDim : undefined;
    let n =
      options.classes?.length ?? options.seeds?.length ?? options.count ?? cond?.numClasses ?? fromObservations ?? 1;
    if (options.classes && options.seeds && options.classes.length !== options.seeds.length) {
      throw new InputError(
        "OPTION_INVALID",
        `classes (${options.classes.length}) and seeds (${options.seeds.length}) give one entry per sample and must have the same length`,
      );
    }
    if (!Number.isInteger(n) || n < 1)
      throw new InputError("OPTION_INVALID", `the number of samples must be a positive integer (got ${n})`);
    n = Math.floor(n);
    const seeds = options.seeds ?? Array.from({ length: n }, (_, i) => base + i);
    if (!cond) {
      if (options.classes)
        throw new InputError("OPTION_INVALID", "this model has no class input, so --classes cannot be used");
      return { seeds };
    }
    const classes = options.classes ?? Array.from({ length: n }, (_, i) => i % cond.numClasses);
    return { classes: this.checkClasses(classes), seeds };
  }

  private checkClasses(classes: number[]): Int32Array {
    const cond = classCondition(this.manifest);
    const numClasses = cond?.numClasses ?? 0;
    for (const k of classes) {
      if (!Number.isInteger(k) || k < 0 || k >= numClasses) {
        const names = this.manifest.classNames
          ? ` (${this.manifest.classNames.map((name, i) => `${i} ${name}`).join(", ")})`
          : "";
        throw new InputError(
          "OPTION_INVALID",
          `class ${k} is out of range: this model has classes 0–${numClasses - 1}${names}`,
        );
      }
    }
    return Int32Array.from(classes);
  }
}

export async function loadPipeline(path?: string, options: LoadOptions = {}): Promise<Pipeline> {
  return new Pipeline(await loadDiT(path, options));
}

/** Rows `index` (of perSample values each) of every sample's noise draw, as one batch. */
function stepNoiseRows(draws: Float32Array[], perSample: number, index: number): Float32Array {
  const out = new Float32Array(draws.length * perSample);
  draws.forEach((d, k) => {
    out.set(d.subarray(index * perSample, (index + 1) * perSample), k * perSample);
  });
  return out;
}
