import { z } from "zod";
import { MAX_PUBLIC_KEY_PEM_LENGTH, parseEcPublicKeyPem } from "../shared/keys";
import { isoTime, succeeded } from "../shared/responses";
import { idOf, text } from "../shared/validation";

const ephemeralPublicKey = text()
  .min(1, "is required")
  .max(MAX_PUBLIC_KEY_PEM_LENGTH, `must be at most ${MAX_PUBLIC_KEY_PEM_LENGTH} characters`)
  .refine((pem) => parseEcPublicKeyPem(pem) !== undefined, "must be a PEM SPKI EC public key on P-256 or P-384")
  .describe("A fresh ECDH key: PEM SPKI EC public key on P-256 or P-384 (a response on the initiator's curve)");
// Checked for shape here; whether it verifies is INVALID_SIGNATURE, decided by the service.
const signature = text()
  .min(1, "is required")
  .max(512, "must be at most 512 characters")
  .describe("Base64 ECDSA signature (P1363 or DER) by the caller's registered key over the UTF-8 bytes of ephemeralPublicKey");

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

// Responses and realtime events.
const pem = z.string().describe("PEM SPKI EC public key, exactly as sent");

export const exchangeStatusSchema = z
  .enum(["pending", "completed", "superseded", "expired"])
  .describe("`expired`: pending past its expiry; `superseded`: a newer exchange between the same pair started");

export const initiateResponseSchema = succeeded({
  exchangeId: idOf("exchange"),
  status: z.literal("pending"),
  createdAt: isoTime(),
  expiresAt: isoTime(),
});

export const respondResponseSchema = succeeded({
  exchangeId: idOf("exchange"),
  confirmed: z.literal(true),
  status: z.literal("completed"),
  completedAt: isoTime(),
});

/** An exchange as its two participants see it (GET /keyexchange/pending and /keyexchange/:exchangeId). */
export const exchangeViewSchema = z.object({
  exchangeId: idOf("exchange"),
  initiatorId: idOf("user"),
  targetId: idOf("user"),
  status: exchangeStatusSchema,
  initiatorEphemeralPublicKey: pem,
  initiatorSignature: z.string(),
  targetEphemeralPublicKey: pem.nullable(),
  targetSignature: z.string().nullable(),
  createdAt: isoTime(),
  expiresAt: isoTime(),
  completedAt: isoTime().nullable(),
});
export type ExchangeView = z.output<typeof exchangeViewSchema>;

export const pendingResponseSchema = succeeded({
  incoming: z.array(exchangeViewSchema).describe("Pending exchanges others started with you: respond to these"),
  outgoing: z.array(exchangeViewSchema).describe("Pending exchanges you started"),
});

export const exchangeResponseSchema = succeeded({ exchange: exchangeViewSchema });

/** The `key_exchange_request` socket event, sent to the target (the guide's payload, plus times). */
export const keyExchangeRequestEventSchema = z.object({
  exchangeId: idOf("exchange"),
  fromUserId: idOf("user").describe("The initiator"),
  ephemeralPublicKey: pem,
  signature: z.string().describe("ECDSA by the initiator's registered key over the UTF-8 bytes of ephemeralPublicKey"),
  createdAt: isoTime(),
  expiresAt: isoTime(),
});
export type KeyExchangeRequestEvent = z.output<typeof keyExchangeRequestEventSchema>;

/** The `key_exchange_response` socket event, sent to the initiator. */
export const keyExchangeResponseEventSchema = z.object({
  exchangeId: idOf("exchange"),
  fromUserId: idOf("user").describe("The target, who responded"),
  ephemeralPublicKey: pem,
  signature: z.string().describe("ECDSA by the target's registered key over the UTF-8 bytes of ephemeralPublicKey"),
  status: z.literal("completed"),
});
