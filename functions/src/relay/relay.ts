import { randomBytes } from "node:crypto";
import type { Server as HttpServer } from "node:http";
import { Server, type Socket } from "socket.io";
import type { Services } from "../app";
import { extractBearer } from "../auth/tokens";
import { checkContentSize, sendMessageSchema } from "../messages/schema";
import { AppError, errors, toEnvelope } from "../shared/errors";
import { busyDatabaseError } from "../shared/http";
import { KeyedQueue } from "../shared/keyed-queue";
import { parseInput } from "../shared/validation";
import { UserChannel } from "./channel";
import { followInstanceEvents } from "./event-feed";
import { SocketLimits } from "./limits";
import { DEFAULT_PRESENCE_TIMING, PresenceTracker, type PresenceTiming } from "./presence";
import { joinRoomSchema, messageAckSchema, typingSchema } from "./schema";
import { TypingLimiter } from "./typing";

/**
 * The realtime relay: Socket.IO on the same HTTP server as the API (or standalone on Cloud Run).
 * Nothing here depends on sender and receiver sharing a process: messages come from a Firestore
 * listener per connected user, and everything else (typing, presence, receipts, logouts) from the
 * user's event feed in Firestore.
 */
export interface RelayOptions {
  instanceId?: string;
  /** A socket that has not authenticated by then is disconnected (the contract says 10 s). */
  authTimeoutMs?: number;
  presenceTiming?: PresenceTiming;
  /** How often the event feed's listener is replaced by a fresh one (event-feed.ts). */
  eventFeedRollMs?: number;
}

export interface RelayStats {
  sockets: number;
  /** Users with at least one socket here. */
  users: number;
  /** Open per-user listeners (undelivered messages); the instance's event feed is one more. */
  listeners: number;
  eventFeedOpen: boolean;
}

export interface Relay {
  readonly io: Server;
  readonly instanceId: string;
  stats(): RelayStats;
  /**
   * Stops the relay. With `handOff`, sockets are dropped at the transport so Socket.IO clients
   * reconnect on their own (to another instance); otherwise they are told the server closed.
   */
  close(options?: { handOff?: boolean }): Promise<void>;
}

interface SocketState {
  userId?: string;
  sessionId?: string;
  /** Messages already emitted on this socket: each goes out once per socket. */
  sent: Set<string>;
}

type Ack = ((response: unknown) => void) | undefined;

const userRoom = (userId: string) => `user:${userId}`;

function asAppError(error: unknown): AppError | undefined {
  return error instanceof AppError ? error : undefined;
}

export async function attachRelay(httpServer: HttpServer, services: Services, options: RelayOptions = {}): Promise<Relay> {
  const { config, logger, tokens, sessions, sender, messages, events, users, clock, db, keyExchanges } = services;
  const instanceId = options.instanceId ?? `relay_${randomBytes(12).toString("base64url")}`;
  const authTimeoutMs = options.authTimeoutMs ?? 10_000;

  const io = new Server(httpServer, {
    cors: { origin: config.corsOrigins, credentials: true },
    maxHttpBufferSize: config.jsonBodyLimitBytes,
  });
  const presence = new PresenceTracker(db, clock, instanceId, users, events, logger, options.presenceTiming ?? DEFAULT_PRESENCE_TIMING);
  await presence.start();

  const channels = new Map<string, UserChannel>();
  // One feed for the events of every user on this instance (typing, presence, receipts, logouts).
  const eventFeed = followInstanceEvents(
    events,
    instanceId,
    logger,
    (event) => channels.get(event.userId)?.handleEvent(event),
    options.eventFeedRollMs,
  );
  // Presence changes of one user are applied in order (connect, then disconnect, ...).
  const presenceQueue = new KeyedQueue();
  const typing = new TypingLimiter(users, config.rateLimits.typing, clock);
  const limits = new SocketLimits(config.rateLimits, clock, config.trustProxyHops);
  io.use(limits.connection);
  let closing = false;

  const stateOf = (socket: Socket) => socket.data as SocketState;

  const emitError = (socket: Socket, error: AppError, ack?: Ack) => {
    const body = toEnvelope(error);
    if (ack) ack(body);
    else socket.emit("error", body.error);
  };

  const failSafely = (socket: Socket, error: unknown, ack?: Ack) => {
    const known = asAppError(error) ?? busyDatabaseError(error);
    if (!known) logger.error("relay handler failed", { socketId: socket.id, error });
    emitError(socket, known ?? errors.internal(), ack);
  };

  async function joinChannel(socket: Socket, userId: string) {
    let channel = channels.get(userId);
    if (!channel) {
      channel = new UserChannel(userId, messages, logger, {
        onAcknowledge: (messageId) => acknowledge(userId, messageId),
        onKeyExchangeAcknowledged: (exchangeId, what) => keyExchanges.acknowledge(userId, exchangeId, what),
        onSessionRevoked: (sessionId) => {
          for (const member of channel!.sockets) {
            if (stateOf(member).sessionId !== sessionId) continue;
            member.emit("auth_error", { code: "UNAUTHORIZED", message: "Session has ended; log in again" });
            member.disconnect(true);
          }
        },
      });
      channels.set(userId, channel);
      channel.open();
      void presenceQueue
        .run(userId, () => presence.userConnected(userId))
        .catch((error: Error) => logger.warn("presence connect failed", { userId, error }));
    }
    channel.add(socket, stateOf(socket).sent);
    // Key exchanges owed to the user (e.g. requested while they were offline). Read once presence is
    // registered: anything requested after that reaches this instance through the event feed.
    await presenceQueue.settled(userId);
    for (const owed of await keyExchanges.undeliveredEvents(userId)) channel.deliverKeyExchange(socket, owed.type, owed.payload);
  }

  function leaveChannel(socket: Socket, userId: string) {
    const channel = channels.get(userId);
    if (!channel) return;
    channel.remove(socket);
    if (channel.sockets.size > 0) return;
    channel.close();
    channels.delete(userId);
    void presenceQueue
      .run(userId, () => presence.userDisconnected(userId))
      .catch((error: Error) => logger.warn("presence disconnect failed", { userId, error }));
  }

  async function acknowledge(userId: string, messageId: string) {
    const delivered = await messages.markDelivered(userId, messageId, clock.now());
    if (!delivered) return;
    // The receipt only matters to a sender who is connected now, so it is sent after the commit.
    await events.publish(delivered.senderId, "message_delivered", {
      messageId,
      receiverId: userId,
      deliveredAt: delivered.deliveredAt.toISOString(),
    });
  }

  async function authenticate(socket: Socket, rawToken: unknown) {
    const state = stateOf(socket);
    if (state.userId) {
      socket.emit("authenticated", { userId: state.userId });
      return;
    }
    try {
      limits.authenticationAttempt(socket);
      const token = extractBearer(rawToken);
      if (!token) throw errors.unauthorized("Missing token");
      const claims = tokens.verify(token);
      if (!(await sessions.isActive(claims.sessionId, claims.userId))) {
        throw errors.unauthorized("Session has ended; log in again");
      }
      if (!socket.connected || closing) return;
      state.userId = claims.userId;
      state.sessionId = claims.sessionId;
      await socket.join(userRoom(claims.userId));
      socket.emit("authenticated", { userId: claims.userId });
      await joinChannel(socket, claims.userId);
      logger.info("socket authenticated", { socketId: socket.id, userId: claims.userId, instanceId });
      // A logout that read presence before this instance was listed cannot have reached us: check again.
      if (!(await sessions.isActive(claims.sessionId, claims.userId)) && socket.connected) {
        socket.emit("auth_error", { code: "UNAUTHORIZED", message: "Session has ended; log in again" });
        socket.disconnect(true);
      }
    } catch (error) {
      const known = asAppError(error) ?? errors.unauthorized("Authentication failed");
      if (!asAppError(error)) logger.error("socket authentication failed", { socketId: socket.id, error });
      socket.emit("auth_error", { code: known.code, message: known.message, ...(known.details ? { details: known.details } : {}) });
      socket.disconnect(true);
    }
  }

  io.on("connection", (socket) => {
    socket.data = { sent: new Set<string>() } satisfies SocketState;
    const state = stateOf(socket);

    const deadline = setTimeout(() => {
      if (state.userId || !socket.connected) return;
      socket.emit("auth_error", { code: "UNAUTHORIZED", message: "Not authenticated within 10 seconds" });
      socket.disconnect(true);
    }, authTimeoutMs);
    deadline.unref();

    // Every event counts against the socket's limit; before authentication, all but `authenticate` are refused.
    socket.use(([event, ...args], next) => {
      const ack = typeof args[args.length - 1] === "function" ? (args[args.length - 1] as Ack) : undefined;
      try {
        limits.event(socket);
      } catch (error) {
        return failSafely(socket, error, ack);
      }
      if (state.userId || event === "authenticate") return next();
      emitError(socket, errors.unauthorized("Authenticate first"), ack);
    });

    socket.on("authenticate", (payload: unknown) => {
      void authenticate(socket, (payload as { token?: unknown } | null)?.token);
    });

    socket.on("join_room", (payload: unknown, ack?: Ack) => {
      const parsed = joinRoomSchema.safeParse(payload);
      if (!parsed.success || parsed.data.userId !== state.userId) {
        emitError(socket, errors.forbidden("You can only join your own room"), ack);
        return;
      }
      ack?.({ success: true, userId: state.userId });
    });

    socket.on("send_message", async (payload: unknown, ack?: Ack) => {
      try {
        checkContentSize(payload);
        const input = parseInput(sendMessageSchema, payload);
        const { record } = await sender.send(state.userId!, input, sessions.guard(state.sessionId!, state.userId!));
        ack?.({ success: true, message: record });
      } catch (error) {
        failSafely(socket, error, ack);
      }
    });

    socket.on("message_ack", async (payload: unknown, ack?: Ack) => {
      try {
        const { messageId } = parseInput(messageAckSchema, payload);
        await acknowledge(state.userId!, messageId);
        ack?.({ success: true });
      } catch (error) {
        failSafely(socket, error, ack);
      }
    });

    for (const [event, isTyping] of [
      ["typing_start", true],
      ["typing_stop", false],
    ] as const) {
      socket.on(event, async (payload: unknown, ack?: Ack) => {
        try {
          const { contactId } = parseInput(typingSchema, payload);
          await typing.check(socket.id, state.userId!, contactId);
          await events.publish(contactId, "typing_indicator", { fromUserId: state.userId, toUserId: contactId, isTyping });
          ack?.({ success: true });
        } catch (error) {
          failSafely(socket, error, ack);
        }
      });
    }

    socket.on("disconnect", () => {
      clearTimeout(deadline);
      typing.forget(socket.id);
      limits.forget(socket);
      if (state.userId) leaveChannel(socket, state.userId);
    });

    const handshakeToken = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
    if (handshakeToken !== undefined) void authenticate(socket, handshakeToken);
  });

  return {
    io,
    instanceId,
    stats: () => ({
      sockets: io.of("/").sockets.size,
      users: channels.size,
      listeners: [...channels.values()].reduce((sum, channel) => sum + channel.listenerCount, 0),
      eventFeedOpen: eventFeed.open,
    }),
    async close({ handOff = false } = {}) {
      closing = true;
      for (const socket of io.of("/").sockets.values()) {
        // Dropping the transport (not a server disconnect) makes socket.io-client reconnect by itself.
        if (handOff) socket.conn.close();
        else socket.disconnect(true);
      }
      for (const channel of channels.values()) channel.close();
      channels.clear();
      eventFeed.stop();
      await presenceQueue.idle();
      await presence.stop();
      // io.close() would also close the HTTP server, which belongs to whoever created it.
      io.engine.close();
      io.removeAllListeners();
    },
  };
}
