/**
 * Relaunches this Node process once with glibc malloc tuned for Ditto's large tensors (Linux only).
 *
 * Why: glibc serves every allocation above its mmap threshold (dynamic, but never above 32 MB) with a fresh mmap
 * that is page-faulted in on first write and unmapped on free. onnxruntime-node copies each session output into a
 * new ArrayBuffer, so a full step that hands out all branch values (48 MB at network batch 40) paid a page-fault
 * storm and an unmap per step, growing with batch. Raising the mmap and trim thresholds keeps those buffers on the
 * reused heap (`npm run bench:malloc`: system time 1.10 → 0.54 s for FORA N=2 at 20 samples). The environment is read by
 * glibc at process start, hence the relaunch; DITTO_MALLOC_TUNING=off skips it, and a caller that sets either
 * variable keeps its own values.
 */
import { spawnSync } from "node:child_process";

export const MALLOC_TUNING = {
  MALLOC_MMAP_THRESHOLD_: String(256 * 1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(1024 * 1024 * 1024),
};

/** The environment for the relaunch, or undefined when none is needed. */
export function tunedEnvironment(env = process.env, platform = process.platform) {
  if (platform !== "linux" || env.DITTO_MALLOC_TUNING === "off" || env.DITTO_MALLOC_TUNED) return undefined;
  if (Object.keys(MALLOC_TUNING).some((k) => env[k] !== undefined)) return undefined;
  return { ...env, ...MALLOC_TUNING, DITTO_MALLOC_TUNED: "1" };
}

/** Relaunches with the tuned environment and exits with the child's status; returns when no relaunch is needed. */
export function relaunchWithMallocTuning() {
  const env = tunedEnvironment();
  if (!env) return;
  const child = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: "inherit", env });
  if (child.error) return; // could not relaunch: carry on untuned
  process.exit(child.status ?? (child.signal ? 1 : 0));
}
