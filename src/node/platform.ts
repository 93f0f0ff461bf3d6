/** The Node platform: node:fs, node:path, node:crypto and onnxruntime-node. The only core-facing Node module. */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Platform } from "../platform.ts";
import { nodeBackend } from "../runtime/node-backend.ts";
import { FileGraphStore } from "./graph-cache.ts";

// src/node/ and dist/node/ both sit two levels below the package root, beside models/.
const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export const nodePlatform: Platform = {
  name: "node",
  backend: nodeBackend,
  modelsDir: join(packageRoot, "models"),
  async kind(path) {
    const info = await stat(path).catch(() => null);
    return info?.isDirectory() ? "directory" : info?.isFile() ? "file" : undefined;
  },
  async readBytes(path) {
    return new Uint8Array(await readFile(path));
  },
  readText: (path) => readFile(path, "utf8"),
  readTextSync: (path) => readFileSync(path, "utf8"),
  writeTextSync: (path, text) => writeFileSync(path, text),
  graphStore: () => new FileGraphStore(),
  async sha256(bytes) {
    return createHash("sha256").update(bytes).digest("hex");
  },
  resolve: (...parts) => resolve(...parts),
  join: (...parts) => join(...parts),
  dirname: (path) => dirname(path),
  basename: (path) => basename(path),
};
