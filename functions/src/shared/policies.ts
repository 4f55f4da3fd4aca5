/**
 * Who may do what to which record, in one place. Each operation asks one of these at the point where
 * it has read what it needs; the answer's error stays with the operation (to a stranger, a record that
 * exists is NOT_FOUND, so its existence is not revealed). Plain data in, a boolean out: no reads here.
 */

/** A message, a file: sent by one user to another. */
interface Addressed {
  receiverId: string;
}

interface FileParties extends Addressed {
  uploaderId: string;
}

interface ExchangeParties {
  initiatorId: string;
  targetId: string;
}

/** What one user's contacts and blocks say about another (UserRepository.presenceFacts). */
export interface PresenceFacts {
  /** `from` has `to` in their contacts. */
  fromHasTo: boolean;
  toHasFrom: boolean;
  fromBlocksTo: boolean;
  toBlocksFrom: boolean;
}

/** The two parties of a file: its uploader and its receiver. */
export const isFileParty = (userId: string, file: FileParties): boolean => file.uploaderId === userId || file.receiverId === userId;

/** A live file is seen by its uploader and its receiver, by nobody else. */
export const canSeeFile = (userId: string, file: FileParties, live: boolean): boolean => live && isFileParty(userId, file);

/**
 * A file's parties learn that it was deleted (downloaded, expired: 410 FILE_GONE); anyone else learns
 * nothing (404), as for a file that never existed.
 */
export const canKnowFileIsGone = (userId: string, file: FileParties): boolean => isFileParty(userId, file);

/**
 * Only the receiver's complete download uses up a delete-after-download file: the uploader may fetch
 * their own file (to check it) without deleting it for the receiver.
 */
export const downloadDeletesFile = (userId: string, file: FileParties & { deleteAfterDownload?: boolean }): boolean =>
  file.deleteAfterDownload === true && file.receiverId === userId;

/** Only the uploader deletes (it frees their quota); the receiver may only read. */
export const canDeleteFile = (userId: string, file: FileParties): boolean => file.uploaderId === userId;

/** Only its receiver acknowledges a message, marking it delivered. */
export const canAcknowledgeMessage = (userId: string, message: Addressed): boolean => message.receiverId === userId;

/** Only the sender a `message_expired` notice went to acknowledges it. */
export const canAcknowledgeExpiryNotice = (userId: string, notice: { senderId: string }): boolean => notice.senderId === userId;

/** An exchange is seen by its two participants, by nobody else. */
export const canSeeExchange = (userId: string, exchange: ExchangeParties): boolean =>
  exchange.initiatorId === userId || exchange.targetId === userId;

/** Only the target answers an exchange. */
export const canRespondToExchange = (userId: string, exchange: ExchangeParties): boolean => exchange.targetId === userId;

/** The request is acknowledged by the target it went to, the response by the initiator. */
export const canAcknowledgeExchangeNotice = (userId: string, exchange: ExchangeParties, notice: "request" | "response"): boolean =>
  (notice === "request" ? exchange.targetId : exchange.initiatorId) === userId;

/** A socket joins only its own user's room, so nobody else's messages reach it. */
export const canJoinRoom = (userId: string, roomUserId: string): boolean => roomUserId === userId;

/** Typing indicators may be sent to one's own contacts (the answer depends only on one's own list). */
export const canIndicateTypingTo = (facts: PresenceFacts): boolean => facts.fromHasTo;

/** Presence and typing flow only between mutual contacts with no block either way. */
export const arePresencePeers = (facts: PresenceFacts): boolean =>
  facts.fromHasTo && facts.toHasFrom && !facts.fromBlocksTo && !facts.toBlocksFrom;
