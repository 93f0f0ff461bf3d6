/**
 * Ditto's error classes. Each carries a stable `code` that tests and the CLI match on, and a message that names
 * what was wrong and how to fix it.
 */

export type DittoErrorCode =
  | "MODEL_NOT_FOUND"
  | "MODEL_MALFORMED"
  | "MANIFEST_INVALID"
  | "MANIFEST_UNREVIEWED"
  | "GRAPH_CUT_INVALID"
  | "STRUCTURE_NOT_FOUND"
  | "INPUT_INVALID"
  | "OPTION_INVALID"
  | "UNKNOWN_POLICY"
  | "ARTIFACT_MISMATCH"
  | "ARTIFACT_INVALID"
  | "RUNTIME_FAILED";

export class DittoError extends Error {
  readonly code: DittoErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: DittoErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

/** A model file or manifest that cannot be read or does not describe a usable diffusion transformer. */
export class ModelError extends DittoError {}

/** A graph cut or structure discovery that cannot be done on this graph. */
export class GraphError extends DittoError {}

/** Bad input from the caller: tensor shapes, option values, policy names. */
export class InputError extends DittoError {}

/** A calibration artifact that is malformed or was made for another model or sampler. */
export class ArtifactError extends DittoError {}

/** Lists valid choices in a message: "a, b or c". */
export function listChoices(choices: readonly string[]): string {
  if (choices.length <= 1) return choices.join("");
  return `${choices.slice(0, -1).join(", ")} or ${choices[choices.length - 1]}`;
}
