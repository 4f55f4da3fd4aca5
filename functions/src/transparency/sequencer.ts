import { randomBytes } from "node:crypto";
import type { Clock } from "../shared/clock";
import type { Logger } from "../shared/logger";
import { repeatEvery } from "../shared/periodic";
import type { LogSigner } from "./log-key";
import type { MergeResult, TransparencyRepository } from "./repository";
import { signHead } from "./service";

/**
 * Bindings enter the log through a queue written in the same transaction as the registration or key
 * change; the sequencer merges them in batches. One Firestore document (the log's head) takes about one
 * sustained write per second, so every binding getting its own head would cap the log near 1 append/s;
 * a merge of up to MERGE_BATCH bindings per head lifts that to hundreds per second.
 *
 * Where it runs: every relay process (always on in production, on Cloud Run; the local stack and tests
 * host the relay) ticks every SEQUENCER_INTERVAL_MS; a lease document lets one of them merge at a time.
 * A scheduled Cloud Function (index.ts, every minute: the platform's finest schedule) is the fallback
 * when no relay runs; the merge delay is then up to a minute.
 */

/** How often a relay process looks for waiting bindings: the merge delay is about this plus one merge. */
export const SEQUENCER_INTERVAL_MS = 500;
/** Bindings per merge: ~3 writes each (leaf, queue delete, ~1 subtree) stay under a commit's 500 writes. */
export const MERGE_BATCH = 120;
/** A lease outlives one merge comfortably; a holder that died frees it after this. */
const LEASE_TTL_MS = 15_000;

export class Sequencer {
  private readonly holder = `sequencer_${randomBytes(9).toString("base64url")}`;

  constructor(
    private readonly log: TransparencyRepository,
    private readonly signer: LogSigner,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /**
   * Merges everything waiting now, batch after batch, under the lease. Answers what it merged (empty
   * when nothing waited or another process holds the lease).
   */
  async run(): Promise<MergeResult[]> {
    if (!(await this.log.hasQueued())) return [];
    if (!(await this.log.takeLease(this.holder, this.clock.now(), LEASE_TTL_MS))) return [];
    const results: MergeResult[] = [];
    try {
      for (;;) {
        const result = await this.log.merge(MERGE_BATCH, (treeSize, root) => signHead(this.signer, treeSize, root, this.clock.now()));
        if (result.merged === 0) break;
        results.push(result);
        this.logger.debug("transparency log merged", { merged: result.merged, treeSize: result.head?.treeSize });
        if (result.merged < MERGE_BATCH) break;
        await this.log.takeLease(this.holder, this.clock.now(), LEASE_TTL_MS);
      }
    } finally {
      await this.log.releaseLease(this.holder);
    }
    return results;
  }

  /** Runs the sequencer every `intervalMs` (one run at a time); stop() waits for a run in progress. */
  runEvery(intervalMs: number = SEQUENCER_INTERVAL_MS): { stop(): Promise<void> } {
    return repeatEvery(intervalMs, () => this.run(), (error) => this.logger.warn("transparency sequencer run failed", { error }));
  }
}
