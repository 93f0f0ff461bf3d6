/** Binomial rates with a 95 % Wilson score interval (Wilson, 1927): sensible at 0 % and 100 %, unlike ±1.96·SE. */
export interface Rate {
  count: number;
  n: number;
  rate: number;
  /** 95 % interval [low, high]. */
  interval: [number, number];
}

export function wilson(count: number, n: number, z = 1.959964): Rate {
  if (n === 0) return { count, n, rate: 0, interval: [0, 1] };
  const p = count / n;
  const denom = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  return { count, n, rate: p, interval: [Math.max(0, centre - half), Math.min(1, centre + half)] };
}
