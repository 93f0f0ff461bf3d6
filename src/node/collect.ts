/**
 * A garbage collection on demand (Node only), for long streaming loops.
 *
 * Why: onnxruntime-node returns every output in a new ArrayBuffer (pre-allocated outputs too: it writes into them,
 * then copies), so every 8 CDT frames leave ~2.8 MB of dead cache states and context features behind. V8 frees such
 * native buffers only when its own heuristics collect, after tens of MB of them have piled up: a short video ends
 * before the first collection and a long one settles ~20 MiB higher. Collecting after every chunk frees them at
 * once, so peak memory stops depending on the video length. A full collection, not just the young generation, so
 * that buffers which outlived a scavenge cannot pile up either; with the CLI's small heap it costs a few ms per
 * 8-frame chunk (a scratch timing gave 2–3 %). The collector is V8's `gc`, exposed at run time; where that fails, `undefined` (memory is then
 * still bounded, only higher).
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

let gc: (() => void) | undefined | null = null;

export function garbageCollector(): (() => void) | undefined {
  if (gc === null) {
    try {
      setFlagsFromString("--expose-gc");
      gc = runInNewContext("gc") as () => void; // a new context sees the flag; this one was created before it
    } catch {
      gc = undefined;
    }
  }
  return gc;
}
