import type { Authenticate } from "../auth/authenticate";
import { AppError, errors } from "../shared/errors";
import type { Logger } from "../shared/logger";
import type { RelayTelemetry } from "../telemetry/telemetry";
import type { SocketLimits } from "./limits";
import type { ConnectedUsers } from "./presence";
import type { RelaySocket } from "./schema";

/**
 * Socket authentication: the handshake's `auth.token` or the `authenticate` event, answered by
 * `authenticated` or by `auth_error` and a disconnect.
 *
 * - Attempts on one socket run one after another, and a socket that has a user never gets another: a
 *   second token for the same user is answered `authenticated` again, a token for anyone else (or a
 *   bad one) ends the socket. So no socket is ever attached to two users, and none keeps hearing a user
 *   whose token it no longer holds.
 * - The user's presence on this instance is registered before `authenticated` is sent, so every event
 *   published for the user after the client sees `authenticated` is addressed to this instance.
 */
export interface AuthenticationDeps {
  /** The API's own check of a token and its session (auth/authenticate.ts). */
  authenticate: Authenticate;
  /** The session's second look, after presence is registered (the token was verified the first time). */
  sessionIsActive(sessionId: string, userId: string): Promise<boolean>;
  limits: SocketLimits;
  connectedUsers: ConnectedUsers;
  logger: Logger;
  instanceId: string;
  /** Counts authentications by outcome. */
  telemetry?: Pick<RelayTelemetry, "authenticated" | "failed">;
  isClosing(): boolean;
  /**
   * The socket's user is registered here: put the socket where its user's events reach it (synchronous,
   * so that nothing published after the last session check can pass it by).
   */
  attach(socket: RelaySocket, userId: string): void;
  /** After `authenticated`: what the user is owed (backlog). Runs on its own; failures are its own to handle. */
  afterAuthenticated(socket: RelaySocket, userId: string): void;
}

export function createSocketAuthentication(deps: AuthenticationDeps) {
  const { limits, connectedUsers, logger, instanceId } = deps;
  /** The attempts of each socket, chained. */
  const attempts = new WeakMap<RelaySocket, Promise<void>>();

  function refuse(socket: RelaySocket, error: AppError): void {
    deps.telemetry?.authenticated(error.code);
    deps.telemetry?.failed("authenticate", error);
    socket.emit("auth_error", { code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) });
    socket.disconnect(true);
  }

  /** The token's session, or throws the refusal to send as `auth_error`. */
  async function sessionOf(rawToken: unknown) {
    const authentication = await deps.authenticate(rawToken);
    if (!authentication.ok) throw authentication.error;
    return authentication.session;
  }

  async function attempt(socket: RelaySocket, rawToken: unknown): Promise<void> {
    if (!socket.connected || deps.isClosing()) return;
    limits.authenticationAttempt(socket);
    const claims = await sessionOf(rawToken);
    if (!socket.connected || deps.isClosing()) return;

    const current = socket.data.userId;
    if (current !== undefined) {
      if (current !== claims.userId) throw new AppError("FORBIDDEN", "This socket is already authenticated as another user");
      socket.emit("authenticated", { userId: current });
      return;
    }

    // Count and claim in one step (no await between), so concurrent sockets of one user respect the cap.
    limits.userSockets(connectedUsers.socketsHere(claims.userId));
    socket.data.userId = claims.userId;
    socket.data.sessionId = claims.sessionId;
    await connectedUsers.add(claims.userId);

    // A logout that read presence before this instance was listed cannot reach us through the feed: look again.
    if (!(await deps.sessionIsActive(claims.sessionId, claims.userId))) throw errors.sessionEnded();
    if (!socket.connected || deps.isClosing()) return;
    deps.attach(socket, claims.userId);
    socket.emit("authenticated", { userId: claims.userId });
    deps.telemetry?.authenticated("success");
    logger.info("socket authenticated", { socketId: socket.id, userId: claims.userId, instanceId });
    deps.afterAuthenticated(socket, claims.userId);
  }

  return {
    /** Queues an authentication attempt behind the socket's earlier ones. */
    authenticate(socket: RelaySocket, rawToken: unknown): Promise<void> {
      const previous = attempts.get(socket) ?? Promise.resolve();
      const next = previous.then(() =>
        attempt(socket, rawToken).catch((error: unknown) => {
          if (!(error instanceof AppError)) logger.error("socket authentication failed", { socketId: socket.id, error });
          refuse(socket, error instanceof AppError ? error : errors.unauthorized("Authentication failed"));
        }),
      );
      attempts.set(socket, next);
      return next;
    },
  };
}
