/**
 * What the library needs from its host: reading files (models, manifests, artifacts), hashing, path arithmetic,
 * the default ONNX Runtime backend and where the shipped models live. The core never imports `node:*` modules;
 * under Node the platform in `node/platform.ts` is installed on first import, and a browser build installs its
 * own (fetch + onnxruntime-web) with `setPlatform`. Bundlers skip the Node module through package.json "browser".
 */
import { DittoError } from "./errors.ts";
import type { Backend } from "./runtime/backend.ts";
import type { GraphStore } from "./runtime/graph-store.ts";

export type PathKind = "file" | "directory";

export interface Platform {
  name: string;
  /** The backend sessions run on when the caller names none. */
  backend: Backend;
  /** The folder holding the shipped models (`models/` in the package). */
  modelsDir: string;
  kind(path: string): Promise<PathKind | undefined>;
  readBytes(path: string): Promise<Uint8Array>;
  readText(path: string): Promise<string>;
  /** Synchronous read, for calibration artifacts named in a cache spec (policies are built synchronously). */
  readTextSync(path: string): string;
  writeTextSync(path: string, text: string): void;
  sha256(bytes: Uint8Array): Promise<string>;
  /** Where cut graphs are kept between runs when the caller names no store; none on hosts without one. */
  graphStore?(): GraphStore;
  resolve(...parts: string[]): string;
  join(...parts: string[]): string;
  dirname(path: string): string;
  basename(path: string): string;
}

const isNode = typeof process !== "undefined" && typeof process.versions?.node === "string";
let current: Platform | undefined = isNode ? (await import("./node/platform.ts")).nodePlatform : undefined;

/** Installs the host platform (a browser build calls this once before loading a model). */
export function setPlatform(next: Platform): void {
  current = next;
}

export function platform(): Platform {
  if (!current) {
    throw new DittoError(
      "RUNTIME_FAILED",
      "no platform installed: outside Node, call setPlatform() with file access and an ONNX Runtime backend " +
        "before loading models or artifacts (or pass the artifact object instead of a path).",
    );
  }
  return current;
}

/** The shipped model `name` (e.g. "fashion-dit"); a relative path when no platform is installed yet. */
export function shippedModelDir(name: string): string {
  return current ? current.join(current.modelsDir, name) : `models/${name}`;
}
