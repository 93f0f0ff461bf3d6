/**
 * A young-generation garbage collection on demand (Node only), for long streaming loops.
 *
 * Why: onnxruntime-node returns every output in a new ArrayBuffer (pre-allocated outputs too: it writes into them,
 * then copies), so each CDT chunk leaves ~2.9 MB of dead cache states and context features behind. V8 frees such
 * native buffers only when its own heuristics collect, after tens of MB of them have piled up: a short video ends
 * before the first collection and a long one settles ~20 MB higher. A scavenge after every chunk frees them while
 * they are still young (well under a millisecond each), so peak memory stops depending on the video length.
 * The collector is V8's `gc`, exposed at run time; where that fails, `undefined` (memory is then still bounded).
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

type Gc = (options?: { type: "minor" | "major" }) => void;

let gc: Gc | undefined | null = null;

export function youngCollector(): (() => void) | undefined {
  if (gc === null) {
    try {
      setFlagsFromString("--expose-gc");
      gc = runInNewContext("gc") as Gc; // a new context sees the flag; this one was created before it
    } catch {
      gc = undefined;
    }
  }
  const collect = gc;
  return collect && (() => collect({ type: "minor" }));
}
