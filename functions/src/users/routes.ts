import { caller } from "../shared/caller";
import { operationOf, type OperationGroup } from "../shared/operations";
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
} from "./schema";
import type { UserService } from "./service";

interface UserRouteDeps {
  users: UserService;
}

const operation = operationOf<UserRouteDeps>();

export const userOperations: OperationGroup<UserRouteDeps> = {
  prefix: "/users",
  tag: "Users",
  operations: [
    operation({
      operationId: "getProfile",
      method: "get",
      path: "/profile",
      summary: "The caller's profile",
      auth: "session",
      success: { status: 200, description: "The profile", schema: profileResponseSchema },
      errors: ["NOT_FOUND"],
      handle: async ({ res }, { users }) => ({ user: await users.profile(caller(res).userId) }),
    }),
    operation({
      operationId: "listContacts",
      method: "get",
      path: "/contacts",
      summary: "The caller's contacts, with presence",
      description:
        "`isOnline` and `lastSeen` are shown only for mutual contacts (each has the other as a contact) when neither blocks the other; for anyone else `isOnline` is false and `lastSeen` null. In pages, in the order they were added. Without `limit` a page holds up to 1000 contacts (the most a user can have), so the plain call returns the whole list and `nextCursor` is null. With `limit`, pass the answer's `nextCursor` as `cursor` for the next page. Limited to 30 calls a minute per user, across all instances (`CONTACT_READ_LIMIT`).",
      auth: "session",
      limits: ["contactReads"],
      query: contactsQuerySchema,
      success: { status: 200, description: "The contacts, in the order they were added", schema: contactsResponseSchema },
      errors: [],
      handle: ({ query, res }, { users }) => users.contactsPage(caller(res).userId, query),
    }),
    operation({
      operationId: "addContact",
      method: "post",
      path: "/add-contact",
      summary: "Add a contact by username",
      description: "One direction: adding someone puts them in your list, not you in theirs. At most 1000 contacts.",
      auth: "session",
      limits: ["contactWrites"],
      body: addContactSchema,
      success: { status: 201, description: "Added", schema: addContactResponseSchema },
      errors: ["NOT_FOUND", "ALREADY_EXISTS", "LIMIT_EXCEEDED"],
      handle: async ({ body, res }, { users }) => ({ contact: await users.addContact(caller(res).userId, body.username) }),
    }),
    operation({
      operationId: "removeContact",
      method: "delete",
      path: "/contacts/{contactId}",
      summary: "Remove a contact",
      auth: "session",
      limits: ["contactWrites"],
      params: contactParamsSchema,
      success: { status: 200, description: "Removed", schema: removeContactResponseSchema },
      errors: ["NOT_FOUND"],
      handle: async ({ params, res }, { users }) => {
        await users.removeContact(caller(res).userId, params.contactId);
        return { message: "Contact removed" };
      },
    }),
    // Blocking and unblocking count against the contact-writes limit: both change who reaches whom.
    operation({
      operationId: "blockUser",
      method: "post",
      path: "/block",
      summary: "Block a user",
      description:
        "Idempotent. While you block someone, their messages, key exchanges and files to you are refused with 403 BLOCKED, their typing indicators to you are dropped, and neither of you sees the other's presence. Messages stored before the block stay in history. At most 1000 blocked users; counted against the contact-writes limit.",
      auth: "session",
      limits: ["contactWrites"],
      body: blockSchema,
      success: { status: 200, description: "Blocked (or already blocked)", schema: blockResponseSchema },
      errors: ["NOT_FOUND", "LIMIT_EXCEEDED", "RATE_LIMITED"],
      handle: async ({ body, res }, { users }) => {
        await users.block(caller(res).userId, body.userId);
        return {};
      },
    }),
    operation({
      operationId: "unblockUser",
      method: "delete",
      path: "/block/{userId}",
      summary: "Unblock a user",
      description: "Idempotent: unblocking someone you do not block succeeds too. Counted against the contact-writes limit.",
      auth: "session",
      limits: ["contactWrites"],
      params: blockParamsSchema,
      success: { status: 200, description: "Not blocked (any more)", schema: unblockResponseSchema },
      errors: ["RATE_LIMITED"],
      handle: async ({ params, res }, { users }) => {
        await users.unblock(caller(res).userId, params.userId);
        return {};
      },
    }),
    operation({
      operationId: "listBlockedUsers",
      method: "get",
      path: "/blocked",
      summary: "The users the caller blocks",
      auth: "session",
      success: { status: 200, description: "The blocked users, in the order they were blocked", schema: blockedUsersResponseSchema },
      errors: [],
      handle: async ({ res }, { users }) => ({ users: await users.blocked(caller(res).userId) }),
    }),
    operation({
      operationId: "searchUsers",
      method: "get",
      path: "/search",
      summary: "Find users by username prefix",
      description: "Case-insensitive prefix match; the caller is excluded; emails are never searchable or shown.",
      auth: "session",
      limits: ["search"],
      query: searchQuerySchema,
      success: { status: 200, description: "Matching users", schema: searchResponseSchema },
      errors: [],
      handle: async ({ query, res }, { users }) => ({ users: await users.search(caller(res).userId, query.q, query.limit) }),
    }),
  ],
};
