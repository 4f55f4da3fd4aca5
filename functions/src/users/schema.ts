import { z } from "zod";
import { idOf, text } from "../shared/validation";
import { usernameSchema } from "../auth/schema";
import { doneResponseSchema, isoTime, succeeded } from "../shared/responses";
import { blockedUserSchema, contactSchema, profileSchema, publicUserSchema } from "./presenters";

export const addContactSchema = z.object({ username: usernameSchema });
export type AddContactInput = z.infer<typeof addContactSchema>;

export const contactParamsSchema = z.object({ contactId: idOf("user") });

export const blockSchema = z.object({ userId: idOf("user") });
export type BlockInput = z.infer<typeof blockSchema>;
export const blockParamsSchema = z.object({ userId: idOf("user") });

export const SEARCH_DEFAULT_LIMIT = 10;
export const SEARCH_MAX_LIMIT = 25;

export const searchQuerySchema = z.object({
  q: text()
    .min(1, "is required")
    .max(30, "must be at most 30 characters")
    .regex(/^[A-Za-z0-9_]+$/, "must be letters, digits or underscores"),
  limit: z.coerce
    .number({ error: "must be a number" })
    .int("must be an integer")
    .min(1, "must be at least 1")
    .max(SEARCH_MAX_LIMIT, `must be at most ${SEARCH_MAX_LIMIT}`)
    .default(SEARCH_DEFAULT_LIMIT),
});
export type SearchQuery = z.infer<typeof searchQuerySchema>;

// Responses (the records themselves are in presenters.ts, which builds them).
export const profileResponseSchema = succeeded({ user: profileSchema });
export const contactsResponseSchema = succeeded({ contacts: z.array(contactSchema).describe("In the order they were added") });
export const addContactResponseSchema = succeeded({ contact: publicUserSchema.extend({ addedAt: isoTime() }) });
export const removeContactResponseSchema = doneResponseSchema;
export const searchResponseSchema = succeeded({ users: z.array(publicUserSchema) });
export const blockResponseSchema = succeeded({});
export const unblockResponseSchema = succeeded({});
export const blockedUsersResponseSchema = succeeded({ users: z.array(blockedUserSchema).describe("In the order they were blocked") });
