import type { Logger } from "../shared/logger";

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 30_000;

export interface ResilientListener {
  /** True while a listener is open (not while waiting to re-open). */
  readonly open: boolean;
  stop(): void;
}

/**
 * Keeps a Firestore snapshot listener open: when it errors it is re-opened with exponential backoff
 * (0.5 s doubling to 30 s). `subscribe` gets `healthy` to call on each snapshot, which resets the backoff.
 * Whatever the listener delivered before is the caller's to de-duplicate.
 */
export function keepListening(
  label: Record<string, unknown>,
  logger: Logger,
  subscribe: (healthy: () => void, onError: (error: Error) => void) => () => void,
): ResilientListener {
  let unsubscribe: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  let attempt = 0;
  let stopped = false;

  const start = () => {
    timer = undefined;
    if (stopped) return;
    unsubscribe = subscribe(
      () => {
        attempt = 0;
      },
      (error) => {
        unsubscribe = undefined;
        if (stopped) return;
        const delayMs = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** attempt);
        attempt += 1;
        logger.warn("relay listener failed; re-opening", { ...label, delayMs, error });
        timer = setTimeout(start, delayMs);
        timer.unref();
      },
    );
  };
  start();

  return {
    get open() {
      return unsubscribe !== undefined;
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      unsubscribe?.();
      unsubscribe = undefined;
    },
  };
}
