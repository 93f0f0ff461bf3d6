/** `none`: the uncached reference. The whole block stack runs every step as one session (embed → stack → head). */
import type { CachePolicy } from "../policy.ts";
import { stackUnit } from "../policy.ts";

export function none(): CachePolicy {
  return {
    name: "none",
    spec: "none",
    units: stackUnit,
    createState: () => ({
      decide: () => "compute",
      update: () => {},
      approximate: () => undefined,
      bytes: () => 0,
    }),
  };
}
