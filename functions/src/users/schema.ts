import { z } from "zod";
import { idOf, queryCount, text } from "../shared/validation";
import { doneResponseSchema, isoTime, succeeded } from "../shared/responses";
import { blockedUserSchema, contactSchema, profileSchema, publicUserSchema } from "./presenters";
import type { ContactCursor } from "./repository";

/** A username as registration takes it (auth/schema.ts) and contacts are added by it. */
export const usernameSchema = text()
  .regex(/^[A-Za-z0-9_]{3,30}$/, "must be 3-30 letters, digits or underscores")
  // The lower-cased username is a Firestore document id (usernames/{usernameLower}), and Firestore
  // reserves ids matching __.*__: such a name would fail deep in a transaction instead of here.
  .refine((username) => !/^__.*__$/.test(username), "must not both start and end with two underscores")
  .describe("3-30 letters, digits or underscores (not both starting and ending with `__`); unique case-insensitively");

export const addContactSchema = z.object({ username: usernameSchema });

export const contactParamsSchema = z.object({ contactId: idOf("user") });

export const blockSchema = z.object({ userId: idOf("user") });
export const blockParamsSchema = z.object({ userId: idOf("user") });

/**
 * A page of GET /users/contacts. Without `limit` the page holds every contact a user can have
 * (MAX_CONTACTS), so the guide's plain call still gets the whole list; `nextCursor` is then null.
 */
export const CONTACTS_MAX_LIMIT = 1000; // = MAX_CONTACTS (service.ts)

/** The opaque cursor: base64url of "<addedAt ms>.<contact id>". */
export function encodeContactCursor(cursor: ContactCursor): string {
  return Buffer.from(`${cursor.addedAtMs}.${cursor.id}`).toString("base64url");
}

const CURSOR_PATTERN = /^(\d{1,15})\.(user_[A-Za-z0-9_-]{1,64})$/;

export const contactsQuerySchema = z.object({
  limit: queryCount(CONTACTS_MAX_LIMIT, CONTACTS_MAX_LIMIT),
  cursor: z
    .string()
    .max(200, "is not a cursor from this endpoint")
    .transform((value, ctx): ContactCursor => {
      const match = CURSOR_PATTERN.exec(Buffer.from(value, "base64url").toString("utf8"));
      if (!match) {
        ctx.addIssue({ code: "custom", message: "is not a cursor from this endpoint" });
        return z.NEVER;
      }
      return { addedAtMs: Number(match[1]), id: match[2]! };
    })
    .optional(),
});
export type ContactsQuery = z.infer<typeof contactsQuerySchema>;

export const SEARCH_DEFAULT_LIMIT = 10;
export const SEARCH_MAX_LIMIT = 25;

export const searchQuerySchema = z.object({
  q: text()
    .min(1, "is required")
    .max(30, "must be at most 30 characters")
    .regex(/^[A-Za-z0-9_]+$/, "must be letters, digits or underscores"),
  limit: queryCount(SEARCH_MAX_LIMIT, SEARCH_DEFAULT_LIMIT),
});

// Responses (the records themselves are in presenters.ts, which builds them).
export const profileResponseSchema = succeeded({ user: profileSchema });
export const contactsResponseSchema = succeeded({
  contacts: z.array(contactSchema).describe("In the order they were added"),
  nextCursor: z
    .string()
    .nullable()
    .describe("Pass as `cursor` for the next page; null when this page is the last"),
});
export const addContactResponseSchema = succeeded({ contact: publicUserSchema.extend({ addedAt: isoTime() }) });
export const removeContactResponseSchema = doneResponseSchema;
export const searchResponseSchema = succeeded({ users: z.array(publicUserSchema) });
export const blockResponseSchema = succeeded({});
export const unblockResponseSchema = succeeded({});
export const blockedUsersResponseSchema = succeeded({ users: z.array(blockedUserSchema).describe("In the order they were blocked") });
