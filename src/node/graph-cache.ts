/**
 * The graph cache on disk (Node only): one folder per model SHA-256 and Ditto build, one file per cut, named by
 * the SHA-256 of its key. Writes go to a temporary file renamed into place, so concurrent Ditto processes never
 * read half an entry. A folder that cannot be written is reported once and the run continues uncached.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { mkdir, readdir, rename, rm, stat, unlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { GraphStore, OptimizedModelSlot } from "../runtime/graph-store.ts";

/** The folder used when none is given: $DITTO_CACHE_DIR, else $XDG_CACHE_HOME/ditto, else ~/.cache/ditto. */
export function defaultCacheDir(): string {
  if (process.env.DITTO_CACHE_DIR) return process.env.DITTO_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "ditto");
}

export class FileGraphStore implements GraphStore {
  readonly location: string;
  private readonly build: string;
  private readonly warn: (message: string) => void;
  private failed = false;
  private readonly pruned = new Set<string>();

  constructor(dir = defaultCacheDir(), warn: (message: string) => void = (m) => process.stderr.write(`ditto: ${m}\n`)) {
    this.location = join(dir, "graphs");
    this.build = dittoBuild();
    this.warn = warn;
  }

  async read(model: string, key: string): Promise<Uint8Array | undefined> {
    try {
      // Synchronous: a cached cut is read in a few milliseconds, and an await here would be held up by the other
      // sessions' (synchronous) creation, which both slows the start and blurs the timings.
      const file = readFileSync(this.path(model, key));
      return new Uint8Array(file.buffer, file.byteOffset, file.byteLength);
    } catch {
      return undefined;
    }
  }

  async write(model: string, key: string, bytes: Uint8Array): Promise<void> {
    if (this.failed) return;
    const path = this.path(model, key);
    const temp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await mkdir(dirname(path), { recursive: true });
      await writeFile(temp, bytes);
      await rename(temp, path);
      if (!this.pruned.has(model)) {
        this.pruned.add(model);
        await this.pruneOtherBuilds(model);
      }
    } catch (err) {
      this.failed = true;
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      this.warn(
        `cannot write the graph cache in ${this.location} (${code}); cut graphs are not kept, so every start cuts ` +
          "the model again. Point DITTO_CACHE_DIR (or --graph-cache DIR) at a writable folder, or pass " +
          "--no-graph-cache to skip the cache.",
      );
    }
  }

  optimizedModel(model: string, key: string): OptimizedModelSlot | undefined {
    if (this.failed) return undefined;
    const path = this.path(model, key, "onnx");
    const savePath = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    let bytes: Uint8Array | undefined;
    try {
      const file = readFileSync(path);
      bytes = new Uint8Array(file.buffer, file.byteOffset, file.byteLength);
    } catch {
      try {
        mkdirSync(dirname(path), { recursive: true });
      } catch {} // reported by the failed save (the session is then created without saving)
    }
    return {
      bytes,
      savePath,
      commit: async () => {
        await rename(savePath, path).catch(() => unlink(savePath).catch(() => undefined));
      },
    };
  }

  /**
   * Removes this model's entries from other Ditto builds that nothing wrote for an hour: every build (and, in a
   * development checkout, every edit of the cutting code) starts a folder of its own, ~2× the model's size.
   */
  private async pruneOtherBuilds(model: string): Promise<void> {
    const dir = join(this.location, model);
    const cutoff = Date.now() - 60 * 60 * 1000;
    for (const build of await readdir(dir).catch(() => [] as string[])) {
      if (build === this.build) continue;
      const info = await stat(join(dir, build)).catch(() => undefined);
      if (info && info.mtimeMs < cutoff) await rm(join(dir, build), { recursive: true, force: true }).catch(() => {});
    }
  }

  private path(model: string, key: string, ext = "bin"): string {
    const name = createHash("sha256").update(key).digest("hex").slice(0, 32);
    return join(this.location, model, this.build, `${name}.${ext}`);
  }
}

/**
 * The Ditto build that cut the graphs: the package version, plus a digest of the modules whose code shapes a cut
 * graph when they are present as sources (a development checkout changes them without bumping the version).
 */
function dittoBuild(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = join(here, "..", "..");
  let version = "unknown";
  try {
    version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version ?? version;
  } catch {}
  const sources = [
    "src/onnx/extract.ts",
    "src/onnx/rewrite.ts",
    "src/onnx/switch.ts",
    "src/onnx/fuse-gelu.ts",
    "src/onnx/fuse-attention.ts",
    "src/onnx/fusion.ts",
    "src/onnx/proto.ts",
    "src/model/plan.ts",
    "src/model/discover.ts",
    "src/runtime/dit.ts",
  ];
  const hash = createHash("sha256");
  for (const s of sources) {
    try {
      hash.update(readFileSync(join(root, s)));
    } catch {}
  }
  return `${version}-${hash.digest("hex").slice(0, 12)}`;
}
