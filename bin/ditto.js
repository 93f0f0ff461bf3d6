#!/usr/bin/env node
// Runs Ditto's TypeScript CLI through tsx, so the package needs no build step.
import { relaunchWithMallocTuning } from "./malloc-tuning.js";

relaunchWithMallocTuning();
const { register } = await import("tsx/esm/api");
register();
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
