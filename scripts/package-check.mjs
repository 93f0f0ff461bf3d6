#!/usr/bin/env node
// Installs Ditto as a user would and checks both ways of using it (CI runs this: `npm run test:package`):
// `npm pack` here (which builds dist/), `npm install <tarball>` in a scratch folder outside the repository, then
//  1. plain `node index.mjs` running the README's library snippet (copied from README.md) prints a report;
//  2. a TypeScript consumer (strict, module nodenext, skipLibCheck) type-checks with zero errors;
//  3. `npx ditto --help` runs the compiled CLI and prints no npm warning.
// Uses the local npm cache first (--prefer-offline); the registry is only asked for what the cache lacks.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const env = { ...process.env, ONNXRUNTIME_NODE_INSTALL: "skip", npm_config_fund: "false", npm_config_audit: "false" };
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const step = (what) => console.log(`package-check: ${what}`);

const scratch = mkdtempSync(join(tmpdir(), "ditto-consumer-"));
try {
  step(`npm pack → ${scratch}`);
  const packed = JSON.parse(run(npm, ["pack", "--json", "--pack-destination", scratch], root));
  const { filename, size, unpackedSize, files } = packed[0];
  step(
    `${filename}: ${(size / 1e6).toFixed(1)} MB packed, ${(unpackedSize / 1e6).toFixed(1)} MB unpacked, ${files.length} files`,
  );
  const stray = files.map((f) => f.path).filter((p) => /^(src|test|training|bench)\//.test(p));
  if (stray.length) throw new Error(`the tarball carries files a user does not need: ${stray.slice(0, 5).join(", ")}`);

  writeFileSync(
    join(scratch, "package.json"),
    `${JSON.stringify({ name: "consumer", private: true, type: "module" })}\n`,
  );
  const typesNode = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).devDependencies["@types/node"];
  step("npm install <tarball> (and @types/node for the TypeScript consumer)");
  run(npm, ["install", "--prefer-offline", `./${filename}`, `@types/node@${typesNode}`], scratch);

  // 1. The README's library snippet, verbatim, under plain node.
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const snippet = /As a library:\s*```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  if (!snippet) throw new Error('README.md has no ```ts block after "As a library:"');
  writeFileSync(join(scratch, "index.mjs"), snippet);
  step("node index.mjs (the README's library snippet)");
  const out = run(process.execPath, ["index.mjs"], scratch);
  if (!/^\d+(\.\d+)?\s+\S/.test(out.trim())) throw new Error(`index.mjs printed no report:\n${out}`);
  step(`  printed: ${out.trim().slice(0, 100)}…`);

  // 2. A strict NodeNext TypeScript consumer.
  writeFileSync(
    join(scratch, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        module: "nodenext",
        moduleResolution: "nodenext",
        target: "es2022",
        skipLibCheck: true,
        noEmit: true,
        types: ["node"],
      },
      files: ["consumer.ts"],
    }),
  );
  writeFileSync(
    join(scratch, "consumer.ts"),
    `import { type CachePolicy, DittoError, type GenerationResult, loadPipeline, parseCacheSpec, taylorseer } from "ditto-dit";
import { psnr, type Platform } from "ditto-dit/core";

const policy: CachePolicy = taylorseer({ interval: 4, order: 1 });
const fromSpec: CachePolicy = parseCacheSpec("fora:interval=2");
const pipeline = await loadPipeline();
const result: GenerationResult = await pipeline.generate({ classes: [0], seeds: [1], steps: 4, cache: policy });
const speedup: number = result.reports[0].idealSpeedup;
const check = (err: unknown): string => (err instanceof DittoError ? err.code : "other");
const host: Platform["name"] = "node";
console.log(speedup, fromSpec.name, check(new Error("x")), host, typeof psnr);
`,
  );
  step("tsc --noEmit on a strict nodenext consumer");
  try {
    run(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], scratch);
  } catch (err) {
    throw new Error(`the TypeScript consumer does not type-check:\n${err.stdout}${err.stderr}`);
  }

  // 3. The compiled CLI.
  step("npx ditto --help");
  const help = execFileSync(npm, ["exec", "--offline", "--", "ditto", "--help"], {
    cwd: scratch,
    env,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (!help.includes("Usage: ditto")) throw new Error(`npx ditto --help printed:\n${help}`);
  step("ok");
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
