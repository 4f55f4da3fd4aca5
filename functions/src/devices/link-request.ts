import { Timestamp } from "firebase-admin/firestore";
import { AppError } from "../shared/errors";
import { parseEcPublicKeyPem } from "../shared/keys";

/**
 * A device link request's life, as pure functions (CONTRACT.md "Devices" → "Linking a new device"):
 * created `pending` by the new device; answered once, `approved` (with the opaque payload) or `rejected`,
 * by another device of the same account; a pending one past its expiry reads as `expired` and can no
 * longer be answered. The answer is owed to the requester device until it acknowledges the event (or
 * reads the request): then the payload is deleted. Past expiry nothing of the answer is shown, and a
 * read that finds a payload there deletes it. Tested without the database in test/unit/.
 */

/** How long a link request stays answerable (and its answer readable). */
export const LINK_REQUEST_TTL_SECONDS = 10 * 60;

export type StoredLinkStatus = "pending" | "approved" | "rejected";
export type LinkStatus = StoredLinkStatus | "expired";

/** What the approver sends, relayed to the requester device as it is. */
export interface LinkApproval {
  ephemeralPublicKey: string;
  encryptedPayload: string;
  iv: string;
  authTag: string;
  signature: string;
}

export interface StoredLinkRequest {
  userId: string;
  /** The new device: the only one that reads the answer. */
  requesterDeviceId: string;
  requesterDeviceName: string;
  ephemeralPublicKey: string;
  status: StoredLinkStatus;
  createdAt: Timestamp;
  /** TTL field: the document goes some time after this; until then reads treat it as gone. */
  expiresAt: Timestamp;
  answeredAt: Timestamp | null;
  /** The device that approved or rejected. */
  answeredBy: string | null;
  /** Null before approval, and again once the requester has it (or the request expired). */
  approval: LinkApproval | null;
  /** True from the answer until the requester device has it: its connections are sent the answer again. */
  answerOwed: boolean;
}

export interface LinkRequest extends StoredLinkRequest {
  id: string;
}

/** The caller: its account and the device it is. */
export interface DeviceCaller {
  userId: string;
  deviceId: string;
}

export const linkRequestNotFound = () => new AppError("NOT_FOUND", "Link request not found", { field: "requestId" });

export function statusOf(request: StoredLinkRequest, now: Date): LinkStatus {
  return request.expiresAt.toMillis() <= now.getTime() ? "expired" : request.status;
}

export function startLinkRequest(requester: DeviceCaller, deviceName: string, ephemeralPublicKey: string, now: Date): StoredLinkRequest {
  return {
    userId: requester.userId,
    requesterDeviceId: requester.deviceId,
    requesterDeviceName: deviceName,
    ephemeralPublicKey,
    status: "pending",
    createdAt: Timestamp.fromDate(now),
    expiresAt: Timestamp.fromMillis(now.getTime() + LINK_REQUEST_TTL_SECONDS * 1000),
    answeredAt: null,
    answeredBy: null,
    approval: null,
    answerOwed: false,
  };
}

/** Only the account's own devices know a request exists. */
export const canSeeLinkRequest = (caller: DeviceCaller, request: StoredLinkRequest) => caller.userId === request.userId;

export interface LinkAnswer {
  /** An approval carries the payload; a rejection nothing. */
  approval: LinkApproval | null;
  answeredAt: Date;
}

export type AnswerDecision =
  | { kind: "answer"; update: Pick<StoredLinkRequest, "status" | "answeredAt" | "answeredBy" | "approval" | "answerOwed"> }
  /** Already answered by this very call (an SDK retry of a committed attempt): write nothing. */
  | { kind: "answered" }
  | { kind: "refused"; error: AppError };

/**
 * Another device of the account answers a request (undefined: none with that id). The requester may not
 * answer its own request (403: it knows the request exists); anyone outside the account gets 404; a
 * request is answered once (409 LINK_REQUEST_NOT_PENDING), and only before its expiry (410), and while
 * the device that asked is still signed in (`requesterSignedIn`; removed or logged out, its request is
 * over: 410 too).
 */
export function decideAnswer(request: LinkRequest | undefined, caller: DeviceCaller, answer: LinkAnswer, requesterSignedIn = true): AnswerDecision {
  const refuse = (error: AppError) => ({ kind: "refused" as const, error });
  if (!request || !canSeeLinkRequest(caller, request)) return refuse(linkRequestNotFound());
  if (
    request.status !== "pending" &&
    request.answeredBy === caller.deviceId &&
    request.answeredAt?.toMillis() === answer.answeredAt.getTime() &&
    (request.status === "approved") === (answer.approval !== null)
  ) {
    return { kind: "answered" };
  }
  if (request.requesterDeviceId === caller.deviceId) {
    return refuse(new AppError("FORBIDDEN", "A device cannot answer its own link request: approve it from another signed-in device"));
  }
  const status = statusOf(request, answer.answeredAt);
  if (status === "expired") return refuse(new AppError("LINK_REQUEST_EXPIRED", "This link request has expired; the new device must ask again", { status }));
  if (status !== "pending") return refuse(new AppError("LINK_REQUEST_NOT_PENDING", `This link request is already ${status}`, { status }));
  if (!requesterSignedIn) {
    return refuse(new AppError("LINK_REQUEST_EXPIRED", "The device that asked is no longer signed in; it must sign in and ask again", { status: "expired" }));
  }
  if (answer.approval) {
    const requesterCurve = parseEcPublicKeyPem(request.ephemeralPublicKey)?.curve;
    if (requesterCurve !== parseEcPublicKeyPem(answer.approval.ephemeralPublicKey)?.curve) {
      return refuse(
        new AppError("VALIDATION_ERROR", `ephemeralPublicKey must be on ${requesterCurve}, like the new device's`, { field: "ephemeralPublicKey" }),
      );
    }
  }
  return {
    kind: "answer",
    update: {
      status: answer.approval ? "approved" : "rejected",
      answeredAt: Timestamp.fromDate(answer.answeredAt),
      answeredBy: caller.deviceId,
      approval: answer.approval,
      answerOwed: true,
    },
  };
}

export interface ReadDecision {
  /** The approval, shown to the requester device only, before expiry. */
  approval: LinkApproval | null;
  /** Write this (the payload's deletion) after reading; undefined: nothing to write. */
  update?: Pick<StoredLinkRequest, "approval" | "answerOwed">;
}

/**
 * A read of a request by a device of its account. The requester reading an approval takes the payload
 * (read once: it is deleted in the same transaction, and the answer is no longer owed). Anyone reading an
 * expired request that still holds a payload deletes it.
 */
export function decideRead(request: StoredLinkRequest, caller: DeviceCaller, now: Date): ReadDecision {
  const expired = statusOf(request, now) === "expired";
  if (expired) return request.approval ? { approval: null, update: { approval: null, answerOwed: false } } : { approval: null };
  if (caller.deviceId !== request.requesterDeviceId || request.status === "pending") return { approval: null };
  const update = request.approval || request.answerOwed ? { approval: null, answerOwed: false } : undefined;
  return { approval: request.approval, ...(update ? { update } : {}) };
}

/**
 * The requester device acknowledged `device_link_approved` or `device_link_rejected`: the answer is no
 * longer owed and the payload goes. Anyone else's acknowledgement changes nothing.
 */
export function decideAcknowledge(request: StoredLinkRequest | undefined, caller: DeviceCaller): Pick<StoredLinkRequest, "approval" | "answerOwed"> | undefined {
  if (!request || request.userId !== caller.userId || request.requesterDeviceId !== caller.deviceId) return undefined;
  if (!request.answerOwed && request.approval === null) return undefined;
  return { approval: null, answerOwed: false };
}
