/**
 * The model manifest: what Ditto needs to know about an ONNX diffusion transformer that the graph cannot say —
 * which input is the noisy sample, the timestep and the condition, the training objective and its time convention,
 * the null class for guidance, and the image layout. Read from `manifest.json` beside the .onnx file.
 */
import { ModelError } from "../errors.ts";
import { platform, shippedModelDir } from "../platform.ts";
import { manifestSchema } from "../schema/manifest.ts";
import { parseWithSchema } from "../schema/parse.ts";

export type ObjectiveKind = "flow-velocity" | "epsilon";

export interface DdpmSchedule {
  /** β linear in t, √β linear in t, or the cosine ᾱ of Nichol & Dhariwal (2021) with β capped at 0.999. */
  betaSchedule: "linear" | "scaled-linear" | "squaredcos-cap-v2";
  /** β at the first and last train step (linear and scaled-linear only). */
  betaStart?: number;
  betaEnd?: number;
  trainSteps: number;
  /** Clip the x̂0 estimate to [−c, c] in every update (diffusers' clip_sample); absent = no clipping. */
  clipSample?: number;
}

export interface Objective {
  kind: ObjectiveKind;
  description?: string;
  /** flow-velocity: model time of pure noise and of clean data (default 1 and 0). */
  timeAtNoise?: number;
  timeAtData?: number;
  /** epsilon: the DDPM noise schedule the model was trained with; the timestep input is the train-step index. */
  schedule?: DdpmSchedule;
}

export interface InputSpec {
  name: string;
  dtype?: string;
  shape?: (number | string)[];
}

/** What the noisy sample is: an image [B, C, H, W] (the default) or an action chunk [B, horizon, dim]. */
export type SampleKind = "image" | "action-sequence";

export interface SampleSpec extends InputSpec {
  kind?: SampleKind;
}

export interface TimestepSpec extends InputSpec {
  /** The value fed is time × scale (e.g. 1000 for models trained on t ∈ [0, 1000]). */
  scale?: number;
}

/** A class label, [B] integers. */
export interface ClassConditionSpec extends InputSpec {
  kind: "class";
  numClasses: number;
  /** Class index meaning "no condition", used for the unconditional half of classifier-free guidance. */
  nullClass?: number;
}

/** A continuous observation vector, [B, dim] float32 (a diffusion policy's state). */
export interface ObservationConditionSpec extends InputSpec {
  kind: "observation";
  dim: number;
  /** Optional names of the vector's entries, for reports. */
  fields?: string[];
}

export type ConditionSpec = ClassConditionSpec | ObservationConditionSpec;

/** The action chunk of an action-sequence model: x is [B, horizon, dim] in `range`; one unit is `scale` in the world. */
export interface ActionSpec {
  horizon: number;
  dim: number;
  range: [number, number];
  scale: number;
  /** Actions executed from each chunk before re-planning. */
  execute: number;
}

/** Names the cut tensors for a graph that structure discovery cannot read (see README, "Bring your own model"). */
export interface StructureOverride {
  /** h_0 … h_L: the hidden state entering each block, then the last block's output. */
  blockBoundaries: string[];
}

export interface ModelManifest {
  format?: string;
  name: string;
  description?: string;
  onnx: string;
  objective: Objective;
  inputs: { sample: SampleSpec; timestep: TimestepSpec; condition?: ConditionSpec };
  output: { name: string };
  /** The image layout; required unless inputs.sample.kind is "action-sequence". */
  image?: ImageSpec;
  /** The action layout; required when inputs.sample.kind is "action-sequence". */
  action?: ActionSpec;
  classNames?: string[];
  recommended?: { sampler?: "euler" | "ddim" | "ddpm"; steps?: number; cfgScale?: number; shift?: number };
  structure?: StructureOverride;
  /**
   * The classifier that judges this model's samples (accuracy, FD, KID): a folder, relative to the manifest, holding
   * the classifier's ONNX and manifest.json (input [batch, C, H, W] and range, classes). Without one, bench reports
   * only the reference-based metrics (PSNR, SSIM, NLPD) and says the classifier columns are not available.
   */
  evaluation?: { classifier: string };
  /** Fields `ditto init-manifest` guessed and a person must confirm. */
  needsReview?: string[];
  [extra: string]: unknown;
}

export interface ImageSpec {
  channels: number;
  height: number;
  width: number;
  range: [number, number];
}

export interface ResolvedManifest extends ModelManifest {
  /** Absolute paths. */
  dir: string;
  onnxPath: string;
}

/** The shipped default model, `models/fashion-dit` in this package. */
export const DEFAULT_MODEL_DIR = shippedModelDir("fashion-dit");
export const DEFAULT_CLASSIFIER_DIR = shippedModelDir("fashion-classifier");

/** Accepts a model folder (holding manifest.json), a manifest.json path, or an .onnx path with a manifest beside it. */
export async function loadManifest(path: string = DEFAULT_MODEL_DIR): Promise<ResolvedManifest> {
  const { resolve, join, dirname, kind, readText } = platform();
  const full = resolve(path);
  const info = await kind(full);
  if (!info) {
    throw new ModelError(
      "MODEL_NOT_FOUND",
      `model path not found: ${full}. Pass a folder with manifest.json, or an .onnx file.`,
      { path: full },
    );
  }
  const manifestPath =
    info === "directory"
      ? join(full, "manifest.json")
      : full.endsWith(".json")
        ? full
        : join(dirname(full), "manifest.json");
  const text = await readText(manifestPath).catch(() => null);
  if (text === null) {
    throw new ModelError(
      "MANIFEST_INVALID",
      `no manifest.json found at ${manifestPath}. Ditto needs one to know the model's inputs and objective: ` +
        `run \`ditto init-manifest ${info === "directory" ? join(full, "model.onnx") : full}\`, then confirm the fields it lists under needsReview.`,
      { path: manifestPath },
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ModelError("MANIFEST_INVALID", `${manifestPath} is not valid JSON: ${(err as Error).message}`, {
      path: manifestPath,
    });
  }
  const manifest = validateManifest(raw, manifestPath);
  const dir = dirname(manifestPath);
  const onnxPath = info === "file" && full.endsWith(".onnx") ? full : resolve(dir, manifest.onnx);
  return { ...manifest, dir, onnxPath };
}

/** Checks a parsed manifest against its schema (src/schema/manifest.ts); `source` names the file in errors. */
export function validateManifest(raw: unknown, source: string): ModelManifest {
  return parseWithSchema(manifestSchema, raw, {
    source,
    code: "MANIFEST_INVALID",
    error: ModelError,
    fix: 'See README, "Bring your own ONNX DiT", for each field; `ditto init-manifest MODEL.onnx` writes a starting point.',
  }) as ModelManifest;
}

/**
 * Refuses a manifest that still lists guesses under `needsReview` (from `ditto init-manifest`): running unchecked
 * guesses (a wrong objective or time convention) gives noise without any error. `acceptGuesses` runs it anyway;
 * the fields still unchecked are returned so the caller can warn.
 */
export function checkReviewed(manifest: ModelManifest, source: string, acceptGuesses = false): string[] {
  const fields = manifest.needsReview ?? [];
  if (fields.length === 0 || acceptGuesses) return fields;
  throw new ModelError(
    "MANIFEST_UNREVIEWED",
    `${source} still lists guessed fields under "needsReview": ${fields.join(", ")}. Check each against how the ` +
      'model was trained (README, "Bring your own ONNX DiT"), then delete "needsReview" from the manifest; or pass ' +
      "--accept-guesses to run with the guesses as they are.",
    { path: source, needsReview: fields },
  );
}

/** The evaluation classifier's folder, resolved against the manifest's; undefined when the manifest names none. */
export function evaluationClassifierDir(manifest: ResolvedManifest): string | undefined {
  const dir = manifest.evaluation?.classifier;
  return dir ? platform().resolve(manifest.dir, dir) : undefined;
}

/** The per-item shape of the sample: [C, H, W] for images, [horizon, dim] for action chunks. */
export function sampleShape(m: ModelManifest): number[] {
  if (m.inputs.sample.kind === "action-sequence" && m.action) return [m.action.horizon, m.action.dim];
  const img = requireImage(m, "this model");
  return [img.channels, img.height, img.width];
}

/** The image layout, or a clear error when a command that makes images is given an action-sequence policy. */
export function requireImage(m: ModelManifest, what: string): ImageSpec {
  if (!m.image || (m.inputs.sample.kind ?? "image") !== "image") {
    throw new ModelError(
      "MANIFEST_INVALID",
      `${what} needs an image model, but ${m.name} is an ${m.inputs.sample.kind} model (use \`ditto rollout\` for policies)`,
      { field: "inputs.sample.kind" },
    );
  }
  return m.image;
}

/** The observation condition of a policy, or undefined for class-conditional / unconditional models. */
export function observationSpec(m: ModelManifest): ObservationConditionSpec | undefined {
  const c = m.inputs.condition;
  return c?.kind === "observation" ? c : undefined;
}

/** The class condition of a class-conditional model, or undefined (unconditional, or an observation policy). */
export function classCondition(m: ModelManifest): ClassConditionSpec | undefined {
  const c = m.inputs.condition;
  return c?.kind === "class" ? c : undefined;
}
