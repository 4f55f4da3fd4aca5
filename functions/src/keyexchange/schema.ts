import { z } from "zod";
import { MAX_PUBLIC_KEY_PEM_LENGTH, parseEcPublicKeyPem } from "../shared/keys";
import { idOf, text } from "../shared/validation";

const ephemeralPublicKey = text()
  .min(1, "is required")
  .max(MAX_PUBLIC_KEY_PEM_LENGTH, `must be at most ${MAX_PUBLIC_KEY_PEM_LENGTH} characters`)
  .refine((pem) => parseEcPublicKeyPem(pem) !== undefined, "must be a PEM SPKI EC public key on P-256 or P-384");
// Checked for shape here; whether it verifies is INVALID_SIGNATURE, decided by the service.
const signature = text().min(1, "is required").max(512, "must be at most 512 characters");

export const initiateSchema = z.object({
  targetUserId: idOf("user"),
  ephemeralPublicKey,
  signature,
});
export type InitiateInput = z.infer<typeof initiateSchema>;

export const respondSchema = z.object({
  exchangeId: idOf("exchange"),
  ephemeralPublicKey,
  signature,
});
export type RespondInput = z.infer<typeof respondSchema>;

export const exchangeParamsSchema = z.object({ exchangeId: idOf("exchange") });
