#!/usr/bin/env node
// The `ditto` command. An installed package runs the compiled CLI in dist/. A source checkout (src/ beside bin/,
// which the package does not ship) runs the TypeScript source through tsx, so edits take effect without a rebuild.
import { existsSync } from "node:fs";
import { relaunchWithMallocTuning } from "./malloc-tuning.js";

// Only the commands that run models at batch size relaunch (bin/malloc-tuning.js says why).
const [command, ...rest] = process.argv.slice(2);
if (["generate", "bench", "profile"].includes(command) && !rest.includes("--help") && !rest.includes("-h")) {
  relaunchWithMallocTuning();
}
const source = new URL("../src/cli/main.ts", import.meta.url);
let main;
if (existsSync(source) && !process.env.DITTO_USE_DIST) {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import(source.href));
} else {
  ({ main } = await import("../dist/cli/main.js"));
}
process.exitCode = await main(process.argv.slice(2));
