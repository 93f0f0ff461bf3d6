/**
 * The core entry (src/core.ts) must stay free of Node: a browser build reuses it. Walks its static import graph
 * and fails on node:* built-ins and Node-only packages; the one way into Node is the platform's guarded dynamic
 * import of src/node/platform.ts.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";

const SRC = join(import.meta.dirname, "../src");
const NODE_ONLY_PACKAGES = ["onnxruntime-node", "pngjs", "@resvg/resvg-js", "tsx"];

function staticImports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs: string[] = [];
  // Type-only imports vanish from the JavaScript, so they do not count.
  for (const m of text.matchAll(/^\s*(import|export)\b(?!\s+type\b)[^;]*?\bfrom\s+["']([^"']+)["']/gms)) {
    specs.push(m[2]);
  }
  for (const m of text.matchAll(/^\s*import\s+["']([^"']+)["']/gm)) specs.push(m[1]);
  return specs;
}

function importGraph(entry: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const queue = [entry];
  while (queue.length) {
    const file = queue.pop() as string;
    if (graph.has(file)) continue;
    const specs = staticImports(file);
    graph.set(file, specs);
    for (const s of specs) if (s.startsWith(".")) queue.push(resolve(dirname(file), s));
  }
  return graph;
}

describe("package layout", () => {
  it("the core entry imports no node:* module and no Node-only package", () => {
    const graph = importGraph(join(SRC, "core.ts"));
    assert.ok(graph.size > 30, `walked only ${graph.size} modules`);
    const offences: string[] = [];
    for (const [file, specs] of graph) {
      for (const s of specs) {
        if (s.startsWith("node:") || NODE_ONLY_PACKAGES.some((p) => s === p || s.startsWith(`${p}/`))) {
          offences.push(`${relative(SRC, file)} imports ${s}`);
        }
      }
    }
    assert.deepEqual(offences, []);
  });

  it("Node-only code lives in src/node and src/cli (and the onnxruntime-node backend)", () => {
    const graph = importGraph(join(SRC, "index.ts"));
    const allowed = (f: string) => /^(node|cli)\//.test(f) || f === "runtime/node-backend.ts";
    const offences = [...graph]
      .filter(([file, specs]) => !allowed(relative(SRC, file)) && specs.some((s) => /^node:(fs|path)/.test(s)))
      .map(([file]) => relative(SRC, file));
    assert.deepEqual(offences, []);
  });
});
