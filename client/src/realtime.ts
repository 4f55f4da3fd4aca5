import type { io as ioFunction, ManagerOptions, Socket, SocketOptions } from "socket.io-client";
import type { ClientToServerEvents, ErrorEnvelope, ServerToClientEvents } from "./generated.js";
import { ApiError } from "./rest.js";

/**
 * The realtime half of the typed client: a Socket.IO socket whose events and acknowledgements are typed
 * from the document's `x-socket-events`. socket.io-client's `io` is passed in rather than imported, so
 * the built client has no bare imports and a page can use the copy the server serves at
 * /socket.io/socket.io.js (`window.io`); in Node or a bundler, pass `io` from "socket.io-client".
 */

export type RealtimeSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface RealtimeOptions extends Partial<ManagerOptions & SocketOptions> {
  /** The access token, sent in the handshake. */
  token: string;
  /** How long to wait for `authenticated` (default 10 s, the server's own deadline). */
  timeoutMs?: number;
}

/** Connects to the relay (same origin as the API, e.g. http://localhost:3000) and resolves once authenticated. */
export function connectRealtime(io: typeof ioFunction, url: string, options: RealtimeOptions): Promise<RealtimeSocket> {
  const { token, timeoutMs = 10_000, ...socketOptions } = options;
  const socket: RealtimeSocket = io(url, { ...socketOptions, auth: { token } });
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => {
      cleanup();
      socket.disconnect();
      reject(error);
    };
    const timer = setTimeout(() => fail(new Error("Timed out waiting for the relay to authenticate the socket")), timeoutMs);
    const onAuthenticated = () => {
      cleanup();
      resolve(socket);
    };
    const onAuthError = (error: { code: ApiError["code"]; message: string; details?: Record<string, unknown> }) =>
      fail(new ApiError(0, error.code, error.message, error.details));
    const onConnectError = (error: Error) => {
      // socket.io-client retries by itself when reconnection is on; only give up when it will not.
      if (!socket.active) fail(error);
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("authenticated", onAuthenticated);
      socket.off("auth_error", onAuthError);
      socket.off("connect_error", onConnectError);
    };
    socket.on("authenticated", onAuthenticated);
    socket.on("auth_error", onAuthError);
    socket.on("connect_error", onConnectError);
  });
}

type AckOf<Event extends keyof ClientToServerEvents> =
  Parameters<ClientToServerEvents[Event]> extends [unknown, (response: infer Response) => void] ? Response : never;

/**
 * Emits an event that has an acknowledgement and resolves with the server's success answer; a refusal
 * (`{ success: false, error }`) throws ApiError with its code.
 */
export async function emitChecked<Event extends keyof ClientToServerEvents>(
  socket: RealtimeSocket,
  event: Event,
  payload: Parameters<ClientToServerEvents[Event]>[0],
  timeoutMs = 10_000,
): Promise<Exclude<AckOf<Event>, ErrorEnvelope>> {
  // Socket.IO's own typing of emitWithAck cannot follow a generic event name: the answer is typed here.
  const timed = socket.timeout(timeoutMs) as unknown as { emitWithAck(event: string, payload: unknown): Promise<AckOf<Event>> };
  const answer = await timed.emitWithAck(event, payload);
  if ((answer as { success?: boolean }).success === false) {
    const { error } = answer as ErrorEnvelope;
    throw new ApiError(0, error.code, error.message, error.details);
  }
  return answer as Exclude<AckOf<Event>, ErrorEnvelope>;
}
