#!/usr/bin/env node
// Builds the package: dist/ holds JavaScript and .d.ts compiled from src/ by tsc (tsconfig.build.json).
// tsc rewrites the ".ts" import specifiers of the emitted JavaScript to ".js" (rewriteRelativeImportExtensions)
// but leaves them as ".ts" in declaration files, which a consumer's compiler rejects (TS5097); we rewrite those.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
execFileSync(
  process.execPath,
  [tsc, "-p", join(root, "tsconfig.build.json")],
  { stdio: ["ignore", 2, 2] } /* stderr: `npm pack --json` reads stdout */,
);

const relativeTs = /((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+)\.ts(["'])/g;
let rewritten = 0;
for (const entry of readdirSync(dist, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith(".d.ts")) continue;
  const file = join(entry.parentPath, entry.name);
  const text = readFileSync(file, "utf8");
  const fixed = text.replace(relativeTs, "$1$2.js$3");
  if (fixed !== text) {
    writeFileSync(file, fixed);
    rewritten++;
  }
}
console.error(`built dist/ (${rewritten} declaration files had their import specifiers rewritten to .js)`);
