import { z } from "zod";
import { text } from "../shared/validation";
import { MAX_PUBLIC_KEY_PEM_LENGTH, parseEcPublicKeyPem } from "../shared/keys";

/** bcrypt reads at most 72 bytes; longer passwords are refused rather than silently truncated. */
export const MAX_PASSWORD_BYTES = 72;
export const MIN_PASSWORD_LENGTH = 8;

export const emailSchema = text()
  .trim()
  .max(254, "must be at most 254 characters")
  .pipe(z.email({ error: "must be a valid email address" }))
  .transform((email) => email.toLowerCase());

export const usernameSchema = text()
  .regex(/^[A-Za-z0-9_]{3,30}$/, "must be 3-30 letters, digits or underscores");

export const passwordSchema = text()
  .min(MIN_PASSWORD_LENGTH, `must be at least ${MIN_PASSWORD_LENGTH} characters`)
  .refine(
    (password) => Buffer.byteLength(password, "utf8") <= MAX_PASSWORD_BYTES,
    `must be at most ${MAX_PASSWORD_BYTES} bytes in UTF-8`,
  );

export const publicKeySchema = text()
  .max(MAX_PUBLIC_KEY_PEM_LENGTH, `must be at most ${MAX_PUBLIC_KEY_PEM_LENGTH} characters`)
  .refine((pem) => parseEcPublicKeyPem(pem) !== undefined, "must be a PEM SPKI EC public key on P-256 or P-384");

export const registerSchema = z.object({
  email: emailSchema,
  username: usernameSchema,
  password: passwordSchema,
  publicKey: publicKeySchema,
});
export type RegisterInput = z.infer<typeof registerSchema>;

export const loginSchema = z.object({
  email: emailSchema,
  // Only the byte limit here: a shorter-than-allowed password simply fails to match.
  password: text()
    .min(1, "is required")
    .refine(
      (password) => Buffer.byteLength(password, "utf8") <= MAX_PASSWORD_BYTES,
      `must be at most ${MAX_PASSWORD_BYTES} bytes in UTF-8`,
    ),
});
export type LoginInput = z.infer<typeof loginSchema>;

export const refreshSchema = z.object({
  refreshToken: text().min(1, "is required").max(512, "is too long"),
});
export type RefreshInput = z.infer<typeof refreshSchema>;
