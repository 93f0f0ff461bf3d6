/** Resolves after the first SIGINT/SIGTERM once `close` is done; a second signal exits at once. */
export function onShutdown(label: string, close: () => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        process.stderr.write(`ditto ${label}: ${signal} again, exiting now\n`);
        process.exit(130);
      }
      stopping = true;
      process.stderr.write(`ditto ${label}: ${signal}, shutting down (send it again to exit at once)\n`);
      close().then(resolve, reject);
    };
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));
  });
}
