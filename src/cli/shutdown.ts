/**
 * Resolves after the first SIGINT/SIGTERM once `close` is done; a second signal exits at once. Shutdown is bounded:
 * if `close` has not finished `deadlineMs` after the signal (a library waiting on a connection that will not answer),
 * the process says so and exits with 1 — a queue worker's unfinished jobs go back to the queue when their locks lapse.
 * Once `close` is done, a handle some library left open cannot keep the process alive either.
 */
export function onShutdown(label: string, close: () => Promise<void>, deadlineMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        process.stderr.write(`ditto ${label}: ${signal} again, exiting now\n`);
        process.exit(130);
      }
      stopping = true;
      process.stderr.write(`ditto ${label}: ${signal}, shutting down (send it again to exit at once)\n`);
      setTimeout(() => {
        process.stderr.write(`ditto ${label}: shutdown still not done after ${deadlineMs / 1000} s, exiting\n`);
        process.exit(1);
      }, deadlineMs).unref();
      close().then(() => {
        setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref();
        resolve();
      }, reject);
    };
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));
  });
}
