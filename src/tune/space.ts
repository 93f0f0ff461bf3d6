/**
 * The option space `ditto tune` searches: per policy, a small grid of settings (the knobs that trade speed for
 * fidelity), as data. Policies whose artifacts take minutes to fit (ERTACache, ProfilingDiT, BAC, HarmoniCa, L2C)
 * are not searched; `skipped` says why, so the report can list them.
 */

export type Setting = Record<string, number | string | boolean | number[]>;

export interface PolicySpace {
  policy: string;
  /** Calibration the settings need first ("teacache" or "magcache"); the tuner fits it on its calibration seeds. */
  needs?: "teacache" | "magcache";
  settings: Setting[];
}

function grid(axes: Record<string, (number | string | boolean)[]>): Setting[] {
  return Object.entries(axes).reduce<Setting[]>(
    (acc, [key, values]) => acc.flatMap((s) => values.map((v) => ({ ...s, [key]: v }))),
    [{}],
  );
}

/** Forecasters tried at each schedule: reuse, Taylor order 1, and two damped linear ones (Hermite σ, FoCa λ). */
const FORECASTERS: Setting[] = [
  { order: 0 },
  { order: 1 },
  { order: 1, basis: "hermite", sigma: 0.5 },
  { order: 1, corrector: "foca", gain: 0.5 },
];

const withForecasters = (schedules: Setting[], forecasters: Setting[]) =>
  schedules.flatMap((s) => forecasters.map((f) => ({ ...s, ...f })));

/**
 * About 190 settings. The early steps matter most on the shipped model (computing steps 0–3 instead of 0–1 is
 * worth ~10 dB at 5 steps between full ones), so warm-up is searched as widely as the interval.
 */
export const SEARCH_SPACE: readonly PolicySpace[] = [
  { policy: "fora", settings: grid({ interval: [2, 3, 4, 5, 6, 7, 8], warmup: [1, 4] }) },
  {
    policy: "taylorseer",
    settings: [
      // The stack residual (one tensor, step-level speed) over a wide schedule range; every branch over a narrower one.
      ...withForecasters(grid({ scope: ["stack"], interval: [4, 5, 6, 7, 8, 9, 10], warmup: [2, 4, 6] }), FORECASTERS),
      ...withForecasters(grid({ scope: ["branches"], interval: [3, 4, 5, 6], warmup: [2, 4] }), FORECASTERS.slice(1)),
    ],
  },
  {
    policy: "teacache",
    needs: "teacache",
    settings: grid({ threshold: [0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3] }),
  },
  {
    policy: "magcache",
    needs: "magcache",
    settings: grid({ threshold: [0.06, 0.12, 0.24, 0.5], maxSkip: [3, 4, 6, 8], retention: [0.1, 0.2] }),
  },
  { policy: "easycache", settings: grid({ threshold: [0.05, 0.1, 0.15, 0.2, 0.3, 0.4], warmup: [3, -1, 8] }) },
  { policy: "fbcache", settings: grid({ threshold: [0.1, 0.15, 0.2, 0.3] }) },
  { policy: "dbcache", settings: grid({ threshold: [0.2, 0.3, 0.4] }) },
];

export const NOT_SEARCHED: Record<string, string> = {
  none: "the reference",
  ertacache: "its offline reuse set is fitted per budget by `ditto profile --method ertacache`; tune it by hand",
  profilingdit: "needs `ditto profile --method profilingdit` (attention maps); its knob is the cached-block set",
  schedule: "runs a given table; nothing to search",
  bac: "needs `ditto profile --method bac`",
  harmonica: "its router fit takes ~16 min on this machine, more than a tune budget",
  l2c: "its router fit takes ~1.5 min per budget",
};
