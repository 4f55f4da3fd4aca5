import { createECDH, createHmac, createPrivateKey } from "node:crypto";
import { availableParallelism } from "node:os";
import { z } from "zod";

/**
 * Configuration comes from the environment, is validated once here, and is passed into createApp.
 * README.md lists every variable; keep that table and this schema in step.
 */

export type RuntimeMode = "local" | "production" | "test";

const intFrom = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const MIB = 1024 * 1024;

/**
 * bcrypt threads by default: one per core, at most this many. Past the cores more threads add no
 * logins per second, only memory (a V8 isolate each) and queueing inside the OS instead of the pool.
 */
const MAX_DEFAULT_PASSWORD_WORKERS = 4;

/** Registrations per REGISTER_GLOBAL_WINDOW_SECONDS from every address together, in production ... */
const REGISTER_GLOBAL_DEFAULT = 1000;
/** ... and in the local stack and tests, where one machine registers every demo and test user. */
const REGISTER_GLOBAL_DEFAULT_LOCAL = 1_000_000;

const listFrom = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value) =>
      value
        .split(",")
        .map((item) => item.trim())
        .filter((item) => item.length > 0),
    );

const envSchema = z.object({
  FIREBASE_PROJECT_ID: z.string().min(1).optional(),
  GCLOUD_PROJECT: z.string().min(1).optional(),
  JWT_SECRET: z.string().min(32, "JWT_SECRET must be at least 32 characters").optional(),
  // The key-transparency log's signing key: PEM PKCS#8 EC P-256 (Secret Manager in production).
  TRANSPARENCY_LOG_KEY: z.string().min(1).optional(),
  JWT_ISSUER: z.string().min(1).default("e2ee-messenger"),
  JWT_AUDIENCE: z.string().min(1).default("e2ee-messenger-client"),
  ACCESS_TOKEN_TTL_SECONDS: intFrom(900, 30, 86_400),
  REFRESH_TOKEN_TTL_SECONDS: intFrom(30 * 86_400, 300, 365 * 86_400),
  // A session's absolute lifetime from login: refresh never extends it past this.
  SESSION_MAX_AGE_SECONDS: intFrom(90 * 86_400, 300, 5 * 365 * 86_400),
  // Signed-in devices (sessions) one account may hold at once; one more login answers 409 TOO_MANY_DEVICES.
  MAX_DEVICES_PER_ACCOUNT: intFrom(10, 1, 100),
  BCRYPT_COST: intFrom(12, 4, 15),
  PASSWORD_WORKERS: intFrom(Math.min(availableParallelism(), MAX_DEFAULT_PASSWORD_WORKERS), 1, 64),
  CORS_ORIGINS: listFrom("http://localhost:5173"),
  JSON_BODY_LIMIT_BYTES: intFrom(256 * 1024, 1024, 10 * 1024 * 1024),
  // Login attempts on one account from one client address (the strict bucket a guesser meets) ...
  LOGIN_ACCOUNT_LIMIT: intFrom(10, 1, 10_000),
  LOGIN_ACCOUNT_WINDOW_SECONDS: intFrom(900, 1, 86_400),
  // ... and on one account from every address together: a ceiling for distributed guessing, set high
  // enough that holding it down (to lock the owner out) takes many addresses.
  LOGIN_ACCOUNT_CEILING_LIMIT: intFrom(200, 1, 1_000_000),
  LOGIN_ACCOUNT_CEILING_WINDOW_SECONDS: intFrom(900, 1, 86_400),
  LOGIN_IP_LIMIT: intFrom(50, 1, 100_000),
  LOGIN_IP_WINDOW_SECONDS: intFrom(900, 1, 86_400),
  KEY_EXCHANGE_TTL_SECONDS: intFrom(7 * 86_400, 60, 90 * 86_400),
  SEND_RATE_BURST: intFrom(60, 1, 100_000),
  SEND_RATE_PER_SECOND: z.coerce.number().positive().max(10_000).default(1),
  // Cloud Functions refuses requests over 32 MB before they reach us; the local stack has no such cap.
  FILE_MAX_BYTES: intFrom(25 * MIB, 1, 1024 * MIB),
  FILE_TTL_DAYS: intFrom(30, 1, 3650),
  FILE_UPLOAD_LIMIT: intFrom(30, 1, 100_000),
  FILE_UPLOAD_WINDOW_SECONDS: intFrom(3600, 1, 86_400),
  FILE_QUOTA_BYTES: intFrom(500 * MIB, 1, Number.MAX_SAFE_INTEGER),
  // Rate limits per endpoint class (README "Rate limits"): a bucket of LIMIT that refills over WINDOW_SECONDS.
  // Default depends on the mode (see below): locally every demo run registers from 127.0.0.1.
  REGISTER_IP_LIMIT: z.coerce.number().int().min(1).max(1_000_000).optional(),
  REGISTER_IP_WINDOW_SECONDS: intFrom(3600, 1, 86_400),
  // Registrations from every address together (one Firestore bucket): rotating addresses cannot mint
  // accounts past it. Default depends on the mode, like REGISTER_IP_LIMIT.
  REGISTER_GLOBAL_LIMIT: z.coerce.number().int().min(1).max(10_000_000).optional(),
  REGISTER_GLOBAL_WINDOW_SECONDS: intFrom(3600, 1, 86_400),
  REFRESH_IP_LIMIT: intFrom(120, 1, 1_000_000),
  REFRESH_IP_WINDOW_SECONDS: intFrom(900, 1, 86_400),
  SEARCH_LIMIT: intFrom(60, 1, 1_000_000),
  SEARCH_WINDOW_SECONDS: intFrom(60, 1, 86_400),
  CONTACT_READ_LIMIT: intFrom(30, 1, 1_000_000),
  CONTACT_READ_WINDOW_SECONDS: intFrom(60, 1, 86_400),
  CONTACT_WRITE_LIMIT: intFrom(60, 1, 1_000_000),
  CONTACT_WRITE_WINDOW_SECONDS: intFrom(3600, 1, 86_400),
  KEY_EXCHANGE_LIMIT: intFrom(30, 1, 1_000_000),
  KEY_EXCHANGE_WINDOW_SECONDS: intFrom(600, 1, 86_400),
  API_IP_LIMIT: intFrom(600, 1, 1_000_000),
  API_IP_WINDOW_SECONDS: intFrom(60, 1, 86_400),
  API_USER_LIMIT: intFrom(300, 1, 1_000_000),
  API_USER_WINDOW_SECONDS: intFrom(60, 1, 86_400),
  SOCKET_CONNECT_LIMIT: intFrom(30, 1, 1_000_000),
  SOCKET_CONNECT_WINDOW_SECONDS: intFrom(60, 1, 86_400),
  SOCKET_AUTH_LIMIT: intFrom(30, 1, 1_000_000),
  SOCKET_AUTH_WINDOW_SECONDS: intFrom(60, 1, 86_400),
  SOCKET_EVENT_LIMIT: intFrom(300, 1, 1_000_000),
  SOCKET_EVENT_WINDOW_SECONDS: intFrom(60, 1, 86_400),
  // How long any Firestore call, and any API request waiting on one, may take before it answers 503.
  FIRESTORE_DEADLINE_SECONDS: intFrom(15, 1, 120),
  // Connections held at once: per user on one relay instance, and per client address on one instance.
  SOCKETS_PER_USER: intFrom(10, 1, 10_000),
  SOCKETS_PER_ADDRESS: intFrom(100, 1, 1_000_000),
  // A transport that has not opened its Socket.IO session by then is closed (Socket.IO's connectTimeout).
  SOCKET_CONNECT_TIMEOUT_SECONDS: intFrom(10, 1, 10),
  TYPING_LIMIT: intFrom(10, 1, 1_000_000),
  TYPING_WINDOW_SECONDS: intFrom(5, 1, 86_400),
  TRUST_PROXY: z.coerce.number().int().min(0).max(10).optional(),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  // OpenTelemetry metrics and traces (telemetry/): "off" records nothing (benchmarks compare the two).
  TELEMETRY: z.enum(["on", "off"]).default("on"),
  // The share of traces started here that are recorded and exported; a caller's sampled traceparent is always followed.
  TRACE_SAMPLE_RATIO: z.coerce.number().min(0).max(1).optional(),
  // How often metrics are pushed to Cloud Monitoring (production only; locally /metrics is read on demand).
  METRICS_EXPORT_INTERVAL_SECONDS: intFrom(60, 10, 3600),
  PORT: intFrom(3000, 0, 65_535),
  HOST: z.string().min(1).default("localhost"),
});

/** The limits a rate limiter is given: a bucket of `limit` that refills over `windowSeconds`. */
const bucket = (limit: number, windowSeconds: number) => ({ limit, windowSeconds });

/**
 * The configuration createApp takes, grouped from the validated variables. AppConfig is this function's
 * return type, so the schema above is the one source of every field's type.
 */
function configOf(mode: RuntimeMode, vars: z.output<typeof envSchema>, secret: string, projectId: string, logKeyPem: string) {
  return {
    mode,
    projectId,
    /** The key-transparency log's signing key (PEM PKCS#8, EC P-256): never leaves the server. */
    transparencyLogKey: logKeyPem,
    jwt: {
      secret,
      issuer: vars.JWT_ISSUER,
      audience: vars.JWT_AUDIENCE,
      accessTokenTtlSeconds: vars.ACCESS_TOKEN_TTL_SECONDS,
      refreshTokenTtlSeconds: vars.REFRESH_TOKEN_TTL_SECONDS,
      /** A session's absolute lifetime since login; refresh never extends it past this. */
      sessionMaxAgeSeconds: vars.SESSION_MAX_AGE_SECONDS,
    },
    /** Signed-in devices per account (CONTRACT.md "Devices"). */
    maxDevicesPerAccount: vars.MAX_DEVICES_PER_ACCOUNT,
    bcryptCost: vars.BCRYPT_COST,
    /** Worker threads that hash and check passwords (auth/passwords.ts), so the event loop never does. */
    passwordWorkers: vars.PASSWORD_WORKERS,
    corsOrigins: vars.CORS_ORIGINS,
    jsonBodyLimitBytes: vars.JSON_BODY_LIMIT_BYTES,
    /** Login attempts (and wrong current passwords), counted in Firestore across instances. */
    loginThrottle: {
      /** One account from one client address: the strict bucket, so a guesser cannot lock the owner out. */
      perAccountAndIp: bucket(vars.LOGIN_ACCOUNT_LIMIT, vars.LOGIN_ACCOUNT_WINDOW_SECONDS),
      /** One account from every address together: a much higher ceiling on distributed guessing. */
      perAccount: bucket(vars.LOGIN_ACCOUNT_CEILING_LIMIT, vars.LOGIN_ACCOUNT_CEILING_WINDOW_SECONDS),
      perIp: bucket(vars.LOGIN_IP_LIMIT, vars.LOGIN_IP_WINDOW_SECONDS),
    },
    /** How long a key exchange may stay pending before it expires. */
    keyExchangeTtlSeconds: vars.KEY_EXCHANGE_TTL_SECONDS,
    /** Per sender→receiver pair: a burst, then a steady rate (Signal's shape). */
    sendRate: { burst: vars.SEND_RATE_BURST, refillPerSecond: vars.SEND_RATE_PER_SECOND },
    /** Encrypted file sharing: size limit, lifetime, per-user upload rate and storage quota. */
    files: {
      maxBytes: vars.FILE_MAX_BYTES,
      ttlDays: vars.FILE_TTL_DAYS,
      quotaBytes: vars.FILE_QUOTA_BYTES,
      uploadRate: bucket(vars.FILE_UPLOAD_LIMIT, vars.FILE_UPLOAD_WINDOW_SECONDS),
    },
    /**
     * The endpoint classes without a limit of their own above (login, send and upload have theirs).
     * Firestore-backed (every instance): register and refresh per address, register from every address together; search, contact listing, contact changes
     * and key exchange per user. Per process: the ceilings on all API requests per address and per user, and the
     * realtime relay's connections and authentications per address, events and typing per socket.
     */
    rateLimits: {
      register: bucket(vars.REGISTER_IP_LIMIT ?? (mode === "production" ? 20 : 1000), vars.REGISTER_IP_WINDOW_SECONDS),
      registerGlobal: bucket(
        vars.REGISTER_GLOBAL_LIMIT ?? (mode === "production" ? REGISTER_GLOBAL_DEFAULT : REGISTER_GLOBAL_DEFAULT_LOCAL),
        vars.REGISTER_GLOBAL_WINDOW_SECONDS,
      ),
      refresh: bucket(vars.REFRESH_IP_LIMIT, vars.REFRESH_IP_WINDOW_SECONDS),
      search: bucket(vars.SEARCH_LIMIT, vars.SEARCH_WINDOW_SECONDS),
      contactReads: bucket(vars.CONTACT_READ_LIMIT, vars.CONTACT_READ_WINDOW_SECONDS),
      contactWrites: bucket(vars.CONTACT_WRITE_LIMIT, vars.CONTACT_WRITE_WINDOW_SECONDS),
      keyExchange: bucket(vars.KEY_EXCHANGE_LIMIT, vars.KEY_EXCHANGE_WINDOW_SECONDS),
      apiPerIp: bucket(vars.API_IP_LIMIT, vars.API_IP_WINDOW_SECONDS),
      apiPerUser: bucket(vars.API_USER_LIMIT, vars.API_USER_WINDOW_SECONDS),
      socketConnect: bucket(vars.SOCKET_CONNECT_LIMIT, vars.SOCKET_CONNECT_WINDOW_SECONDS),
      socketAuth: bucket(vars.SOCKET_AUTH_LIMIT, vars.SOCKET_AUTH_WINDOW_SECONDS),
      socketEvents: bucket(vars.SOCKET_EVENT_LIMIT, vars.SOCKET_EVENT_WINDOW_SECONDS),
      typing: bucket(vars.TYPING_LIMIT, vars.TYPING_WINDOW_SECONDS),
    },
    /** Every Firestore call gives up after this long; API requests answer 503 by then (shared/http.ts). */
    firestoreDeadlineMs: vars.FIRESTORE_DEADLINE_SECONDS * 1000,
    /** The relay's caps on connections held at once (per process: a socket lives on one instance). */
    sockets: {
      perUser: vars.SOCKETS_PER_USER,
      perAddress: vars.SOCKETS_PER_ADDRESS,
      connectTimeoutMs: vars.SOCKET_CONNECT_TIMEOUT_SECONDS * 1000,
    },
    /**
     * Express "trust proxy" hop count: how many proxies' X-Forwarded-For entries to believe. Cloud
     * Functions and Cloud Run sit behind one Google front end that appends the client address.
     */
    trustProxyHops: vars.TRUST_PROXY ?? (mode === "production" ? 1 : 0),
    logLevel: vars.LOG_LEVEL,
    /** OpenTelemetry (telemetry/): exporters follow the mode (production: Google Cloud; locally: /metrics). */
    telemetry: {
      enabled: vars.TELEMETRY === "on",
      /** Root traces recorded (a caller's sampled `traceparent` is always followed): all locally, 10% in production. */
      sampleRatio: vars.TRACE_SAMPLE_RATIO ?? (mode === "production" ? 0.1 : 1),
      exportIntervalMs: vars.METRICS_EXPORT_INTERVAL_SECONDS * 1000,
    },
    port: vars.PORT,
    host: vars.HOST,
  };
}

export type AppConfig = ReturnType<typeof configOf>;
export type RateLimitClass = keyof AppConfig["rateLimits"];

export const DEFAULT_LOCAL_PROJECT_ID = "demo-e2ee-messenger";

export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Reads the configuration. `overrides.jwtSecret` is how an entry point supplies a secret that does not
 * live in the environment (the local stack's generated one, or the Cloud Functions secret).
 */
export function loadConfig(
  mode: RuntimeMode,
  env: NodeJS.ProcessEnv = process.env,
  overrides: { jwtSecret?: string; transparencyLogKey?: string } = {},
): AppConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n  ${problems.join("\n  ")}`);
  }
  const vars = parsed.data;
  const secret = overrides.jwtSecret ?? vars.JWT_SECRET;
  if (!secret || secret.length < 32) {
    throw new ConfigError(
      mode === "production"
        ? "JWT_SECRET is not configured: set it with `firebase functions:secrets:set JWT_SECRET` (at least 32 characters)."
        : "JWT_SECRET must be at least 32 characters.",
    );
  }
  const projectId =
    vars.FIREBASE_PROJECT_ID ?? vars.GCLOUD_PROJECT ?? (mode === "production" ? undefined : DEFAULT_LOCAL_PROJECT_ID);
  if (!projectId) throw new ConfigError("No Firebase project id: set FIREBASE_PROJECT_ID or GCLOUD_PROJECT.");

  const logKey = overrides.transparencyLogKey ?? vars.TRANSPARENCY_LOG_KEY;
  if (!logKey && mode === "production") {
    throw new ConfigError("TRANSPARENCY_LOG_KEY is not configured: set it with `firebase functions:secrets:set TRANSPARENCY_LOG_KEY` (a PEM EC P-256 private key).");
  }
  // Elsewhere, without a key of its own, every process sharing the JWT secret signs with one derived key.
  return configOf(mode, vars, secret, projectId, logKey ?? derivedLogKeyPem(secret));
}

/**
 * A P-256 private key (PEM PKCS#8) derived from a secret: tests and processes without a key of their
 * own that share the JWT secret (two test apps on one project, a standalone relay beside the API)
 * then sign with one log key. Never used in production, where the key is a secret of its own.
 */
export function derivedLogKeyPem(secret: string): string {
  const scalar = createHmac("sha256", secret).update("transparency-log-key").digest();
  // Any 32-byte value below the group order works; a SHA-256 output is below it with overwhelming odds.
  const ecdh = createECDH("prime256v1");
  ecdh.setPrivateKey(scalar);
  const point = ecdh.getPublicKey();
  const jwk = {
    kty: "EC",
    crv: "P-256",
    d: scalar.toString("base64url"),
    x: point.subarray(1, 33).toString("base64url"),
    y: point.subarray(33, 65).toString("base64url"),
  };
  return createPrivateKey({ key: jwk, format: "jwk" }).export({ type: "pkcs8", format: "pem" }).toString();
}
