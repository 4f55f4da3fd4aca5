import cors from "cors";
import express, { Router, type Express } from "express";
import helmet from "helmet";
import type { Firestore } from "firebase-admin/firestore";
import type { AppConfig } from "./config";
import { createAuthenticator } from "./auth/authenticate";
import { createPasswordHasher } from "./auth/passwords";
import { requireAuth, requireToken } from "./auth/middleware";
import { accountKeyOperations, authOperations } from "./auth/routes";
import { AuthService } from "./auth/service";
import { createSessionStore } from "./auth/sessions";
import { createAccessTokens } from "./auth/tokens";
import { LinkRequestRepository } from "./devices/repository";
import { deviceOperations } from "./devices/routes";
import { DeviceService } from "./devices/service";
import { unconfiguredBlobStore, type BlobStore } from "./files/blob-store";
import { FileCleanup } from "./files/cleanup";
import { FileRemoval } from "./files/removal";
import { FileRepository } from "./files/repository";
import { fileOperations } from "./files/routes";
import { FileService } from "./files/service";
import { systemClock, type Clock } from "./shared/clock";
import { MessageExpirySweep } from "./messages/expiry-sweep";
import { MessageRepository } from "./messages/repository";
import { messageOperations } from "./messages/routes";
import { MessageSender } from "./messages/send";
import { KeyExchangeRepository } from "./keyexchange/repository";
import { keyExchangeOperations } from "./keyexchange/routes";
import { KeyExchangeService } from "./keyexchange/service";
import { localSiteRoutes, type LocalSite } from "./local/site";
import { openApiDocument } from "./reference/openapi";
import { referenceOperations } from "./reference/routes";
import { healthOperations } from "./shared/health";
import { errorHandler, limitPreparsedBody, notFoundHandler, requestDeadline, requestLogger, requireJsonBody } from "./shared/http";
import { createLogger, type Logger } from "./shared/logger";
import { createEndpointLimits } from "./shared/endpoint-limits";
import { mountOperations, type Gates } from "./shared/mount";
import { applyFirestoreDeadline } from "./shared/firestore";
import { FirestoreRateLimiter } from "./shared/rate-limit";
import { UserEvents } from "./relay/events";
import { FirestorePresenceDirectory } from "./relay/presence";
import { createLogSigner } from "./transparency/log-key";
import { TransparencyRepository } from "./transparency/repository";
import { transparencyOperations } from "./transparency/routes";
import { Sequencer } from "./transparency/sequencer";
import { TransparencyService } from "./transparency/service";
import { KeyChangeNotices } from "./users/key-notices";
import { UserRepository } from "./users/repository";
import { userOperations } from "./users/routes";
import { UserService } from "./users/service";
import { noTelemetry, type Telemetry } from "./telemetry/telemetry";

/** Everything the app needs from outside; the Cloud Function, the local stack and tests each supply it. */
export interface AppDeps {
  db: Firestore;
  config: AppConfig;
  clock?: Clock;
  logger?: Logger;
  /** Where encrypted file bodies go; without one, the file endpoints answer 503. */
  blobs?: BlobStore;
  /** The local stack's static pages (the demo at /, the API reference at /api/docs); the Cloud Function has none. */
  site?: LocalSite;
  /** Metrics and traces (telemetry/telemetry.ts createTelemetry); without it nothing is recorded. */
  telemetry?: Telemetry;
}

/** The domain services, built once and shared by the REST routes and the realtime relay. */
export function createServices(deps: AppDeps) {
  const { config } = deps;
  const telemetry = deps.telemetry ?? noTelemetry;
  const db = applyFirestoreDeadline(deps.db, config.firestoreDeadlineMs, telemetry.instrumentFirestore(deps.db));
  const clock = deps.clock ?? systemClock;
  const logger = telemetry.correlate(deps.logger ?? createLogger({ level: config.logLevel }));
  const users = new UserRepository(db);
  // The relay's side of the user-event ports (shared/user-events.ts) that capabilities publish through.
  const events = new UserEvents(db, clock);
  const sessions = createSessionStore(db, clock, { ...config.jwt, maxDevices: config.maxDevicesPerAccount }, events);
  const tokens = createAccessTokens(config.jwt, clock);
  const authenticate = createAuthenticator(tokens, sessions);
  const presence = new FirestorePresenceDirectory(db, clock);
  const userService = new UserService(users, presence, clock);
  // Worker threads, started on the first login or registration; close() stops them (server.ts).
  const passwords = createPasswordHasher({ cost: config.bcryptCost, workers: config.passwordWorkers });
  // The key-transparency log: its queue takes bindings from auth; the relay runs the sequencer.
  const transparencyLog = new TransparencyRepository(db);
  const logSigner = createLogSigner(config.transparencyLogKey);
  const transparency = new TransparencyService(transparencyLog, logSigner, clock);
  const sequencer = new Sequencer(transparencyLog, logSigner, clock, logger);
  const keyNotices = new KeyChangeNotices(db);
  const auth = new AuthService({
    users,
    userService,
    sessions,
    tokens,
    passwords,
    limiter: new FirestoreRateLimiter(db, clock),
    clock,
    loginThrottle: config.loginThrottle,
    bindings: transparencyLog,
    keyNotices,
    events,
  });
  const messages = new MessageRepository(db, events);
  const sender = new MessageSender(messages, clock, config.sendRate, events, logger);
  // The emulator runs no TTL policy: there the sweep also deletes delivered expired messages.
  const messageExpiry = new MessageExpirySweep(messages, events, clock, logger, { purgeDelivered: config.mode !== "production" });
  const keyExchanges = new KeyExchangeService(new KeyExchangeRepository(db), users, events, clock, config.keyExchangeTtlSeconds);
  const blobs = deps.blobs ?? unconfiguredBlobStore;
  const fileRecords = new FileRepository(db);
  const fileRemoval = new FileRemoval({ files: fileRecords, blobs, events, clock, logger });
  const files = new FileService({
    files: fileRecords,
    removal: fileRemoval,
    blobs,
    limiter: new FirestoreRateLimiter(db, clock),
    clock,
    logger,
    policy: config.files,
  });
  const fileCleanup = new FileCleanup(fileRecords, fileRemoval, blobs, clock, logger);
  const limits = createEndpointLimits(config.rateLimits, db, clock);
  const devices = new DeviceService(sessions, new LinkRequestRepository(db), users, events, clock);
  return { devices, db, config, clock, logger, telemetry, users, sessions, tokens, authenticate, passwords, userService, auth, messages, sender, messageExpiry, keyExchanges, events, files, fileCleanup, limits, transparency, sequencer, keyNotices };
}

export type Services = ReturnType<typeof createServices>;

export function createApp(deps: AppDeps, services: Services = createServices(deps)): Express {
  const { config, logger, limits, telemetry } = services;
  const app = express();
  app.set("trust proxy", config.trustProxyHops);
  app.disable("x-powered-by");
  app.disable("etag");

  app.use(telemetry.http); // first: the request's span is the context everything after runs in
  app.use(requestLogger(logger)); // then, so even CORS preflights get a request id and a log line
  app.use(helmet());
  app.use(cors({ origin: config.corsOrigins, credentials: true }));
  app.use("/api", limits.perAddress); // after CORS, so a browser can read a 429
  // Who is asking, then how often they have asked (README "Rate limits"); a Router chains the two.
  const gates: Gates = {
    session: Router().use(requireAuth(services.authenticate), limits.perUser),
    token: Router().use(requireToken(services.tokens), limits.perUser),
    limits,
  };
  // File uploads are multipart bodies that files/multipart.ts reads as a stream, so the files routes are
  // mounted before the JSON-only body handling below instead of giving that global middleware a list of
  // exceptions: every other route keeps refusing non-JSON bodies, and no route here takes a JSON body.
  app.use("/api", mountOperations(fileOperations, { files: services.files }, gates));
  // Requests waiting on the database answer 503 by the deadline (uploads, mounted above, stream for as
  // long as the client sends; their database calls have the same per-call deadline).
  app.use(requestDeadline(config.firestoreDeadlineMs));
  app.use(requireJsonBody);
  app.use(limitPreparsedBody(config.jsonBodyLimitBytes)); // Cloud Functions parsed it already
  app.use(express.json({ limit: config.jsonBodyLimitBytes }));

  const api = Router();
  api.use(mountOperations(healthOperations, { db: services.db }, gates));
  api.use(mountOperations(referenceOperations, { document: openApiDocument }, gates));
  api.use(mountOperations(authOperations, { auth: services.auth }, gates));
  api.use(mountOperations(userOperations, { users: services.userService }, gates));
  api.use(mountOperations(accountKeyOperations, { auth: services.auth }, gates));
  const { sender, messages, sessions, clock } = services;
  api.use(mountOperations(messageOperations, { sender, messages, sessions, clock }, gates));
  api.use(mountOperations(keyExchangeOperations, { exchanges: services.keyExchanges }, gates));
  api.use(mountOperations(deviceOperations, { devices: services.devices }, gates));
  api.use(mountOperations(transparencyOperations, { transparency: services.transparency }, gates));
  app.use("/api", api);
  // GET /metrics and the /status dashboard: only telemetry made for the local stack (or tests) has them,
  // never the Cloud Function's (telemetry/exporters.ts).
  if (telemetry.localRoutes) app.use(telemetry.localRoutes);
  if (deps.site) app.use(localSiteRoutes(deps.site));

  app.use(notFoundHandler);
  app.use(errorHandler(logger));
  return app;
}
