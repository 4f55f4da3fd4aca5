import { z } from "zod";
import { text } from "../shared/validation";
import { MAX_PUBLIC_KEY_PEM_LENGTH, parseEcPublicKeyPem } from "../shared/keys";
import { doneResponseSchema, succeeded } from "../shared/responses";
import { contactSchema, profileSchema } from "../users/presenters";
import { usernameSchema } from "../users/schema";

/** bcrypt reads at most 72 bytes; longer passwords are refused rather than silently truncated. */
export const MAX_PASSWORD_BYTES = 72;
export const MIN_PASSWORD_LENGTH = 8;

export const emailSchema = text()
  .trim()
  .max(254, "must be at most 254 characters")
  .pipe(z.email({ error: "must be a valid email address" }))
  .transform((email) => email.toLowerCase())
  .describe("A valid email address; stored lower-cased, unique case-insensitively");

export const passwordSchema = text()
  .min(MIN_PASSWORD_LENGTH, `must be at least ${MIN_PASSWORD_LENGTH} characters`)
  .refine(
    (password) => Buffer.byteLength(password, "utf8") <= MAX_PASSWORD_BYTES,
    `must be at most ${MAX_PASSWORD_BYTES} bytes in UTF-8`,
  )
  .describe(`${MIN_PASSWORD_LENGTH} characters to ${MAX_PASSWORD_BYTES} bytes of UTF-8 (bcrypt's limit: longer is refused, never truncated)`);

export const publicKeySchema = text()
  .max(MAX_PUBLIC_KEY_PEM_LENGTH, `must be at most ${MAX_PUBLIC_KEY_PEM_LENGTH} characters`)
  .refine((pem) => parseEcPublicKeyPem(pem) !== undefined, "must be a PEM SPKI EC public key on P-256 or P-384")
  .describe("The identity key: PEM SPKI (`-----BEGIN PUBLIC KEY-----`) EC public key on P-256 or P-384, stored exactly as sent");

/** What the device's owner calls it in the device list; omitted, it is derived from the User-Agent. */
export const deviceNameSchema = text()
  .trim()
  .min(1, "must be 1 to 64 characters")
  .max(64, "must be 1 to 64 characters")
  .describe("This device's name in the account's device list (1 to 64 characters); default derived from the User-Agent, e.g. `Chrome on macOS`");

export const registerSchema = z.object({
  email: emailSchema,
  username: usernameSchema,
  password: passwordSchema,
  publicKey: publicKeySchema,
  deviceName: deviceNameSchema.optional(),
});
export type RegisterInput = z.infer<typeof registerSchema>;

/** A password to check against the stored one: only the byte limit, a shorter one simply fails to match. */
const presentedPasswordSchema = text()
  .min(1, "is required")
  .refine(
    (password) => Buffer.byteLength(password, "utf8") <= MAX_PASSWORD_BYTES,
    `must be at most ${MAX_PASSWORD_BYTES} bytes in UTF-8`,
  );

export const loginSchema = z.object({
  email: emailSchema,
  password: presentedPasswordSchema,
  deviceName: deviceNameSchema.optional(),
});
export type LoginInput = z.infer<typeof loginSchema>;

export const changePasswordSchema = z.object({
  currentPassword: presentedPasswordSchema,
  newPassword: passwordSchema,
});
export type ChangePasswordInput = z.infer<typeof changePasswordSchema>;

export const changeKeySchema = z.object({
  publicKey: publicKeySchema.describe("The new identity key: PEM SPKI EC public key on P-256 or P-384, stored exactly as sent"),
  currentPassword: presentedPasswordSchema,
});
export type ChangeKeyInput = z.infer<typeof changeKeySchema>;

export const refreshSchema = z.object({
  refreshToken: text().min(1, "is required").max(512, "is too long"),
});
export type RefreshInput = z.infer<typeof refreshSchema>;

// Responses.
const sessionTokens = {
  token: z.string().describe("JWT access token (HS256): send it as `Authorization: Bearer <token>`"),
  refreshToken: z.string().describe("Opaque, single use: POST /auth/refresh rotates it"),
  expiresIn: z.number().int().describe("Seconds until `token` expires"),
};
const deviceIdField = { deviceId: z.string().describe("This session's device (`dev_…`): GET /devices lists it, DELETE /devices/:deviceId ends it") };
export const registerResponseSchema = succeeded({ ...sessionTokens, ...deviceIdField, user: profileSchema.omit({ lastLogin: true }) });
export const loginResponseSchema = succeeded({ ...sessionTokens, ...deviceIdField, user: profileSchema, contacts: z.array(contactSchema) });
export const refreshResponseSchema = succeeded(sessionTokens);
export const logoutResponseSchema = doneResponseSchema;
export const logoutAllResponseSchema = succeeded({
  revokedSessions: z.number().int().min(0).describe("How many sessions ended, the caller's included"),
});
export const changePasswordResponseSchema = succeeded({});
export const changeKeyResponseSchema = succeeded({ user: profileSchema });
