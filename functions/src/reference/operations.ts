import { z } from "zod";
import {
  changePasswordResponseSchema,
  changePasswordSchema,
  loginResponseSchema,
  loginSchema,
  logoutAllResponseSchema,
  logoutResponseSchema,
  refreshResponseSchema,
  refreshSchema,
  registerResponseSchema,
  registerSchema,
} from "../auth/schema";
import {
  deleteFileResponseSchema,
  fileMetaResponseSchema,
  fileParamsSchema,
  uploadFieldsSchema,
  uploadResponseSchema,
  FILE_PART,
} from "../files/schema";
import {
  exchangeParamsSchema,
  exchangeResponseSchema,
  initiateResponseSchema,
  initiateSchema,
  pendingResponseSchema,
  respondResponseSchema,
  respondSchema,
} from "../keyexchange/schema";
import {
  historyParamsSchema,
  historyQuerySchema,
  historyResponseSchema,
  sendMessageDuplicateResponseSchema,
  sendMessageResponseSchema,
  sendMessageSchema,
} from "../messages/schema";
import type { ErrorCode } from "../shared/errors";
import { errorEnvelopeSchema, isoTime, succeeded } from "../shared/responses";
import {
  addContactResponseSchema,
  addContactSchema,
  blockedUsersResponseSchema,
  blockParamsSchema,
  blockResponseSchema,
  blockSchema,
  contactParamsSchema,
  contactsQuerySchema,
  contactsResponseSchema,
  profileResponseSchema,
  removeContactResponseSchema,
  searchQuerySchema,
  searchResponseSchema,
  unblockResponseSchema,
} from "../users/schema";

/**
 * Every REST operation the API serves, with the zod schemas its route validates with and answers with.
 * The OpenAPI document (openapi.ts) is generated from this table; test/openapi.test.ts checks that the
 * table lists exactly the routes the app serves, and that real answers match the documented schemas.
 * Paths are relative to /api, with OpenAPI's `{param}` placeholders.
 */

type ZodObject = z.ZodObject<z.ZodRawShape>;

export interface SuccessResponse {
  status: 200 | 201;
  description: string;
  /** The JSON body; absent for a binary download. */
  schema?: z.ZodType;
  /** A binary body (application/octet-stream). */
  binary?: true;
  headers?: Record<string, string>;
}

export interface Operation {
  /** Stable: the typed client's method for this operation is named after it. */
  operationId: string;
  method: "get" | "post" | "delete";
  path: string;
  tag: Tag;
  summary: string;
  description?: string;
  /** Needs `Authorization: Bearer <token>`. */
  auth: boolean;
  params?: ZodObject;
  query?: ZodObject;
  /** A JSON request body. */
  body?: z.ZodType;
  /** A multipart/form-data body: text parts validated by `fields`, plus one binary part. */
  multipart?: { fields: ZodObject; filePart: string; fileDescription: string };
  success: SuccessResponse;
  /** Another success the operation may answer with instead: a JSON body under its own component name. */
  alsoSucceeds?: SuccessResponse & { schema: z.ZodType; component: string };
  /** The errors specific to this operation; the generic ones (auth, body validation) are added by openapi.ts. */
  errors: ErrorCode[];
  /** An error answer that is more than the plain envelope, by HTTP status. */
  errorBodies?: Record<number, z.ZodType>;
}

export const TAGS = {
  Health: "Liveness of the API and of Firestore.",
  Auth: "Registration, login, token refresh, logout and password change.",
  Users: "The caller's profile, contacts and user search.",
  Messages: "Encrypted messages: send and read history. Realtime delivery is over Socket.IO (x-socket-events).",
  KeyExchange: "ECDH over signed ephemeral keys; the server verifies and relays, never sees a private key.",
  Files: "Encrypted file sharing between an uploader and a receiver.",
  Reference: "This document.",
} as const;
export type Tag = keyof typeof TAGS;

/** GET /health's answer (shared/health.ts); 503 adds the error envelope to the same fields. */
export const healthResponseSchema = succeeded({
  status: z.literal("ok"),
  firestore: z.literal("ok"),
  time: isoTime(),
});

/** GET /health's 503: the envelope plus the same fields. */
export const healthUnavailableSchema = errorEnvelopeSchema.extend({
  status: z.literal("degraded"),
  firestore: z.literal("unavailable"),
  time: isoTime(),
});

const RATE_LIMIT_HEADERS = {
  "RateLimit-Limit": "Requests allowed in the window",
  "RateLimit-Remaining": "Requests left in the window",
  "RateLimit-Reset": "Seconds until the window resets",
};

export const OPERATIONS: Operation[] = [
  {
    operationId: "getHealth",
    method: "get",
    path: "/health",
    tag: "Health",
    summary: "Health check",
    description: "200 when Firestore answers; 503 SERVICE_UNAVAILABLE (with `firestore: \"unavailable\"`) when it does not.",
    auth: false,
    success: { status: 200, description: "The API and Firestore are up", schema: healthResponseSchema },
    errors: ["SERVICE_UNAVAILABLE"],
    errorBodies: { 503: healthUnavailableSchema },
  },
  {
    operationId: "getOpenApiDocument",
    method: "get",
    path: "/openapi.json",
    tag: "Reference",
    summary: "This OpenAPI document",
    description: "Generated from the zod schemas the routes validate with. The socket events are in `x-socket-events`.",
    auth: false,
    success: { status: 200, description: "The OpenAPI 3.1 document", schema: z.record(z.string(), z.unknown()) },
    errors: [],
  },

  {
    operationId: "register",
    method: "post",
    path: "/auth/register",
    tag: "Auth",
    summary: "Register with an identity public key",
    description:
      "`password`: 8 characters to 72 bytes of UTF-8 (longer is refused, never truncated). `publicKey`: PEM SPKI EC key on P-256 or P-384, stored exactly as sent. Email and username are unique case-insensitively.",
    auth: false,
    body: registerSchema,
    success: { status: 201, description: "Registered and logged in", schema: registerResponseSchema },
    errors: ["EMAIL_TAKEN", "USERNAME_TAKEN"],
  },
  {
    operationId: "login",
    method: "post",
    path: "/auth/login",
    tag: "Auth",
    summary: "Log in",
    description:
      "A wrong password and an unknown email give the same 401. Throttled per client address, per account and client address, and per account from every address (a much higher ceiling): 429 with `Retry-After`. Another address's failures never throttle yours below that ceiling.",
    auth: false,
    body: loginSchema,
    success: { status: 200, description: "Logged in, with the caller's contacts", schema: loginResponseSchema },
    errors: ["UNAUTHORIZED", "RATE_LIMITED"],
  },
  {
    operationId: "refresh",
    method: "post",
    path: "/auth/refresh",
    tag: "Auth",
    summary: "Rotate the refresh token",
    description:
      "Presenting a refresh token this session already replaced revokes the whole session (401); any other wrong secret is a plain 401 and the session lives on. Refresh never extends a session past its absolute lifetime (90 days from login by default).",
    auth: false,
    body: refreshSchema,
    success: { status: 200, description: "A new access token and a new refresh token", schema: refreshResponseSchema },
    errors: ["UNAUTHORIZED"],
  },
  {
    operationId: "logout",
    method: "post",
    path: "/auth/logout",
    tag: "Auth",
    summary: "Revoke the session",
    description: "The access token and refresh token are refused from then on, and the session's sockets are disconnected.",
    auth: true,
    success: { status: 200, description: "Logged out", schema: logoutResponseSchema },
    errors: [],
  },
  {
    operationId: "logoutAll",
    method: "post",
    path: "/auth/logout-all",
    tag: "Auth",
    summary: "Revoke every session of the caller",
    description:
      "Every session of the user ends, the caller's included: their access and refresh tokens are refused from then on, and their sockets are disconnected.",
    auth: true,
    success: { status: 200, description: "Every session ended; `revokedSessions` counts them", schema: logoutAllResponseSchema },
    errors: [],
  },
  {
    operationId: "changePassword",
    method: "post",
    path: "/auth/change-password",
    tag: "Auth",
    summary: "Change the password",
    description:
      "`newPassword` follows the registration rules. The caller's session stays valid; every other session ends (its sockets are disconnected). A wrong `currentPassword` is 401 and counts as a failed login against the login limits (429 with `Retry-After`).",
    auth: true,
    body: changePasswordSchema,
    success: { status: 200, description: "Password changed", schema: changePasswordResponseSchema },
    errors: ["UNAUTHORIZED", "RATE_LIMITED"],
  },

  {
    operationId: "getProfile",
    method: "get",
    path: "/users/profile",
    tag: "Users",
    summary: "The caller's profile",
    auth: true,
    success: { status: 200, description: "The profile", schema: profileResponseSchema },
    errors: ["NOT_FOUND"],
  },
  {
    operationId: "listContacts",
    method: "get",
    path: "/users/contacts",
    tag: "Users",
    summary: "The caller's contacts, with presence",
    description:
      "`isOnline` and `lastSeen` are shown only for mutual contacts (each has the other as a contact) when neither blocks the other; for anyone else `isOnline` is false and `lastSeen` null. In pages, in the order they were added. Without `limit` a page holds up to 1000 contacts (the most a user can have), so the plain call returns the whole list and `nextCursor` is null. With `limit`, pass the answer's `nextCursor` as `cursor` for the next page. Limited to 30 calls a minute per user, across all instances (`CONTACT_READ_LIMIT`).",
    auth: true,
    query: contactsQuerySchema,
    success: { status: 200, description: "The contacts, in the order they were added", schema: contactsResponseSchema },
    errors: [],
  },
  {
    operationId: "addContact",
    method: "post",
    path: "/users/add-contact",
    tag: "Users",
    summary: "Add a contact by username",
    description: "One direction: adding someone puts them in your list, not you in theirs. At most 1000 contacts.",
    auth: true,
    body: addContactSchema,
    success: { status: 201, description: "Added", schema: addContactResponseSchema },
    errors: ["NOT_FOUND", "ALREADY_EXISTS", "LIMIT_EXCEEDED"],
  },
  {
    operationId: "removeContact",
    method: "delete",
    path: "/users/contacts/{contactId}",
    tag: "Users",
    summary: "Remove a contact",
    auth: true,
    params: contactParamsSchema,
    success: { status: 200, description: "Removed", schema: removeContactResponseSchema },
    errors: ["NOT_FOUND"],
  },
  {
    operationId: "blockUser",
    method: "post",
    path: "/users/block",
    tag: "Users",
    summary: "Block a user",
    description:
      "Idempotent. While you block someone, their messages, key exchanges and files to you are refused with 403 BLOCKED, their typing indicators to you are dropped, and neither of you sees the other's presence. Messages stored before the block stay in history. At most 1000 blocked users; counted against the contact-writes limit.",
    auth: true,
    body: blockSchema,
    success: { status: 200, description: "Blocked (or already blocked)", schema: blockResponseSchema },
    errors: ["NOT_FOUND", "LIMIT_EXCEEDED", "RATE_LIMITED"],
  },
  {
    operationId: "unblockUser",
    method: "delete",
    path: "/users/block/{userId}",
    tag: "Users",
    summary: "Unblock a user",
    description: "Idempotent: unblocking someone you do not block succeeds too. Counted against the contact-writes limit.",
    auth: true,
    params: blockParamsSchema,
    success: { status: 200, description: "Not blocked (any more)", schema: unblockResponseSchema },
    errors: ["RATE_LIMITED"],
  },
  {
    operationId: "listBlockedUsers",
    method: "get",
    path: "/users/blocked",
    tag: "Users",
    summary: "The users the caller blocks",
    auth: true,
    success: { status: 200, description: "The blocked users, in the order they were blocked", schema: blockedUsersResponseSchema },
    errors: [],
  },
  {
    operationId: "searchUsers",
    method: "get",
    path: "/users/search",
    tag: "Users",
    summary: "Find users by username prefix",
    description: "Case-insensitive prefix match; the caller is excluded; emails are never searchable or shown.",
    auth: true,
    query: searchQuerySchema,
    success: { status: 200, description: "Matching users", schema: searchResponseSchema },
    errors: [],
  },

  {
    operationId: "sendMessage",
    method: "post",
    path: "/messages/send",
    tag: "Messages",
    summary: "Send an encrypted message",
    description:
      "Checked in this order, and nothing is stored on any refusal: shape (400); a retry (a nonce this sender used within the last 15 minutes, with every other field equal to the message stored under it) answers 200 with that message's original answer plus `duplicate: true`, storing nothing and taking no rate; clock (`timestamp` within 5 minutes back and 60 s ahead, else 400 STALE_TIMESTAMP); receiver exists (404); the receiver does not block the caller (403 BLOCKED); rate per pair (429); nonce unused by this sender (409 REPLAY_DETECTED); `sequenceNumber` an integer from 1 to 2^31-1 and at most 1000 greater than the pair's last (else 400 VALIDATION_ERROR with `details.lastSequenceNumber`) and greater than the last (else 409 REPLAY_DETECTED with `details.lastSequenceNumber`); absent, the server assigns last + 1. `encryptedContent` over 98,304 characters is 413.",
    auth: true,
    body: sendMessageSchema,
    success: { status: 201, description: "Stored", schema: sendMessageResponseSchema, headers: RATE_LIMIT_HEADERS },
    alsoSucceeds: {
      status: 200,
      description: "A retry of a message already stored: its original answer, plus `duplicate: true`; nothing stored",
      schema: sendMessageDuplicateResponseSchema,
      component: "SendMessageDuplicateResponse",
    },
    errors: ["STALE_TIMESTAMP", "NOT_FOUND", "BLOCKED", "REPLAY_DETECTED", "RATE_LIMITED"],
  },
  {
    operationId: "getHistory",
    method: "get",
    path: "/messages/{contactId}",
    tag: "Messages",
    summary: "The conversation with a contact, a page at a time",
    description:
      "Pages go newest first; within a page messages are in ascending time. `before` is a message id (the oldest of the page you have); `offset` skips that many newer messages and scans what it skips (prefer `before`).",
    auth: true,
    params: historyParamsSchema,
    query: historyQuerySchema,
    success: { status: 200, description: "One page", schema: historyResponseSchema },
    errors: ["NOT_FOUND"],
  },

  {
    operationId: "initiateKeyExchange",
    method: "post",
    path: "/keyexchange/initiate",
    tag: "KeyExchange",
    summary: "Start a key exchange",
    description:
      "`signature`: ECDSA by the caller's registered key over the UTF-8 bytes of `ephemeralPublicKey` exactly as sent (SHA-256 for P-256, SHA-384 for P-384), base64 of IEEE P1363 (what Web Crypto returns) or DER. Older pending exchanges between the two users become `superseded`. The target gets `key_exchange_request`. A target who blocks the caller answers 403 BLOCKED.",
    auth: true,
    body: initiateSchema,
    success: { status: 201, description: "Pending until the target responds", schema: initiateResponseSchema },
    errors: ["INVALID_SIGNATURE", "NOT_FOUND", "BLOCKED"],
  },
  {
    operationId: "respondKeyExchange",
    method: "post",
    path: "/keyexchange/respond",
    tag: "KeyExchange",
    summary: "Complete a key exchange (the target only)",
    description:
      "Signed like initiate; the ephemeral key must be on the initiator's curve. The initiator gets 403, anyone else 404. The initiator gets `key_exchange_response`.",
    auth: true,
    body: respondSchema,
    success: { status: 200, description: "Completed", schema: respondResponseSchema },
    errors: ["INVALID_SIGNATURE", "FORBIDDEN", "NOT_FOUND", "EXCHANGE_NOT_PENDING", "EXCHANGE_EXPIRED"],
  },
  {
    operationId: "listPendingKeyExchanges",
    method: "get",
    path: "/keyexchange/pending",
    tag: "KeyExchange",
    summary: "Pending exchanges, incoming and outgoing",
    auth: true,
    success: { status: 200, description: "Pending exchanges", schema: pendingResponseSchema },
    errors: [],
  },
  {
    operationId: "getKeyExchange",
    method: "get",
    path: "/keyexchange/{exchangeId}",
    tag: "KeyExchange",
    summary: "One exchange (its two participants only)",
    auth: true,
    params: exchangeParamsSchema,
    success: { status: 200, description: "The exchange", schema: exchangeResponseSchema },
    errors: ["NOT_FOUND"],
  },

  {
    operationId: "uploadFile",
    method: "post",
    path: "/files/upload",
    tag: "Files",
    summary: "Upload an encrypted file",
    description:
      "multipart/form-data, parts in any order. Files over FILE_MAX_BYTES (25 MiB) are 413 PAYLOAD_TOO_LARGE; over the uploader's quota 413 QUOTA_EXCEEDED; 30 uploads per user per hour. The filename is sanitized (control and invisible characters removed, last path segment kept), never refused for that. A receiver who blocks the uploader answers 403 BLOCKED (nothing is kept).",
    auth: true,
    multipart: {
      fields: uploadFieldsSchema,
      filePart: FILE_PART,
      fileDescription: "The ciphertext (a Blob in FormData); not empty. Its own filename and content type are ignored.",
    },
    success: { status: 201, description: "Stored", schema: uploadResponseSchema, headers: RATE_LIMIT_HEADERS },
    errors: ["NOT_FOUND", "BLOCKED", "QUOTA_EXCEEDED", "RATE_LIMITED", "SERVICE_UNAVAILABLE"],
  },
  {
    operationId: "downloadFile",
    method: "get",
    path: "/files/{fileId}",
    tag: "Files",
    summary: "Download the encrypted bytes",
    description:
      "Exactly as uploaded, as `application/octet-stream` with `Content-Disposition: attachment`. Decrypt with the record's `iv` and `authTag`. 404 for anyone but the uploader and the receiver, and once expired.",
    auth: true,
    params: fileParamsSchema,
    success: { status: 200, description: "The ciphertext", binary: true },
    errors: ["NOT_FOUND", "SERVICE_UNAVAILABLE"],
  },
  {
    operationId: "getFileMeta",
    method: "get",
    path: "/files/{fileId}/meta",
    tag: "Files",
    summary: "A file's record",
    auth: true,
    params: fileParamsSchema,
    success: { status: 200, description: "The record", schema: fileMetaResponseSchema },
    errors: ["NOT_FOUND", "SERVICE_UNAVAILABLE"],
  },
  {
    operationId: "deleteFile",
    method: "delete",
    path: "/files/{fileId}",
    tag: "Files",
    summary: "Delete a file (the uploader only)",
    description: "Gives its bytes back to the uploader's quota. The receiver gets 403, anyone else 404.",
    auth: true,
    params: fileParamsSchema,
    success: { status: 200, description: "Deleted", schema: deleteFileResponseSchema },
    errors: ["FORBIDDEN", "NOT_FOUND", "SERVICE_UNAVAILABLE"],
  },
];
