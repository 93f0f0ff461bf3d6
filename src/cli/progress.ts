/**
 * A progress line on stderr: redrawn in place on a terminal, printed every 10 % otherwise (logs, CI), silent with
 * --quiet. Hand-written because it is a dozen lines and the usual packages pull in far more than that.
 */
export class Progress {
  private readonly label: string;
  private readonly total: number;
  private readonly enabled: boolean;
  private readonly tty = Boolean(process.stderr.isTTY);
  private readonly started = performance.now();
  private lastDecile = -1;

  constructor(label: string, total: number, enabled = true) {
    this.label = label;
    this.total = Math.max(1, total);
    this.enabled = enabled;
  }

  update(done: number, note = ""): void {
    if (!this.enabled) return;
    const frac = Math.min(1, done / this.total);
    const elapsed = (performance.now() - this.started) / 1000;
    const eta = frac > 0 ? (elapsed / frac) * (1 - frac) : 0;
    const text = `${this.label} ${bar(frac)} ${String(Math.round(frac * 100)).padStart(3)}% ${done}/${this.total} ${elapsed.toFixed(1)}s${frac < 1 ? ` eta ${eta.toFixed(0)}s` : ""}${note ? ` ${note}` : ""}`;
    if (this.tty) {
      process.stderr.write(`\r${text}\x1b[K${frac >= 1 ? "\n" : ""}`);
      return;
    }
    const decile = Math.floor(frac * 10);
    if (decile !== this.lastDecile) {
      this.lastDecile = decile;
      process.stderr.write(`${text}\n`);
    }
  }
}

function bar(frac: number, width = 24): string {
  const full = Math.round(frac * width);
  return `[${"#".repeat(full)}${".".repeat(width - full)}]`;
}
