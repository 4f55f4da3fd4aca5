import type { ClientToServerEvents as ClientEmits, ServerToClientEvents as ClientHears } from "../../client/src/generated";
import type { ClientToServerEvents as ServerHears, ServerToClientEvents as ServerEmits } from "../../functions/src/relay/schema";

/**
 * Compile-time only (`npm run typecheck`, which CI runs): the relay's Socket.IO server is typed with
 * event maps built from the same schemas as the typed client's. Every event one side emits, the other
 * side has, and what the server emits fits what the client expects.
 */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Fits<Emitted, Expected> = [Emitted] extends [Expected] ? true : false;

export const serverEventNamesMatch: Same<keyof ServerEmits, keyof ClientHears> = true;
export const clientEventNamesMatch: Same<keyof ServerHears, keyof ClientEmits> = true;
export const serverPayloadsFit: { [Event in keyof ServerEmits]: Fits<Parameters<ServerEmits[Event]>[0], Parameters<ClientHears[Event]>[0]> } = {
  authenticated: true,
  auth_error: true,
  error: true,
  message_received: true,
  message_delivered: true,
  message_sent: true,
  message_expired: true,
  key_exchange_request: true,
  key_exchange_response: true,
  user_online: true,
  user_offline: true,
  typing_indicator: true,
  key_changed: true,
  file_deleted: true,
  device_link_request: true,
  device_link_approved: true,
  device_link_rejected: true,
};
