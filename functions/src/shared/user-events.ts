import type { DocumentReference, DocumentSnapshot, Transaction } from "firebase-admin/firestore";

/**
 * Ports through which capabilities tell a user's connected sockets something, wherever those sockets
 * are. The realtime relay implements them (relay/events.ts); capabilities depend only on these, so none
 * of them imports the relay (test/unit/architecture.test.ts).
 */
export type UserEventType =
  | "message_received"
  | "typing_indicator"
  | "user_online"
  | "user_offline"
  | "message_delivered"
  | "message_expired"
  | "key_exchange_request"
  | "key_exchange_response"
  | "session_revoked"
  | "file_deleted"
  | "message_sent"
  | "device_link_request"
  | "device_link_approved"
  | "device_link_rejected"
  | "key_changed";

/**
 * Which of the user's devices (CONTRACT.md "Devices") an event is for: all of them when absent, one
 * (`onlyDevice`), all but one (`exceptDevice`, e.g. the device that caused the event), or any of a list
 * (`devices`: a message's devices that have not acknowledged it, shared/device-delivery.ts).
 */
export interface DeviceAudience {
  onlyDevice?: string;
  exceptDevice?: string;
  devices?: string[];
}

/** Whether a device is in an event's audience. */
export function isInAudience(deviceId: string, audience: DeviceAudience | undefined): boolean {
  if (!audience) return true;
  if (audience.onlyDevice !== undefined && audience.onlyDevice !== deviceId) return false;
  if (audience.devices !== undefined && !audience.devices.includes(deviceId)) return false;
  return audience.exceptDevice === undefined || audience.exceptDevice !== deviceId;
}

/** Publishes after the publisher's own write: the event only matters to sockets connected now. */
export interface UserEventPublisher {
  publish(userId: string, type: UserEventType, payload: Record<string, unknown>, audience?: DeviceAudience): Promise<void>;
}

/** A stored message as routing needs it; the whole record is what the receiver's sockets get. */
export interface RoutedMessage {
  id: string;
  receiverId: string;
}

/**
 * Routes a message inside the transaction that stores it, so it is routed exactly when it is stored
 * (messages/repository.ts says why that reaches every connection).
 */
export interface MessageRouting {
  /** The receiver's presence document, for the transaction to read with its other reads. */
  presenceRef(userId: string): DocumentReference;
  /** Whether a presence document lists any relay instance (the user has a socket somewhere). */
  isConnected(presence: DocumentSnapshot | undefined): boolean;
  /** A `message_received` event to each relay instance listed in that presence document, for the devices in `audience`. */
  routeMessage(tx: Transaction, receiverPresence: DocumentSnapshot | undefined, message: RoutedMessage, nowMs: number, audience?: DeviceAudience): void;
}
