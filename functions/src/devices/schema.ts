import { z } from "zod";
import { MAX_PUBLIC_KEY_PEM_LENGTH, parseEcPublicKeyPem } from "../shared/keys";
import { isoTime, succeeded } from "../shared/responses";
import { base64Text, idOf, text } from "../shared/validation";

/** CONTRACT.md "Devices": the approval's encrypted payload, as base64 text. */
export const MAX_LINK_PAYLOAD_LENGTH = 64 * 1024;

export const deviceParamsSchema = z.object({ deviceId: idOf("dev") });
export const linkRequestParamsSchema = z.object({ requestId: idOf("link") });

const ephemeralPublicKey = text()
  .min(1, "is required")
  .max(MAX_PUBLIC_KEY_PEM_LENGTH, `must be at most ${MAX_PUBLIC_KEY_PEM_LENGTH} characters`)
  .refine((pem) => parseEcPublicKeyPem(pem) !== undefined, "must be a PEM SPKI EC public key on P-256 or P-384")
  .describe("A fresh ECDH key: PEM SPKI EC public key on P-256 or P-384");

export const createLinkRequestSchema = z.object({ ephemeralPublicKey });
export type CreateLinkRequestInput = z.infer<typeof createLinkRequestSchema>;

export const approveLinkRequestSchema = z.object({
  ephemeralPublicKey: ephemeralPublicKey.describe("The approver's fresh ECDH key, on the new device's curve (PEM SPKI)"),
  encryptedPayload: base64Text(MAX_LINK_PAYLOAD_LENGTH).describe(
    `Base64 AES-GCM ciphertext for the new device (e.g. the identity private key), at most ${MAX_LINK_PAYLOAD_LENGTH} characters; opaque to the server`,
  ),
  iv: base64Text(64),
  authTag: base64Text(64),
  // Checked for shape here; whether it verifies is INVALID_SIGNATURE, decided by the service.
  signature: text()
    .min(1, "is required")
    .max(512, "must be at most 512 characters")
    .describe('Base64 ECDSA signature (P1363 or DER) by the account\'s registered key over the UTF-8 bytes of `requestId + "\\n" + ephemeralPublicKey`'),
});
export type ApproveLinkRequestInput = z.infer<typeof approveLinkRequestSchema>;

// Responses and realtime events.
const pem = z.string().describe("PEM SPKI EC public key, exactly as sent");

export const deviceSchema = z.object({
  id: idOf("dev"),
  name: z.string().describe("What the device was called at login (`Unknown device` for sessions from before devices)"),
  createdAt: isoTime().describe("When the device logged in"),
  lastActiveAt: isoTime().describe("Its last login or token refresh"),
  current: z.boolean().describe("True for the device making this request"),
});
export type DeviceView = z.output<typeof deviceSchema>;

export const listDevicesResponseSchema = succeeded({ devices: z.array(deviceSchema).describe("The account's signed-in devices, oldest first") });
export const removeDeviceResponseSchema = succeeded({});

export const createLinkRequestResponseSchema = succeeded({ requestId: idOf("link"), expiresAt: isoTime() });

export const linkApprovalSchema = z.object({
  ephemeralPublicKey: pem.describe("The approver's ECDH key"),
  encryptedPayload: z.string(),
  iv: z.string(),
  authTag: z.string(),
  signature: z.string().describe('ECDSA by the account\'s registered key over `requestId + "\\n" + ephemeralPublicKey`'),
});

export const linkRequestViewSchema = z.object({
  requestId: idOf("link"),
  deviceId: idOf("dev").describe("The new device that asked"),
  deviceName: z.string(),
  ephemeralPublicKey: pem.describe("The new device's ECDH key"),
  status: z.enum(["pending", "approved", "rejected", "expired"]),
  createdAt: isoTime(),
  expiresAt: isoTime(),
  answeredAt: isoTime().nullable(),
  approval: linkApprovalSchema
    .nullable()
    .describe("To the new device only, once: reading it deletes it from the server (so does acknowledging `device_link_approved`); null otherwise"),
});
export type LinkRequestView = z.output<typeof linkRequestViewSchema>;

export const pendingLinkRequestsResponseSchema = succeeded({
  requests: z.array(linkRequestViewSchema).describe("Pending requests from the account's other devices, oldest first"),
});
export const linkRequestResponseSchema = succeeded({ request: linkRequestViewSchema });
export const answerLinkRequestResponseSchema = succeeded({
  requestId: idOf("link"),
  status: z.enum(["approved", "rejected"]),
  answeredAt: isoTime(),
});

/** `device_link_request`, to the account's other devices. */
export const deviceLinkRequestEventSchema = z.object({
  requestId: idOf("link"),
  deviceId: idOf("dev"),
  deviceName: z.string(),
  ephemeralPublicKey: pem,
  expiresAt: isoTime(),
});

/** `device_link_approved`, to the requester device only. */
export const deviceLinkApprovedEventSchema = linkApprovalSchema.extend({ requestId: idOf("link") });
export type DeviceLinkApprovedEvent = z.output<typeof deviceLinkApprovedEventSchema>;

/** `device_link_rejected`, to the requester device only. */
export const deviceLinkRejectedEventSchema = z.object({ requestId: idOf("link") });
