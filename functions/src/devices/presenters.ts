import type { DeviceSession } from "../auth/sessions";
import type { LinkApproval, LinkRequest } from "./link-request";
import { statusOf } from "./link-request";
import type { DeviceLinkApprovedEvent, DeviceView, LinkRequestView } from "./schema";

/** What a device from before devices had no name for. */
export const UNKNOWN_DEVICE_NAME = "Unknown device";

export function toDeviceView(session: DeviceSession, currentSessionId: string): DeviceView {
  return {
    id: session.deviceId,
    name: session.deviceName ?? UNKNOWN_DEVICE_NAME,
    createdAt: session.createdAt.toISOString(),
    lastActiveAt: (session.lastActiveAt ?? session.createdAt).toISOString(),
    current: session.sessionId === currentSessionId,
  };
}

/** A request as a device of its account sees it; `approval` only ever for the requester (see decideRead). */
export function toLinkRequestView(request: LinkRequest, now: Date, approval: LinkApproval | null = null): LinkRequestView {
  return {
    requestId: request.id,
    deviceId: request.requesterDeviceId,
    deviceName: request.requesterDeviceName,
    ephemeralPublicKey: request.ephemeralPublicKey,
    status: statusOf(request, now),
    createdAt: request.createdAt.toDate().toISOString(),
    expiresAt: request.expiresAt.toDate().toISOString(),
    answeredAt: request.answeredAt?.toDate().toISOString() ?? null,
    approval: approval && { ...approval },
  };
}

/** `device_link_request`, for the account's other devices. */
export function linkRequestEvent(request: LinkRequest) {
  return {
    requestId: request.id,
    deviceId: request.requesterDeviceId,
    deviceName: request.requesterDeviceName,
    ephemeralPublicKey: request.ephemeralPublicKey,
    expiresAt: request.expiresAt.toDate().toISOString(),
  };
}

/** `device_link_approved` (with the payload) or `device_link_rejected`, for the requester device. */
export function linkAnswerEvent(request: LinkRequest):
  | { type: "device_link_approved"; payload: DeviceLinkApprovedEvent }
  | { type: "device_link_rejected"; payload: { requestId: string } }
  | undefined {
  if (request.status === "approved" && request.approval) return { type: "device_link_approved", payload: { requestId: request.id, ...request.approval } };
  if (request.status === "rejected") return { type: "device_link_rejected", payload: { requestId: request.id } };
  return undefined;
}
