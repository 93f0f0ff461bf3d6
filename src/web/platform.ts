/**
 * The browser platform: files are URLs on the page's origin (fetched, and cached by the browser's HTTP cache
 * through the server's ETag), hashing is WebCrypto, paths are URL paths, and the backend is onnxruntime-web.
 *
 * Policies read calibration artifacts synchronously (they are built synchronously from a spec string), which a
 * browser cannot do over the network. So the page loads an artifact first — from a file the user picked or a URL —
 * with `registerFile`, and `readTextSync` serves it from memory under the name used in the spec.
 */
import { DittoError } from "../errors.ts";
import type { PathKind, Platform } from "../platform.ts";
import type { Backend } from "../runtime/backend.ts";

export interface WebPlatformOptions {
  backend: Backend;
  /** URL (absolute, or relative to the page) of the folder holding the shipped models. Default "models/". */
  modelsUrl?: string;
  /** Reports download progress of large files (the model), for a progress bar. */
  onDownload?: (url: string, loaded: number, total: number | undefined) => void;
}

const files = new Map<string, string>();

/** Makes `text` readable under `name` (e.g. "picked:bac.json" or a URL) by readText and readTextSync. */
export function registerFile(name: string, text: string): void {
  files.set(name, text);
}

/** Fetches a text file from a URL and registers it under that URL; returns the name to put in a cache spec. */
export async function registerUrl(url: string): Promise<string> {
  const absolute = new URL(url, baseUrl()).href;
  const response = await fetch(absolute).catch((err: Error) => {
    throw new DittoError("ARTIFACT_INVALID", `could not fetch ${absolute}: ${err.message}`);
  });
  if (!response.ok)
    throw new DittoError(
      "ARTIFACT_INVALID",
      `could not fetch ${absolute}: HTTP ${response.status} ${response.statusText}`,
    );
  registerFile(absolute, await response.text());
  return absolute;
}

function baseUrl(): string {
  return typeof location !== "undefined" ? location.href : "http://localhost/";
}

export function webPlatform(options: WebPlatformOptions): Platform {
  const resolve = (...parts: string[]) => {
    let url = baseUrl();
    for (const part of parts) url = new URL(part, url.endsWith("/") ? url : `${url}/`).href;
    return url.replace(/\/$/, "");
  };
  const hasExtension = (url: string) => /\.[A-Za-z0-9]+$/.test(new URL(url, baseUrl()).pathname);
  const exists = async (url: string) => {
    const response = await fetch(url, { method: "HEAD" }).catch(() => undefined);
    return response?.ok === true;
  };
  return {
    name: "browser",
    backend: options.backend,
    modelsDir: resolve(options.modelsUrl ?? "models"),
    async kind(path): Promise<PathKind | undefined> {
      if (files.has(path)) return "file";
      // A URL names a folder when it has no file extension (models/fashion-dit); it exists if its manifest does.
      if (!hasExtension(path))
        return (await exists(`${path.replace(/\/$/, "")}/manifest.json`)) ? "directory" : undefined;
      return (await exists(path)) ? "file" : undefined;
    },
    readBytes: (path) => download(path, options.onDownload),
    async readText(path) {
      const known = files.get(path);
      if (known !== undefined) return known;
      return new TextDecoder().decode(await download(path));
    },
    readTextSync(path) {
      const known = files.get(path);
      if (known === undefined) {
        throw new DittoError(
          "ARTIFACT_INVALID",
          `${path} has not been loaded: in the browser, pick the artifact file or give its URL so the page can load it before the run`,
        );
      }
      return known;
    },
    writeTextSync(path) {
      throw new DittoError("RUNTIME_FAILED", `cannot write ${path} from a browser; run \`ditto profile\` under Node`);
    },
    async sha256(bytes) {
      const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
      return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    },
    resolve,
    join: (...parts) => parts.map((p, i) => (i === 0 ? p.replace(/\/+$/, "") : p.replace(/^\/+|\/+$/g, ""))).join("/"),
    dirname: (path) => path.replace(/\/+$/, "").replace(/\/[^/]*$/, "") || "/",
    basename: (path) => path.replace(/\/+$/, "").split("/").pop() ?? path,
  };
}

/** GET with a clear error, streaming so a progress bar can follow large files. */
async function download(url: string, onProgress?: WebPlatformOptions["onDownload"]): Promise<Uint8Array> {
  const response = await fetch(url).catch((err: Error) => {
    throw new DittoError("MODEL_NOT_FOUND", `could not fetch ${url}: ${err.message}. Is the Ditto server running?`);
  });
  if (!response.ok) {
    throw new DittoError(
      "MODEL_NOT_FOUND",
      `could not fetch ${url}: HTTP ${response.status} ${response.statusText}. Serve the page with \`npx ditto web\`, which also serves models/.`,
      { path: url },
    );
  }
  const total = Number(response.headers.get("content-length")) || undefined;
  if (!onProgress || !response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress(url, loaded, total);
  }
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}
