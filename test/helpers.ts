/** Shared test helpers: model fixtures, comparisons, error assertions. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { DittoError, type DittoErrorCode } from "../src/errors.ts";
import { DEFAULT_MODEL_DIR } from "../src/model/manifest.ts";
import { type LlamaOptions, writeDiTLlama } from "./fixtures/dit-llama.ts";

export const SHIPPED_MODEL = DEFAULT_MODEL_DIR;

const CLI = join(import.meta.dirname, "../bin/ditto.js");

/** Runs the `ditto` command line as a user would; a failing command resolves with its exit code and output. */
export async function ditto(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { maxBuffer: 1 << 24 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

export function tempDir(prefix = "ditto-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A fresh folder holding the tiny DiT-Llama test graph and its manifest. */
export function llamaModel(options: LlamaOptions = {}): string {
  return writeDiTLlama(tempDir("ditto-llama-"), options);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "arrays differ in length");
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

export function assertBitIdentical(a: Float32Array, b: Float32Array, message: string): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i])) assert.fail(`${message}: element ${i} differs (${a[i]} vs ${b[i]})`);
  }
}

/** Awaits `fn` and checks it throws a DittoError with this code (and a message matching `pattern`). */
export async function assertRejectsWith(
  fn: () => Promise<unknown> | unknown,
  code: DittoErrorCode,
  pattern?: RegExp,
): Promise<DittoError> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof DittoError, `expected a DittoError, got ${(err as Error)?.stack ?? err}`);
    assert.equal(err.code, code, `expected code ${code}, got ${err.code}: ${err.message}`);
    if (pattern) assert.match(err.message, pattern);
    return err;
  }
  assert.fail(`expected an error with code ${code}, but nothing was thrown`);
}
