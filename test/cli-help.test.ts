/** Help texts and echoed commands a user reads or pastes back (issue 13, part 5). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { shellQuote } from "../src/cli/bench.ts";
import { run as policies } from "../src/cli/policies.ts";
import { run as profile, SET_KEYS } from "../src/cli/profile.ts";

async function stdoutOf(f: () => Promise<void>): Promise<string> {
  const write = process.stdout.write;
  let text = "";
  process.stdout.write = ((chunk: string) => {
    text += chunk;
    return true;
  }) as typeof process.stdout.write;
  try {
    await f();
  } finally {
    process.stdout.write = write;
  }
  return text;
}

describe("help text", () => {
  it("ditto policies marks required and optional options once, and keeps names apart from their help", async () => {
    const text = await stdoutOf(() => policies([]));
    assert.doesNotMatch(text, /\(required\) \(required\)/);
    assert.match(text, /calibration\s+artifact from ditto profile --method teacache \(optional\)/);
    assert.match(text, /coefficients\s+.*\(optional\)/);
    assert.match(text, /artifact\s+artifact from ditto profile --method ertacache \(required\)/);
    assert.match(text, /maxConsecutive\s{2,}cap/);
  });

  it("ditto profile --help lists every method's --set keys", async () => {
    const text = await stdoutOf(() => profile(["--help"]));
    for (const [method, keys] of Object.entries(SET_KEYS)) {
      assert.match(text, new RegExp(`\\n {4}${method}:`));
      for (const key of Object.keys(keys)) assert.match(text, new RegExp(`\\n {6}${key}\\s`), `${method} ${key}`);
    }
  });

  it("the bench command echoed in its report can be pasted back into a shell", () => {
    const argv = ["--policies", "none;fora:interval=2;taylorseer:interval=4,order=1", "--markdown", "--steps", "6"];
    assert.equal(
      argv.map(shellQuote).join(" "),
      '--policies "none;fora:interval=2;taylorseer:interval=4,order=1" --markdown --steps 6',
    );
    assert.equal(shellQuote("it's $HOME"), `'it'\\''s $HOME'`);
  });
});
