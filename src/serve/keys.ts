/**
 * API keys, stored only as SHA-256 hashes: a keys file holds lines "NAME sha256:HEX". Keys are 32 random bytes, so
 * a fast hash is enough (a slow password hash guards guessable secrets; these cannot be guessed). `ditto serve
 * --add-key NAME --keys FILE` appends a hash and prints the key once.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { InputError } from "../errors.ts";

const KEY_PREFIX = "ditto_";

export function hashKey(key: string): string {
  return `sha256:${createHash("sha256").update(key, "utf8").digest("hex")}`;
}

export function newApiKey(): string {
  return KEY_PREFIX + randomBytes(32).toString("base64url");
}

/** hash → key name. */
export type KeyTable = ReadonlyMap<string, string>;

export function parseKeyFile(text: string, source: string): KeyTable {
  const out = new Map<string, string>();
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const m = /^([A-Za-z0-9._-]+)\s+(sha256:[0-9a-f]{64})$/.exec(line);
    if (!m) {
      throw new InputError(
        "OPTION_INVALID",
        `${source}:${i + 1}: expected "NAME sha256:HEX" (make entries with ditto serve --add-key NAME --keys ${source})`,
      );
    }
    out.set(m[2], m[1]);
  });
  return out;
}

export function readKeyFile(path: string): KeyTable {
  if (!existsSync(path))
    throw new InputError(
      "OPTION_INVALID",
      `keys file not found: ${path} (create one with ditto serve --add-key NAME --keys ${path})`,
    );
  const keys = parseKeyFile(readFileSync(path, "utf8"), path);
  if (keys.size === 0)
    throw new InputError(
      "OPTION_INVALID",
      `${path} holds no API keys; add one with ditto serve --add-key NAME --keys ${path}`,
    );
  return keys;
}

/** Appends a new key's hash to the file and returns the key (shown once; only the hash is kept). */
export function addKey(path: string, name: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(name))
    throw new InputError("OPTION_INVALID", `key name '${name}' must be letters, digits, . _ or -`);
  if (existsSync(path) && [...parseKeyFile(readFileSync(path, "utf8"), path).values()].includes(name))
    throw new InputError("OPTION_INVALID", `${path} already has a key named ${name}`);
  const key = newApiKey();
  appendFileSync(path, `${name} ${hashKey(key)}\n`, { mode: 0o600 });
  return key;
}

/** The key's name, or undefined. Compares digests in constant time. */
export function authenticate(keys: KeyTable, presented: string | undefined): string | undefined {
  if (!presented) return undefined;
  const digest = hashKey(presented);
  for (const [hash, name] of keys) {
    if (hash.length === digest.length && timingSafeEqual(Buffer.from(hash), Buffer.from(digest))) return name;
  }
  return undefined;
}
