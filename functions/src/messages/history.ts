import { isExpired } from "./expiry";
import { toMessageRecord } from "./presenters";
import type { MessageRecord } from "./record";
import type { ConversationCursor, MessageRepository } from "./repository";
import type { HistoryQuery } from "./schema";

/**
 * At most this many expired messages are read past in one history request. Expired messages wait for
 * their deletion (the sweep deletes undelivered ones within a minute, the TTL policy delivered ones
 * within about a day) and are skipped meanwhile; past this many the page is answered as far as it got,
 * with `hasMore: true`, rather than reading on without bound. With the sweep and TTL keeping up, a
 * conversation never holds that many expired messages together.
 */
export const HISTORY_MAX_EXPIRED_SKIPPED = 1000;
/** Positions read per query while skipping `offset` messages (projections: no ciphertext). */
const SKIP_CHUNK = 300;
/** The most extra messages one read asks for beyond those still wanted, when expired ones were met. */
const MAX_SLACK = 100;

/**
 * A page of the conversation between the caller and a contact, both directions. Pages go from newest
 * to oldest (`before` is the oldest message of the previous page); within a page messages are in
 * ascending time, as a chat shows them. Only the participants can ask: the conversation id is made
 * from the caller's own id.
 *
 * Expired messages (past expiresAt, not deleted yet) are in no page and not in `total`, and pages stay
 * full around them: `offset` counts live messages only, and the page is read on, query after query,
 * until it holds `limit` live messages (plus one, to know whether older ones exist) or the
 * conversation ends. A firestore `offset` or a single `limit` query would count expired ones and
 * answer short or empty pages while older messages exist. Every decision uses one `now`, so `total`
 * and the page agree on what has expired.
 */
export async function conversationPage(messages: MessageRepository, now: Date, callerId: string, contactId: string, query: HistoryQuery) {
  const [page, total] = await Promise.all([readPage(messages, now, callerId, contactId, query), messages.countConversation(callerId, contactId, now)]);
  return { messages: page.newestFirst.slice(0, query.limit).reverse(), hasMore: page.hasMore, total };
}

async function readPage(
  messages: MessageRepository,
  now: Date,
  callerId: string,
  contactId: string,
  query: HistoryQuery,
): Promise<{ newestFirst: MessageRecord[]; hasMore: boolean }> {
  let cursor: ConversationCursor | undefined = query.before ? await messages.conversationCursor(callerId, contactId, query.before) : undefined;
  let expiredSkipped = 0;
  const slack = () => Math.min(expiredSkipped, MAX_SLACK);

  // Skip `offset` live messages, reading positions only.
  let toSkip = query.offset;
  while (toSkip > 0) {
    const chunk = await messages.conversationPositions(callerId, contactId, cursor, Math.min(SKIP_CHUNK, toSkip + slack()));
    for (const position of chunk.items) {
      cursor = position.cursor;
      if (isExpired(position, now)) expiredSkipped += 1;
      else toSkip -= 1;
      if (toSkip === 0) break;
    }
    if (toSkip > 0 && chunk.exhausted) return { newestFirst: [], hasMore: false };
    if (toSkip > 0 && expiredSkipped >= HISTORY_MAX_EXPIRED_SKIPPED) return { newestFirst: [], hasMore: true };
  }

  // Then read until the page holds limit + 1 live messages, or the conversation ends.
  const live: MessageRecord[] = [];
  for (;;) {
    const wanted = query.limit + 1 - live.length;
    const chunk = await messages.conversationChunk(callerId, contactId, cursor, wanted + slack());
    for (const item of chunk.items) {
      cursor = item.cursor;
      if (isExpired(item.stored, now)) expiredSkipped += 1;
      else live.push(toMessageRecord(item.id, item.stored));
      if (live.length > query.limit) break;
    }
    if (live.length > query.limit) return { newestFirst: live, hasMore: true };
    if (chunk.exhausted) return { newestFirst: live, hasMore: false };
    if (expiredSkipped >= HISTORY_MAX_EXPIRED_SKIPPED) return { newestFirst: live, hasMore: true };
  }
}
