/**
 * Runs tasks one at a time per key, in arrival order, and tasks of different keys concurrently.
 * Used to serialize sends of one sender→receiver pair inside a process: their transactions all touch
 * the pair's counter, and letting them race only buys contention retries.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    // Forget the key once nothing is queued behind this task, so the map does not grow with every pair.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Resolves once everything queued so far for `key` has finished. */
  async settled(key: string): Promise<void> {
    await this.tails.get(key);
  }

  /** Resolves once everything queued so far has finished. */
  async idle(): Promise<void> {
    await Promise.all(this.tails.values());
  }
}
