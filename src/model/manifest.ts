/**
 * The model manifest: what Ditto needs to know about an ONNX diffusion transformer that the graph cannot say —
 * which input is the noisy sample, the timestep and the condition, the training objective and its time convention,
 * the null class for guidance, and the image layout. Read from `manifest.json` beside the .onnx file.
 */
import { ModelError } from "../errors.ts";
import { platform, shippedModelDir } from "../platform.ts";

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

export function validateManifest(raw: unknown, source: string): ModelManifest {
  const fail = (field: string, what: string): never => {
    throw new ModelError("MANIFEST_INVALID", `${source}: ${field} ${what} (see README, "Bring your own model").`, {
      path: source,
      field,
    });
  };
  if (typeof raw !== "object" || raw === null) return fail("the manifest", "must be a JSON object");
  const m = raw as ModelManifest;
  if (typeof m.onnx !== "string") fail("onnx", "must name the .onnx file, relative to the manifest");
  if (!m.objective || !["flow-velocity", "epsilon"].includes(m.objective.kind)) {
    fail("objective.kind", `must be "flow-velocity" or "epsilon" (got ${JSON.stringify(m.objective?.kind)})`);
  }
  if (m.objective.kind === "epsilon") {
    const s = m.objective.schedule;
    if (!s || !["linear", "scaled-linear"].includes(s.betaSchedule) || !(s.trainSteps > 0)) {
      fail(
        "objective.schedule",
        'must give { betaSchedule: "linear"|"scaled-linear", betaStart, betaEnd, trainSteps } for an epsilon model',
      );
    }
  }
  for (const role of ["sample", "timestep"] as const) {
    if (typeof m.inputs?.[role]?.name !== "string") fail(`inputs.${role}.name`, "must name the graph input");
  }
  const cond = m.inputs.condition;
  if (cond) {
    if (cond.kind !== "class")
      fail("inputs.condition.kind", 'must be "class" (the only condition kind supported today)');
    if (!Number.isInteger(cond.numClasses) || cond.numClasses < 1)
      fail("inputs.condition.numClasses", "must be a positive integer");
    if (cond.nullClass !== undefined && !Number.isInteger(cond.nullClass))
      fail("inputs.condition.nullClass", "must be an integer");
  }
  if (typeof m.output?.name !== "string") fail("output.name", "must name the graph output");
  const img = m.image;
  if (!img || ![img.channels, img.height, img.width].every((n) => Number.isInteger(n) && n > 0)) {
    fail("image", "must give positive integers channels, height and width");
  }
  if (!Array.isArray(img.range) || img.range.length !== 2 || !(img.range[0] < img.range[1])) {
    fail("image.range", "must be [low, high], the sample's value range (e.g. [-1, 1])");
  }
  if (m.structure && !(Array.isArray(m.structure.blockBoundaries) && m.structure.blockBoundaries.length >= 2)) {
    fail("structure.blockBoundaries", "must list h_0 … h_L, the tensors between blocks (at least two names)");
  }
  return { ...m, name: m.name ?? "model" };
}
