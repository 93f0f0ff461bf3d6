/**
 * The web page's server (Node-only): the built page (web/dist), the shipped models (models/) and onnxruntime-web's
 * runtime files (ort/), all from one origin, with the two headers that make the page cross-origin isolated
 * (COOP same-origin + COEP require-corp) — without them browsers withhold SharedArrayBuffer and WASM threads.
 * Files carry an ETag and `Cache-Control: no-cache`, so the browser keeps the 58 MB model and revalidates it
 * with a 304 instead of downloading it again.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { dirname, extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { ORT_WEB_FILES } from "../web/ort-loader.ts";

// src/serve/ and dist/serve/ both sit two levels below the package root.
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const WEB_DIST = join(PACKAGE_ROOT, "web", "dist");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".wasm": "application/wasm",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".onnx": "application/octet-stream",
};

export interface WebServerOptions {
  port?: number;
  host?: string;
  /** The built page (default web/dist). */
  pageDir?: string;
  modelsDir?: string;
}

export function ortWebDist(): string {
  // onnxruntime-web's Node export sits in its dist/ folder, beside the browser files.
  return dirname(fileURLToPath(import.meta.resolve("onnxruntime-web")));
}

/** Maps a URL path to a file, or undefined when it is outside the served folders. */
function routeFile(urlPath: string, pageDir: string, modelsDir: string, ortDir: string): string | undefined {
  const path = decodeURIComponent(urlPath);
  const inside = (root: string, rest: string) => {
    const full = normalize(join(root, rest));
    return full === root || full.startsWith(root + sep) ? full : undefined;
  };
  if (path.startsWith("/models/")) return inside(modelsDir, path.slice("/models/".length));
  if (path.startsWith("/ort/")) {
    const name = path.slice("/ort/".length);
    return ORT_WEB_FILES.includes(name) ? join(ortDir, name) : undefined;
  }
  return inside(pageDir, path === "/" ? "index.html" : path.slice(1));
}

export async function startWebServer(options: WebServerOptions = {}): Promise<{ server: Server; url: string }> {
  const pageDir = options.pageDir ?? WEB_DIST;
  const modelsDir = options.modelsDir ?? join(PACKAGE_ROOT, "models");
  const ortDir = ortWebDist();
  const server = createServer(async (req, res) => {
    res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
    res.setHeader("Cross-Origin-Embedder-Policy", "require-corp");
    res.setHeader("Cross-Origin-Resource-Policy", "same-origin");
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD" }).end();
      return;
    }
    const url = new URL(req.url ?? "/", "http://localhost");
    const file = routeFile(url.pathname, pageDir, modelsDir, ortDir);
    const info = file ? await stat(file).catch(() => undefined) : undefined;
    if (!file || !info?.isFile()) {
      res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" }).end(`not found: ${url.pathname}\n`);
      return;
    }
    const etag = `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
    res.setHeader("ETag", etag);
    res.setHeader("Cache-Control", "no-cache");
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304).end();
      return;
    }
    res.writeHead(200, {
      "Content-Type": TYPES[extname(file)] ?? "application/octet-stream",
      "Content-Length": info.size,
    });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(options.port ?? 5173, host, ok);
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  return { server, url: `http://${host.includes(":") ? `[${host}]` : host}:${port}/` };
}
