import type { MessageRepository } from "./repository";
import type { HistoryQuery } from "./schema";

/**
 * A page of the conversation between the caller and a contact, both directions. Pages go from newest
 * to oldest (`before` is the oldest message of the previous page); within a page messages are in
 * ascending time, as a chat shows them. Only the participants can ask: the conversation id is made
 * from the caller's own id.
 */
export async function conversationPage(messages: MessageRepository, callerId: string, contactId: string, query: HistoryQuery) {
  const [newestFirst, total] = await Promise.all([
    messages.page(callerId, contactId, { limit: query.limit, offset: query.offset, beforeId: query.before }),
    messages.countConversation(callerId, contactId),
  ]);
  const hasMore = newestFirst.length > query.limit;
  return { messages: newestFirst.slice(0, query.limit).reverse(), hasMore, total };
}
