/**
 * Runs at most `limit` tasks at once; the others wait their turn, first come first served. Used where a
 * burst of independent work (every socket of a reconnect storm reading its backlog) would otherwise open
 * that many Firestore streams at the same moment.
 */
export class ConcurrencyLimit {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running < this.limit) this.running++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve)); // the finishing task hands its slot over
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
