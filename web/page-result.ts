/** The result the page publishes on `window.ditto.result` after a run (read by the browser test and bench:web). */
export interface PageResult {
  spec: string;
  dims: number[];
  seeds: number[];
  classes: number[];
  /** Samples in model space, uncached and cached, in the same order. */
  uncached: number[];
  cached: number[];
  uncachedMs: number;
  cachedMs: number;
  speedup: number;
  idealSpeedup: number;
  psnr: number;
  ssim: number;
}
