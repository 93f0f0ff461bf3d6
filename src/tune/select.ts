/** How `ditto tune` picks: the quality bar, the Pareto front, and which candidates survive a rung. */
import type { Setting } from "./space.ts";
import type { Candidate, QualityBar } from "./tune.ts";

export function survivors(scored: Candidate[], bar: QualityBar, margin: number, last: boolean): Candidate[] {
  const front = paretoFront(scored, (c) => c.idealSpeedup);
  if (last) return scored;
  const near = scored
    .filter((c) => c.psnr >= bar.minPsnr - margin && c.ssim >= (bar.minSsim ?? 0) - margin / 100)
    .sort((a, b) => b.idealSpeedup - a.idealSpeedup);
  const keep = near.slice(0, Math.max(3, Math.ceil(scored.length / 3)));
  return [...new Set([...keep, ...front])];
}

export function meets(q: { psnr: number; ssim: number }, bar: QualityBar): boolean {
  return q.psnr >= bar.minPsnr && q.ssim >= (bar.minSsim ?? Number.NEGATIVE_INFINITY);
}

/** The candidates no other beats on both speed and PSNR, fastest first. */
export function paretoFront<T extends { psnr: number }>(items: T[], speed: (c: T) => number): T[] {
  const sorted = [...items].sort((a, b) => speed(b) - speed(a) || b.psnr - a.psnr);
  const front: T[] = [];
  let best = Number.NEGATIVE_INFINITY;
  for (const c of sorted) {
    if (c.psnr > best) {
      front.push(c);
      best = c.psnr;
    }
  }
  return front;
}

/** [a1, b1, c1, a2, b2, …]: the lists' items taken in turn. */
export function interleave<T>(lists: T[][]): T[] {
  const out: T[] = [];
  for (let i = 0; i < Math.max(0, ...lists.map((l) => l.length)); i++)
    for (const l of lists) if (i < l.length) out.push(l[i]);
  return out;
}

export function label(policy: string, setting: Setting): string {
  const parts = Object.entries(setting).map(([k, v]) => `${k}=${v}`);
  return parts.length ? `${policy}:${parts.join(",")}` : policy;
}

export function range(start: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => start + i);
}
