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
  betaSchedule: "linear" | "scaled-linear";
  betaStart: number;
  betaEnd: number;
  trainSteps: number;
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

export interface TimestepSpec extends InputSpec {
  /** The value fed is time × scale (e.g. 1000 for models trained on t ∈ [0, 1000]). */
  scale?: number;
}

export interface ConditionSpec extends InputSpec {
  kind: "class";
  numClasses: number;
  /** Class index meaning "no condition", used for the unconditional half of classifier-free guidance. */
  nullClass?: number;
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
  inputs: { sample: InputSpec; timestep: TimestepSpec; condition?: ConditionSpec };
  output: { name: string };
  image: { channels: number; height: number; width: number; range: [number, number] };
  classNames?: string[];
  recommended?: { sampler?: "euler" | "ddim"; steps?: number; cfgScale?: number; shift?: number };
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
