/**
 * Runs `job` every `intervalMs`, one run at a time: a tick that finds a run still going is skipped. A
 * failed run goes to `onFailure` and the next tick tries again; stop() waits for a run in progress. The
 * local stack's and the relay's stand-in for a scheduled function.
 */
export function repeatEvery(intervalMs: number, job: () => Promise<unknown>, onFailure: (error: Error) => void): { stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    running ??= job()
      .then(() => undefined, onFailure)
      .finally(() => {
        running = undefined;
      });
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
