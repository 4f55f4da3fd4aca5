import { caller } from "../shared/caller";
import { operationOf, type OperationGroup } from "../shared/operations";
import {
  answerLinkRequestResponseSchema,
  approveLinkRequestSchema,
  createLinkRequestResponseSchema,
  createLinkRequestSchema,
  deviceParamsSchema,
  linkRequestParamsSchema,
  linkRequestResponseSchema,
  listDevicesResponseSchema,
  pendingLinkRequestsResponseSchema,
  removeDeviceResponseSchema,
} from "./schema";
import type { DeviceService } from "./service";

interface DeviceRouteDeps {
  devices: DeviceService;
}

const operation = operationOf<DeviceRouteDeps>();

export const deviceOperations: OperationGroup<DeviceRouteDeps> = {
  prefix: "/devices",
  tag: "Devices",
  operations: [
    operation({
      operationId: "listDevices",
      method: "get",
      path: "",
      summary: "The account's signed-in devices",
      description: "Every live session of the account (revoked and expired ones left out), oldest first; `current` marks the caller's.",
      auth: "session",
      success: { status: 200, description: "The devices", schema: listDevicesResponseSchema },
      errors: [],
      handle: ({ res }, { devices }) => devices.list(caller(res)),
    }),
    // The link-request paths before /{deviceId}, which would match "link-requests" too.
    operation({
      operationId: "createLinkRequest",
      method: "post",
      path: "/link-requests",
      summary: "Ask to link this device (the new one)",
      description:
        "The new device, signed in, sends a fresh ECDH key; the account's other connected devices get `device_link_request`. Pending for 10 minutes. The answer comes as `device_link_approved` or `device_link_rejected` to this device only, or through GET /devices/link-requests/{requestId}.",
      auth: "session",
      limits: ["keyExchange"],
      body: createLinkRequestSchema,
      success: { status: 201, description: "Pending until another device answers", schema: createLinkRequestResponseSchema },
      errors: [],
      handle: ({ body, res }, { devices }) => devices.createLinkRequest(caller(res), body),
    }),
    operation({
      operationId: "listLinkRequests",
      method: "get",
      path: "/link-requests",
      summary: "Pending link requests from the account's other devices",
      auth: "session",
      success: { status: 200, description: "Pending requests", schema: pendingLinkRequestsResponseSchema },
      errors: [],
      handle: ({ res }, { devices }) => devices.pending(caller(res)),
    }),
    operation({
      operationId: "getLinkRequest",
      method: "get",
      path: "/link-requests/{requestId}",
      summary: "One link request (the account's devices only)",
      description:
        "To the device that asked, an approved request carries `approval` once: the server deletes the payload as it answers (acknowledging `device_link_approved` deletes it too). Another account's request is 404.",
      auth: "session",
      params: linkRequestParamsSchema,
      success: { status: 200, description: "The request", schema: linkRequestResponseSchema },
      errors: ["NOT_FOUND"],
      handle: ({ params, res }, { devices }) => devices.get(caller(res), params.requestId),
    }),
    operation({
      operationId: "approveLinkRequest",
      method: "post",
      path: "/link-requests/{requestId}/approve",
      summary: "Approve a link request (another device of the account, holding the identity key)",
      description:
        '`signature`: ECDSA by the account\'s registered key over the UTF-8 bytes of `requestId + "\\n" + ephemeralPublicKey` (the approver\'s key; SHA-256 for P-256, SHA-384 for P-384), base64 of IEEE P1363 or DER; the ephemeral key must be on the new device\'s curve. The new device gets `device_link_approved`. The device that asked gets 403 FORBIDDEN, another account 404.',
      auth: "session",
      limits: ["keyExchange"],
      params: linkRequestParamsSchema,
      body: approveLinkRequestSchema,
      success: { status: 200, description: "Approved", schema: answerLinkRequestResponseSchema },
      errors: ["INVALID_SIGNATURE", "FORBIDDEN", "NOT_FOUND", "LINK_REQUEST_NOT_PENDING", "LINK_REQUEST_EXPIRED"],
      handle: ({ params, body, res }, { devices }) => devices.approve(caller(res), params.requestId, body),
    }),
    operation({
      operationId: "rejectLinkRequest",
      method: "post",
      path: "/link-requests/{requestId}/reject",
      summary: "Reject a link request",
      description: "The new device gets `device_link_rejected`. Same rules as approve.",
      auth: "session",
      limits: ["keyExchange"],
      params: linkRequestParamsSchema,
      success: { status: 200, description: "Rejected", schema: answerLinkRequestResponseSchema },
      errors: ["FORBIDDEN", "NOT_FOUND", "LINK_REQUEST_NOT_PENDING", "LINK_REQUEST_EXPIRED"],
      handle: ({ params, res }, { devices }) => devices.reject(caller(res), params.requestId),
    }),
    operation({
      operationId: "removeDevice",
      method: "delete",
      path: "/{deviceId}",
      summary: "Sign a device out",
      description:
        "Ends that device's session at once: its access and refresh tokens are refused and its sockets, on every relay instance, get `auth_error` and are disconnected. The caller's own device may be removed (like logout). Another user's device, or one already ended, is 404.",
      auth: "session",
      params: deviceParamsSchema,
      success: { status: 200, description: "Removed", schema: removeDeviceResponseSchema },
      errors: ["NOT_FOUND"],
      handle: async ({ params, res }, { devices }) => {
        await devices.remove(caller(res), params.deviceId);
        return {};
      },
    }),
  ],
};
