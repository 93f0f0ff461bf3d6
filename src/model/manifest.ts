/**
 * The model manifest: what Ditto needs to know about an ONNX diffusion transformer that the graph cannot say —
 * which input is the noisy sample, the timestep and the condition, the training objective and its time convention,
 * the null class for guidance, and the image layout. Read from `manifest.json` beside the .onnx file.
 */
import { readFile, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ModelError } from "../errors.ts";

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
export const DEFAULT_MODEL_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../../models/fashion-dit");
export const DEFAULT_CLASSIFIER_DIR = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "../../models/fashion-classifier",
);

/** Accepts a model folder (holding manifest.json), a manifest.json path, or an .onnx path with a manifest beside it. */
export async function loadManifest(path: string = DEFAULT_MODEL_DIR): Promise<ResolvedManifest> {
  const full = resolve(path);
  const info = await stat(full).catch(() => null);
  if (!info) {
    throw new ModelError(
      "MODEL_NOT_FOUND",
      `model path not found: ${full}. Pass a folder with manifest.json, or an .onnx file.`,
      { path: full },
    );
  }
  const manifestPath = info.isDirectory()
    ? join(full, "manifest.json")
    : full.endsWith(".json")
      ? full
      : join(dirname(full), "manifest.json");
  const text = await readFile(manifestPath, "utf8").catch(() => null);
  if (text === null) {
    throw new ModelError(
      "MANIFEST_INVALID",
      `no manifest.json found at ${manifestPath}. Ditto needs one to know the model's inputs and objective: ` +
        `run \`ditto init-manifest ${info.isDirectory() ? join(full, "model.onnx") : full}\`, then confirm the fields it lists under needsReview.`,
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
  const onnxPath = info.isFile() && full.endsWith(".onnx") ? full : resolve(dir, manifest.onnx);
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
    const s = m.objective.schedule as DdpmSchedule;
    const kinds = ["linear", "scaled-linear", "squaredcos-cap-v2"];
    if (!s || !kinds.includes(s.betaSchedule) || !(s.trainSteps > 0)) {
      fail(
        "objective.schedule",
        'must give { betaSchedule: "linear"|"scaled-linear"|"squaredcos-cap-v2", betaStart, betaEnd, trainSteps } for an epsilon model',
      );
    }
    if (s.betaSchedule !== "squaredcos-cap-v2" && !(Number(s.betaStart) > 0 && Number(s.betaEnd) > 0)) {
      fail("objective.schedule.betaStart/betaEnd", `must be positive numbers for a ${s.betaSchedule} schedule`);
    }
    if (s.clipSample !== undefined && !(s.clipSample > 0)) fail("objective.schedule.clipSample", "must be positive");
  }
  for (const role of ["sample", "timestep"] as const) {
    if (typeof m.inputs?.[role]?.name !== "string") fail(`inputs.${role}.name`, "must name the graph input");
  }
  const kind = m.inputs.sample.kind ?? "image";
  if (kind !== "image" && kind !== "action-sequence") {
    fail("inputs.sample.kind", `must be "image" (the default) or "action-sequence" (got ${JSON.stringify(kind)})`);
  }
  const cond = m.inputs.condition;
  if (cond?.kind === "class") {
    if (!Number.isInteger(cond.numClasses) || cond.numClasses < 1)
      fail("inputs.condition.numClasses", "must be a positive integer");
    if (cond.nullClass !== undefined && !Number.isInteger(cond.nullClass))
      fail("inputs.condition.nullClass", "must be an integer");
  } else if (cond?.kind === "observation") {
    if (!Number.isInteger(cond.dim) || cond.dim < 1) fail("inputs.condition.dim", "must be a positive integer");
  } else if (cond) {
    fail(
      "inputs.condition.kind",
      `must be "class" or "observation" (got ${JSON.stringify((cond as InputSpec & { kind?: unknown }).kind)})`,
    );
  }
  if (typeof m.output?.name !== "string") fail("output.name", "must name the graph output");
  if (kind === "image") {
    const img = m.image;
    if (!img || ![img.channels, img.height, img.width].every((n) => Number.isInteger(n) && n > 0)) {
      fail("image", "must give positive integers channels, height and width");
    }
    if (!Array.isArray(img?.range) || img.range.length !== 2 || !(img.range[0] < img.range[1])) {
      fail("image.range", "must be [low, high], the sample's value range (e.g. [-1, 1])");
    }
  } else {
    const a = m.action;
    const ints = a && [a.horizon, a.dim, a.execute].every((n) => Number.isInteger(n) && n > 0);
    if (!a || !ints || !(a.scale > 0) || !Array.isArray(a.range) || !(a.range[0] < a.range[1])) {
      fail(
        "action",
        "must give { horizon, dim, range: [low, high], scale, execute } (positive integers horizon, dim, execute) for an action-sequence model",
      );
    }
  }
  if (m.structure && !(Array.isArray(m.structure.blockBoundaries) && m.structure.blockBoundaries.length >= 2)) {
    fail("structure.blockBoundaries", "must list h_0 … h_L, the tensors between blocks (at least two names)");
  }
  return { ...m, name: m.name ?? "model" };
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
