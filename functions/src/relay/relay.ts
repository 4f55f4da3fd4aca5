import { randomBytes } from "node:crypto";
import type { Server as HttpServer } from "node:http";
import type { Firestore } from "firebase-admin/firestore";
import { Server } from "socket.io";
import type { Authenticate } from "../auth/authenticate";
import type { SessionStore } from "../auth/sessions";
import type { AppConfig } from "../config";
import type { DeviceService } from "../devices/service";
import type { KeyExchangeService } from "../keyexchange/service";
import { MESSAGE_EXPIRY_SWEEP_MS, runExpirySweepEvery, type MessageExpirySweep } from "../messages/expiry-sweep";
import type { MessageRepository } from "../messages/repository";
import { checkContentSize, sendMessageSchema } from "../messages/schema";
import type { MessageSender } from "../messages/send";
import type { Clock } from "../shared/clock";
import { AppError, errors, toEnvelope } from "../shared/errors";
import { busyDatabaseError, withDeadline } from "../shared/http";
import { deviceIdOf } from "../shared/ids";
import type { Logger } from "../shared/logger";
import { canJoinRoom } from "../shared/policies";
import { parseInput } from "../shared/validation";
import { errorCodeOf, type Telemetry } from "../telemetry/telemetry";
import { SEQUENCER_INTERVAL_MS, type Sequencer } from "../transparency/sequencer";
import type { KeyChangeNotices } from "../users/key-notices";
import type { UserRepository } from "../users/repository";
import { createAcknowledgements } from "./acknowledgements";
import { createSocketAuthentication } from "./authentication";
import { createDelivery } from "./delivery";
import { followInstanceEvents } from "./event-feed";
import type { UserEvents } from "./events";
import { SocketLimits } from "./limits";
import { ConnectedUsers, DEFAULT_PRESENCE_TIMING, PresenceTracker, type PresenceTiming } from "./presence";
import { CLIENT_EVENTS, joinRoomSchema, messageAckSchema, type AnyAck, type RelayServer, type RelaySocket } from "./schema";
import { shutDownRelay } from "./shutdown";
import { createTyping } from "./typing";

/**
 * The realtime relay: Socket.IO on the same HTTP server as the API (or standalone on Cloud Run). This file
 * only wires the parts together; each lives in a file named for it:
 * - authentication.ts  the handshake token or `authenticate`, once per socket, presence before `authenticated`
 * - delivery.ts        backlog by query, then messages routed to this instance, once per socket
 * - acknowledgements.ts  acks mark messages delivered and send the sender's receipt
 * - the message expiry sweep (messages/expiry-sweep.ts), run here so a connected sender hears of an
 *   expired message within MESSAGE_EXPIRY_SWEEP_MS, wherever the relay runs
 * - the key-transparency sequencer (transparency/sequencer.ts), run here because the relay is always on
 *   (Cloud Run; the local stack): bindings reach a signed head within about SEQUENCER_INTERVAL_MS
 * - typing.ts, presence.ts, limits.ts, shutdown.ts
 * - event-feed.ts, events.ts  the instance's one Firestore listener, and how events are addressed to it
 * Nothing depends on sender and receiver sharing a process: see events.ts and messages/repository.ts.
 */
/** What the relay uses from the rest of the backend (createServices in app.ts builds each of them once). */
export interface RelayDeps {
  db: Firestore;
  config: AppConfig;
  clock: Clock;
  logger: Logger;
  authenticate: Authenticate;
  /** A send checks its session inside its own transaction. */
  sessions: Pick<SessionStore, "guard" | "isActive">;
  sender: MessageSender;
  messages: MessageRepository;
  /** Deletes expired disappearing messages and tells their senders (run every `expirySweepMs`). */
  messageExpiry: MessageExpirySweep;
  keyExchanges: KeyExchangeService;
  /** Device-link answers owed to a requester device, and their acknowledgement. */
  devices: Pick<DeviceService, "owedTo" | "acknowledge">;
  users: UserRepository;
  events: UserEvents;
  telemetry: Telemetry;
  /** Unacknowledged `key_changed` notices, read on connection. */
  keyNotices: KeyChangeNotices;
  /** Merges queued key bindings into the transparency log (run every `sequencerIntervalMs`). */
  sequencer: Sequencer;
}

export interface RelayOptions {
  instanceId?: string;
  /** A socket that has not authenticated by then is disconnected (the contract says 10 s). */
  authTimeoutMs?: number;
  presenceTiming?: PresenceTiming;
  /** How often the event feed's listener is replaced by a fresh one (event-feed.ts). */
  eventFeedRollMs?: number;
  /** How often this instance sweeps expired messages (default MESSAGE_EXPIRY_SWEEP_MS; 0: never). */
  expirySweepMs?: number;
  /** How often this instance runs the transparency sequencer (default SEQUENCER_INTERVAL_MS; 0: never). */
  sequencerIntervalMs?: number;
}

export interface RelayStats {
  sockets: number;
  /** Users with at least one socket here. */
  users: number;
  /** Firestore snapshot listeners this instance holds: the event feed's (two for a moment while it rolls). */
  listeners: number;
  eventFeedOpen: boolean;
}

export interface Relay {
  readonly io: RelayServer;
  readonly instanceId: string;
  stats(): RelayStats;
  /**
   * Stops the relay. With `handOff`, sockets are dropped at the transport so Socket.IO clients
   * reconnect on their own (to another instance); otherwise they are told the server closed.
   */
  close(options?: { handOff?: boolean }): Promise<void>;
}

export async function attachRelay(httpServer: HttpServer, deps: RelayDeps, options: RelayOptions = {}): Promise<Relay> {
  const { config, logger, authenticate, sessions, sender, messages, events, users, clock, db, keyExchanges, messageExpiry, devices, keyNotices, sequencer, telemetry } = deps;
  const instanceId = options.instanceId ?? `relay_${randomBytes(12).toString("base64url")}`;
  const authTimeoutMs = options.authTimeoutMs ?? 10_000;
  const limits = new SocketLimits(config.rateLimits, config.sockets, clock, config.trustProxyHops);

  const io: RelayServer = new Server(httpServer, {
    cors: { origin: config.corsOrigins, credentials: true },
    maxHttpBufferSize: config.jsonBodyLimitBytes,
    allowRequest: limits.allowRequest,
    connectTimeout: config.sockets.connectTimeoutMs,
  });
  io.engine.on("connection", (raw: { request: import("node:http").IncomingMessage; once(event: "close", listener: () => void): void }) =>
    limits.connectionOpened(raw.request, (listener) => raw.once("close", listener)),
  );

  const presence = new PresenceTracker(db, clock, instanceId, users, events, logger, options.presenceTiming ?? DEFAULT_PRESENCE_TIMING);
  await presence.start();
  const connectedUsers = new ConnectedUsers(presence, logger);
  const acknowledgements = createAcknowledgements(messages, keyExchanges, keyNotices, events, clock, devices, telemetry);
  const delivery = createDelivery({ io, messages, keyNotices, keyExchanges, devices, acknowledgements, logger, clock });
  // This instance's metrics and socket spans (read when metrics are collected, after the feed is open).
  const observed = telemetry.relay(instanceId, Object.keys(CLIENT_EVENTS), {
    sockets: () => io.of("/").sockets.size,
    listeners: () => eventFeed.listeners,
    lastHeartbeatMs: () => presence.lastHeartbeatMs,
  });
  const eventFeed = followInstanceEvents(
    events,
    instanceId,
    logger,
    (event) => {
      observed.emitted(event.type, event.createdAtMs, true);
      delivery.handleEvent(event);
    },
    options.eventFeedRollMs,
  );
  const stopLocalEvents = events.deliverLocally(instanceId, (event) => {
    observed.emitted(event.type, event.createdAtMs, false);
    delivery.handleEvent(event);
  });
  const typing = createTyping(users, events, config.rateLimits.typing, clock);
  // Every instance sweeps: with several, the sweep's transactions make each expiry happen once
  // (messages/repository.ts expire); more instances only make the notice come sooner.
  const expirySweepMs = options.expirySweepMs ?? MESSAGE_EXPIRY_SWEEP_MS;
  const expirySweep = expirySweepMs > 0 ? runExpirySweepEvery(messageExpiry, expirySweepMs, logger) : undefined;
  // Every instance ticks; the sequencer's lease lets one merge at a time.
  const sequencerIntervalMs = options.sequencerIntervalMs ?? SEQUENCER_INTERVAL_MS;
  const sequencing = sequencerIntervalMs > 0 ? sequencer.runEvery(sequencerIntervalMs) : undefined;
  let closing = false;

  const authentication = createSocketAuthentication({
    sessionIsActive: (sessionId, userId) => sessions.isActive(sessionId, userId),
    authenticate,
    limits,
    connectedUsers,
    logger,
    instanceId,
    telemetry: observed,
    isClosing: () => closing,
    attach: delivery.attach,
    afterAuthenticated: (socket, userId) => void delivery.deliverOwed(socket, userId),
  });

  const emitError = (socket: RelaySocket, error: AppError, ack: AnyAck) => {
    const body = toEnvelope(error);
    if (ack) (ack as (response: typeof body) => void)(body);
    else socket.emit("error", body.error);
  };

  /** `source`: the event whose handler failed, or the limit on every event (`socketEvents`). */
  const failSafely = (socket: RelaySocket, error: unknown, ack: AnyAck, source: string) => {
    const known = (error instanceof AppError ? error : undefined) ?? busyDatabaseError(error);
    observed.failed(source, known ?? error);
    if (!known) logger.error("relay handler failed", { socketId: socket.id, error });
    emitError(socket, known ?? errors.internal(), ack);
  };

  io.on("connection", (socket) => {
    const deadline = setTimeout(() => {
      if (socket.data.userId || !socket.connected) return;
      socket.emit("auth_error", { code: "UNAUTHORIZED", message: "Not authenticated within 10 seconds" });
      socket.disconnect(true);
    }, authTimeoutMs);
    deadline.unref();

    // Every event counts against the socket's limit; before authentication, all but `authenticate` are refused.
    // Each event is traced (a span of its own, its handler inside it) and counted by type.
    socket.use((packet, next) =>
      observed.traceEvent(packet, () => {
        const [event, ...args] = packet;
        const last = args[args.length - 1];
        const ack = typeof last === "function" ? (last as AnyAck) : undefined;
        try {
          limits.event(socket);
        } catch (error) {
          return failSafely(socket, error, ack, "socketEvents");
        }
        if (delivery.isAttached(socket) || event === "authenticate") return next();
        emitError(socket, errors.unauthorized("Authenticate first"), ack);
      }),
    );

    socket.on("authenticate", (payload) => {
      void authentication.authenticate(socket, (payload as { token?: unknown } | null)?.token);
    });

    // The socket is in its own room from authentication on (delivery.ts finds sockets by room); joining
    // another user's is refused, so their messages never reach this socket.
    socket.on("join_room", (payload, ack) => {
      const parsed = joinRoomSchema.safeParse(payload);
      const userId = socket.data.userId!;
      if (!parsed.success || !canJoinRoom(userId, parsed.data.userId)) {
        emitError(socket, errors.forbidden("You can only join your own room"), ack);
        return;
      }
      ack?.({ success: true, userId });
    });

    socket.on("send_message", async (payload, ack) => {
      try {
        checkContentSize(payload);
        const input = parseInput(sendMessageSchema, payload);
        const { userId, sessionId } = socket.data;
        const { record, duplicate } = await withDeadline(sender.send(userId!, input, sessions.guard(sessionId!, userId!), deviceIdOf(sessionId!)), config.firestoreDeadlineMs);
        telemetry.send("socket", { stored: !duplicate });
        ack?.({ success: true, message: record, ...(duplicate ? { duplicate: true as const } : {}) });
      } catch (error) {
        telemetry.send("socket", { errorCode: errorCodeOf(error) });
        failSafely(socket, error, ack, "send_message");
      }
    });

    socket.on("message_ack", async (payload, ack) => {
      try {
        const { messageId } = parseInput(messageAckSchema, payload);
        delivery.acknowledged(socket, messageId);
        await withDeadline(acknowledgements.message(socket.data.userId!, deviceIdOf(socket.data.sessionId!), messageId), config.firestoreDeadlineMs);
        ack?.({ success: true });
      } catch (error) {
        failSafely(socket, error, ack, "message_ack");
      }
    });

    for (const [event, isTyping] of [
      ["typing_start", true],
      ["typing_stop", false],
    ] as const) {
      socket.on(event, async (payload, ack) => {
        try {
          await withDeadline(typing.indicate(socket.id, socket.data.userId!, payload, isTyping), config.firestoreDeadlineMs);
          ack?.({ success: true });
        } catch (error) {
          failSafely(socket, error, ack, event);
        }
      });
    }

    socket.on("disconnect", () => {
      clearTimeout(deadline);
      typing.forget(socket.id);
      limits.forget(socket);
      delivery.detach(socket);
      // On shutdown, presence.stop() takes the instance out of every presence document at once.
      if (socket.data.userId && !closing) connectedUsers.remove(socket.data.userId);
    });

    const handshakeToken = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
    if (handshakeToken !== undefined) void authentication.authenticate(socket, handshakeToken);
  });

  return {
    io,
    instanceId,
    stats: () => ({
      sockets: io.of("/").sockets.size,
      users: connectedUsers.size,
      listeners: eventFeed.listeners,
      eventFeedOpen: eventFeed.open,
    }),
    async close({ handOff = false } = {}) {
      closing = true;
      observed.stop();
      await expirySweep?.stop();
      await sequencing?.stop();
      stopLocalEvents();
      await shutDownRelay({ io, eventFeed, connectedUsers, presence }, { handOff });
    },
  };
}
