/**
 * Where cut graphs are kept between runs, so a start does not decode, cut and re-encode the model again. The
 * interface holds no file-system code (a browser build can keep entries in IndexedDB); the Node implementation is
 * node/graph-cache.ts. Entries are immutable: a key names the model (SHA-256), the Ditto build and the
 * exact cut, so a changed model, plan or Ditto never reads a stale entry.
 */

export interface GraphStore {
  /** Where entries live, for messages (a folder, a database name). */
  readonly location: string;
  /** The entry for a key, or undefined when there is none (or it cannot be read). */
  read(model: string, key: string): Promise<Uint8Array | undefined>;
  /** Keeps an entry; never throws (a store that cannot write says so once and carries on uncached). */
  write(model: string, key: string, bytes: Uint8Array): Promise<void>;
  /**
   * Where the runtime may save its optimized graph for a key (Node: a file the backend writes). Absent for stores
   * that cannot hand out file paths.
   */
  optimizedModel?(model: string, key: string): OptimizedModelSlot | undefined;
}

/** A place for one runtime-optimized graph: read it when `bytes` is set; else save to `savePath`, then `commit`. */
export interface OptimizedModelSlot {
  bytes?: Uint8Array;
  savePath: string;
  commit(): Promise<void>;
}

/** An entry: a JSON header and a binary body (a cut graph), or a header alone. */
export function packEntry(header: unknown, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + json.length + body.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 4);
  out.set(body, 4 + json.length);
  return out;
}

export function unpackEntry<T>(bytes: Uint8Array): { header: T; body: Uint8Array } | undefined {
  if (bytes.length < 4) return undefined;
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  if (4 + length > bytes.length) return undefined;
  try {
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + length))) as T;
    return { header, body: bytes.subarray(4 + length) };
  } catch {
    return undefined;
  }
}

/** Start-up costs of one loaded model, in milliseconds (printed by `--verbose`). */
export interface StartupTimings {
  /** Reading, decoding and hashing the .onnx file, finding the structure. */
  loadMs: number;
  /** Probe runs of the whole model for boundary tensor types (0 when cached). */
  probeMs: number;
  /** Cutting, fusing and encoding sub-models, or reading them from the graph cache. */
  cutMs: number;
  /** ONNX Runtime session creation (parsing, optimizing, weight pre-packing). */
  sessionMs: number;
  sessions: number;
  cacheHits: number;
  cacheMisses: number;
}

export function emptyTimings(): StartupTimings {
  return { loadMs: 0, probeMs: 0, cutMs: 0, sessionMs: 0, sessions: 0, cacheHits: 0, cacheMisses: 0 };
}
