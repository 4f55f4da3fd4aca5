import type { DeviceAudience } from "./user-events";

/**
 * Per-device delivery (CONTRACT.md "Devices"), the rules shared by messages and key-exchange notices, as
 * pure functions (test/unit/device-delivery.test.ts). A delivered thing (a message, a key-exchange
 * notice) carries the ids of the receiver's devices that still owe it an acknowledgement: copied from
 * the receiver's device list (users/{id}.deviceIds) by the transaction that stores it, so a device either
 * existed then (listed) or was added later (reads history). Each device's acknowledgement removes only
 * that device.
 *
 * When the receiver had no device at all (every session logged out), nobody could have got it: the list
 * is then UNCLAIMED, and the next device to connect gets it (today's "the next login gets what came
 * meanwhile", and the only way its sender ever hears `message_delivered`). docs/API.md says why.
 */

/** Stands for "whichever device connects next" when the receiver had none. Never a device id (no `dev_` prefix). */
export const UNCLAIMED = "*";

/** What a new delivered thing records as still pending, from the receiver's device list. */
export function pendingDevicesFor(deviceIds: readonly string[] | undefined): string[] {
  return deviceIds && deviceIds.length > 0 ? [...deviceIds] : [UNCLAIMED];
}

/** Whether the device still owes an acknowledgement (it is listed, or the thing is unclaimed). */
export function isPendingFor(pendingDevices: readonly string[] | undefined, deviceId: string): boolean {
  return (pendingDevices ?? []).some((id) => id === deviceId || id === UNCLAIMED);
}

/** The values a device's backlog query looks for in the pending list (array-contains-any). */
export function backlogKeysOf(deviceId: string): string[] {
  return [deviceId, UNCLAIMED];
}

/** Which of the receiver's sockets a routed event goes to: those of the pending devices (every one when unclaimed). */
export function audienceOfPending(pendingDevices: readonly string[]): DeviceAudience | undefined {
  return pendingDevices.includes(UNCLAIMED) ? undefined : { devices: [...pendingDevices] };
}
