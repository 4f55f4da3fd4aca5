import { io, type Socket } from "socket.io-client";
import type { TestApp } from "./app";

/** Sockets opened by a test file, closed by closeAllSockets() in afterEach/afterAll. */
const opened = new Set<Socket>();

export interface ConnectOptions {
  /** Sent in the handshake (`io(url, { auth: { token } })`). */
  token?: string;
  /** Reconnect by itself after a dropped transport (off by default, so tests stay deterministic). */
  reconnection?: boolean;
}

export function connect(app: TestApp, options: ConnectOptions = {}): Socket {
  const socket = io(app.baseUrl, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: options.reconnection ?? false,
    auth: options.token ? { token: options.token } : {},
  });
  opened.add(socket);
  socket.on("disconnect", () => opened.delete(socket));
  return socket;
}

export function closeAllSockets(): void {
  for (const socket of opened) socket.disconnect();
  opened.clear();
}

/** The next `event` on the socket (rejects after `timeoutMs`). */
export function nextEvent<T = any>(socket: Socket, event: string, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, handler);
      reject(new Error(`timed out waiting for "${event}"`));
    }, timeoutMs);
    const handler = (payload: T) => {
      clearTimeout(timer);
      resolve(payload);
    };
    socket.once(event, handler);
  });
}

/** Connects with the handshake token and resolves once the server says `authenticated`. */
export async function connectAs(app: TestApp, token: string, options: Omit<ConnectOptions, "token"> = {}): Promise<Socket> {
  const socket = connect(app, { ...options, token });
  const result = await Promise.race([
    nextEvent(socket, "authenticated").then((payload) => ({ ok: true as const, payload })),
    nextEvent(socket, "auth_error").then((payload) => ({ ok: false as const, payload })),
  ]);
  if (!result.ok) throw new Error(`auth_error: ${JSON.stringify(result.payload)}`);
  return socket;
}

/** Collects every `event` payload the socket receives from now on. */
export function collect<T = any>(socket: Socket, event: string): T[] {
  const seen: T[] = [];
  socket.on(event, (payload: T) => seen.push(payload));
  return seen;
}

/** Polls `condition` until true (rejects after `timeoutMs`). */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Emits with an acknowledgement and resolves with the server's answer. */
export function emitWithAck<T = any>(socket: Socket, event: string, payload: unknown, timeoutMs = 10_000): Promise<T> {
  return socket.timeout(timeoutMs).emitWithAck(event, payload) as Promise<T>;
}

/**
 * Connects with the handshake token, collecting `message_received` from the first packet on (a backlog
 * may follow `authenticated` in the same read), acknowledging each unless `acknowledge` is false.
 */
export async function connectReceiving(app: TestApp, token: string, options: { acknowledge?: boolean } = {}) {
  const socket = connect(app, { token });
  const received: any[] = [];
  socket.on("message_received", (message: any, ack?: () => void) => {
    received.push(message);
    if (options.acknowledge !== false) ack?.();
  });
  const result = await Promise.race([
    nextEvent(socket, "authenticated").then(() => true),
    nextEvent(socket, "auth_error").then((payload) => {
      throw new Error(`auth_error: ${JSON.stringify(payload)}`);
    }),
  ]);
  void result;
  return { socket, received };
}
