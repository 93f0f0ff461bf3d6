#!/usr/bin/env node
// Runs Ditto's TypeScript CLI through tsx, so the package needs no build step.
import { relaunchWithMallocTuning } from "./malloc-tuning.js";

// Only the commands that run models at batch size relaunch (bin/malloc-tuning.js says why).
const [command, ...rest] = process.argv.slice(2);
if (["generate", "bench", "profile"].includes(command) && !rest.includes("--help") && !rest.includes("-h")) {
  relaunchWithMallocTuning();
}
const { register } = await import("tsx/esm/api");
register();
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
