import type { SessionStore } from "../auth/sessions";
import { verifySignature } from "../keyexchange/signatures";
import type { Caller } from "../shared/caller";
import type { Clock } from "../shared/clock";
import { AppError } from "../shared/errors";
import { deviceIdOf, newId, sessionIdOfDevice } from "../shared/ids";
import { parseEcPublicKeyPem } from "../shared/keys";
import type { UserEventPublisher } from "../shared/user-events";
import type { UserRepository } from "../users/repository";
import { startLinkRequest, statusOf, type DeviceCaller, type LinkRequest } from "./link-request";
import { linkAnswerEvent, linkRequestEvent, toDeviceView, toLinkRequestView, UNKNOWN_DEVICE_NAME } from "./presenters";
import type { LinkRequestRepository } from "./repository";
import type { ApproveLinkRequestInput, CreateLinkRequestInput } from "./schema";

const deviceNotFound = () => new AppError("NOT_FOUND", "Device not found", { field: "deviceId" });
const asDevice = (caller: Caller): DeviceCaller => ({ userId: caller.userId, deviceId: deviceIdOf(caller.sessionId) });
/** What the approver signs: the request it answers and its own ephemeral key (CONTRACT.md "Devices"). */
export const linkSignedText = (requestId: string, ephemeralPublicKey: string) => `${requestId}\n${ephemeralPublicKey}`;

/**
 * An account's devices (its signed-in sessions: auth/sessions.ts) and the linking of a new one. Linking
 * moves the identity key end to end encrypted: the new device and an existing one exchange ephemeral ECDH
 * keys through the server, which checks that the approval is signed by the account's registered identity
 * key (so a stolen session without that key cannot link a device) and relays an opaque payload it
 * deletes once the new device has it.
 */
export class DeviceService {
  constructor(
    private readonly sessions: Pick<SessionStore, "devices" | "device" | "revoke" | "guard">,
    private readonly linkRequests: LinkRequestRepository,
    private readonly users: Pick<UserRepository, "findById">,
    private readonly events: UserEventPublisher,
    private readonly clock: Clock,
  ) {}

  async list(caller: Caller) {
    const devices = await this.sessions.devices(caller.userId);
    return { devices: devices.map((device) => toDeviceView(device, caller.sessionId)) };
  }

  /** Ends the device's session: its tokens are refused and its sockets, on every instance, disconnected. */
  async remove(caller: Caller, deviceId: string): Promise<void> {
    const sessionId = sessionIdOfDevice(deviceId);
    // Another user's device, an unknown one and an ended one all read the same.
    if (!sessionId || !(await this.sessions.device(sessionId, caller.userId))) throw deviceNotFound();
    await this.sessions.revoke(sessionId, caller.userId, "device_removed");
  }

  async createLinkRequest(caller: Caller, input: CreateLinkRequestInput) {
    const requester = asDevice(caller);
    const session = await this.sessions.device(caller.sessionId, caller.userId);
    const id = newId("link");
    const request: LinkRequest = { id, ...startLinkRequest(requester, session?.deviceName ?? UNKNOWN_DEVICE_NAME, input.ephemeralPublicKey, this.clock.now()) };
    await this.linkRequests.create(id, request);
    await this.events.publish(caller.userId, "device_link_request", linkRequestEvent(request), { exceptDevice: requester.deviceId });
    return { requestId: id, expiresAt: request.expiresAt.toDate().toISOString() };
  }

  /** The account's pending requests that the caller could answer (not its own), oldest first. */
  async pending(caller: Caller) {
    const now = this.clock.now();
    const { deviceId } = asDevice(caller);
    const [pending, devices] = await Promise.all([this.linkRequests.pendingFor(caller.userId), this.sessions.devices(caller.userId)]);
    // A removed or logged-out device's requests are over (decideAnswer refuses them).
    const signedIn = new Set(devices.map((device) => device.deviceId));
    const requests = pending
      .filter((request) => statusOf(request, now) === "pending" && request.requesterDeviceId !== deviceId && signedIn.has(request.requesterDeviceId))
      .sort((a, b) => a.createdAt.toMillis() - b.createdAt.toMillis());
    return { requests: requests.map((request) => toLinkRequestView(request, now)) };
  }

  /** One request; to its requester, the approval once (then deleted). */
  async get(caller: Caller, requestId: string) {
    const now = this.clock.now();
    const { request, approval } = await this.linkRequests.read(requestId, asDevice(caller), now);
    return { request: toLinkRequestView(request, now, approval) };
  }

  async approve(caller: Caller, requestId: string, input: ApproveLinkRequestInput) {
    await this.checkSignature(caller.userId, linkSignedText(requestId, input.ephemeralPublicKey), input.signature);
    const { ephemeralPublicKey, encryptedPayload, iv, authTag, signature } = input;
    return this.answer(caller, requestId, { ephemeralPublicKey, encryptedPayload, iv, authTag, signature });
  }

  reject(caller: Caller, requestId: string) {
    return this.answer(caller, requestId, null);
  }

  /** Answers owed to a device that just connected: approvals and rejections it has not acknowledged. */
  async owedTo(userId: string, deviceId: string) {
    const now = this.clock.now();
    const owed = (await this.linkRequests.owedTo(deviceId)).filter((request) => request.userId === userId);
    const expired = owed.filter((request) => statusOf(request, now) === "expired");
    await this.linkRequests.forgetExpiredPayloads(expired.map((request) => request.id));
    return owed
      .filter((request) => !expired.includes(request))
      .sort((a, b) => (a.answeredAt?.toMillis() ?? 0) - (b.answeredAt?.toMillis() ?? 0))
      .flatMap((request) => linkAnswerEvent(request) ?? []);
  }

  /** The requester device acknowledged its answer: the payload is deleted. */
  async acknowledge(userId: string, deviceId: string, requestId: string): Promise<void> {
    await this.linkRequests.acknowledge(requestId, { userId, deviceId });
  }

  private async answer(caller: Caller, requestId: string, approval: ApproveLinkRequestInput | null) {
    const answeredAt = this.clock.now();
    const requesterSession = (request: LinkRequest) => this.sessions.guard(sessionIdOfDevice(request.requesterDeviceId)!, request.userId);
    const request = await this.linkRequests.answer(requestId, asDevice(caller), { approval, answeredAt }, requesterSession);
    const event = linkAnswerEvent(request);
    if (event) await this.events.publish(caller.userId, event.type, event.payload, { onlyDevice: request.requesterDeviceId });
    return { requestId, status: request.status as "approved" | "rejected", answeredAt: request.answeredAt!.toDate().toISOString() };
  }

  private async checkSignature(userId: string, signedText: string, signature: string): Promise<void> {
    const user = await this.users.findById(userId);
    const identity = user && parseEcPublicKeyPem(user.publicKey);
    if (!identity) throw new AppError("UNAUTHORIZED", "Your account has no usable identity key");
    if (!verifySignature(identity.key, identity.curve, signedText, signature)) {
      throw new AppError(
        "INVALID_SIGNATURE",
        `signature does not verify: ECDSA ${identity.curve === "P-256" ? "SHA-256" : "SHA-384"} by the account's registered key over requestId + "\\n" + ephemeralPublicKey`,
        { field: "signature" },
      );
    }
  }
}
