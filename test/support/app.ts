import { generateKeyPairSync, randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { createServer, type Server } from "node:http";
import { deleteApp, initializeApp } from "firebase-admin/app";
import { getFirestore, type Firestore } from "firebase-admin/firestore";
import { getStorage } from "firebase-admin/storage";
import jwt from "jsonwebtoken";
import { createApp, createServices, type Services } from "../../functions/src/app";
import { loadConfig, type AppConfig } from "../../functions/src/config";
import type { BlobStore } from "../../functions/src/files/blob-store";
import { GcsBlobStore } from "../../functions/src/files/gcs-blob-store";
import { defaultStorageBucket } from "../../functions/src/local/storage-emulator";
import { DEFAULT_LOCAL_SITE } from "../../functions/src/local/site";
import { attachRelay, type Relay, type RelayOptions } from "../../functions/src/relay/relay";
import { createLogger } from "../../functions/src/shared/logger";
import { createTelemetry, type Telemetry } from "../../functions/src/telemetry/telemetry";
import { TestClock } from "./clock";
import type { Curve } from "./webcrypto";

/** A clock tests can move: starts at real time, then only moves when told. */
export { TestClock };

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export interface RequestOptions {
  body?: unknown;
  /** Sent as "Authorization: Bearer <token>". */
  token?: string;
  headers?: Record<string, string>;
  /** A raw body sent as is (with its own Content-Type in headers). */
  rawBody?: string | Buffer;
}

export interface TestApp {
  baseUrl: string;
  /** The Firestore project this app works in; pass it to another startTestApp to share the data. */
  projectId: string;
  db: Firestore;
  config: AppConfig;
  services: Services;
  /** Present when started with the `relay` option. */
  relay?: Relay;
  clock: TestClock;
  /**
   * The app's own blob store (file bodies), for looking at what is stored the way no client can. A
   * GcsBlobStore on the run's Storage emulator, in the bucket of this app's project: apps that share a
   * projectId share it, as they share Firestore. Closing any of them deletes every object in it.
   */
  blobs: BlobStore;
  /** Every log line the app wrote, parsed. */
  logs: string[];
  /** Present when started with the `telemetry` option: /metrics and /status are served, spans kept in memory. */
  telemetry?: Telemetry;
  request<T = any>(method: string, path: string, options?: RequestOptions): Promise<ApiResponse<T>>;
  close(): Promise<void>;
}

const TEST_ENV = {
  BCRYPT_COST: "4",
  JWT_SECRET: "test-secret-that-is-long-enough-0123456789",
  LOG_LEVEL: "debug",
  // Every test request comes from 127.0.0.1, and a test file makes more of them in a minute than any
  // client should: the limits of the endpoint classes are raised here, and the stories about them
  // (test/security/rate-limits.test.ts) set small ones explicitly.
  REGISTER_IP_LIMIT: "1000000",
  REGISTER_GLOBAL_LIMIT: "1000000",
  REFRESH_IP_LIMIT: "1000000",
  SEARCH_LIMIT: "1000000",
  CONTACT_READ_LIMIT: "1000000",
  CONTACT_WRITE_LIMIT: "1000000",
  KEY_EXCHANGE_LIMIT: "1000000",
  API_IP_LIMIT: "1000000",
  API_USER_LIMIT: "1000000",
  SOCKET_CONNECT_LIMIT: "1000000",
  SOCKET_AUTH_LIMIT: "1000000",
  SOCKET_EVENT_LIMIT: "1000000",
  SOCKETS_PER_ADDRESS: "1000000",
};

export interface StartOptions {
  /**
   * Work in this Firestore project (and its Storage bucket) instead of a fresh one, e.g. another app's
   * `projectId`, to run two instances against one database and one bucket. Closing any of them clears
   * the project's data and objects.
   */
  projectId?: string;
  /** Attach the realtime relay to the same server, as the local stack does. */
  relay?: RelayOptions;
  /** Serve the local stack's static pages (the demo at /, the API reference at /api/docs), as server.ts does. */
  site?: boolean;
  /** Record metrics and traces as the local stack does (GET /metrics, /status), spans in memory. */
  telemetry?: boolean;
}

/**
 * The real app over real HTTP against the real emulators, in a Firestore project of its own and with
 * file bodies in that project's default bucket on the Storage emulator (so test files are isolated from
 * each other). `env` overrides configuration variables.
 */
export async function startTestApp(env: Record<string, string> = {}, options: StartOptions = {}): Promise<TestApp> {
  const projectId = options.projectId ?? `demo-test-${randomBytes(6).toString("hex")}`;
  // Firebase app names must be unique per process, even when two apps share a project.
  // The Storage emulator makes a bucket the first time a request names it: there is nothing to create.
  const firebaseApp = initializeApp({ projectId, storageBucket: defaultStorageBucket(projectId) }, `${projectId}-${randomBytes(4).toString("hex")}`);
  const db = getFirestore(firebaseApp);
  const bucket = getStorage(firebaseApp).bucket();
  const blobs = new GcsBlobStore(() => bucket);
  const config = loadConfig("test", { ...TEST_ENV, FIREBASE_PROJECT_ID: projectId, ...env });
  const clock = new TestClock();
  const logs: string[] = [];
  const logger = createLogger({ level: "debug", sink: (line) => logs.push(line) });
  const telemetry = options.telemetry ? createTelemetry(config, { service: "messenger-api" }) : undefined;
  const deps = { db, config, clock, logger, blobs, site: options.site ? DEFAULT_LOCAL_SITE : undefined, telemetry };
  const services = createServices(deps);
  const server: Server = createServer(createApp(deps, services));
  const relay = options.relay ? await attachRelay(server, services, options.relay) : undefined;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    baseUrl,
    projectId,
    db,
    config,
    services,
    relay,
    clock,
    blobs,
    logs,
    telemetry,
    async request(method, path, options = {}) {
      const headers: Record<string, string> = { ...options.headers };
      let body: string | Buffer | undefined;
      if (options.rawBody !== undefined) {
        body = options.rawBody;
      } else if (options.body !== undefined) {
        headers["Content-Type"] ??= "application/json";
        body = JSON.stringify(options.body);
      }
      if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
      const response = await fetch(baseUrl + path, { method, headers, body });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // not JSON: keep the text so the assertion shows it
      }
      return { status: response.status, headers: response.headers, body: parsed as any };
    },
    async close() {
      await relay?.close();
      await services.passwords.close();
      await telemetry?.shutdown();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fetch(
        `http://${process.env.FIRESTORE_EMULATOR_HOST}/emulator/v1/projects/${projectId}/databases/(default)/documents`,
        { method: "DELETE" },
      ).catch(() => undefined);
      // The emulator has no bucket deletion: its objects go, its (empty) entry stays until the run ends.
      await bucket.deleteFiles({ force: true }).catch(() => undefined);
      await deleteApp(firebaseApp);
    },
  };
}

/** A PEM SPKI public key as the browser exports it (Web Crypto spki, wrapped in PEM). */
export function newPublicKeyPem(curve: Curve = "P-256"): string {
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: curve === "P-256" ? "prime256v1" : "secp384r1" });
  return publicKey.export({ type: "spki", format: "pem" }).toString();
}

let userCounter = 0;

export interface RegisteredUser {
  id: string;
  email: string;
  username: string;
  password: string;
  publicKey: string;
  token: string;
  refreshToken: string;
}

/** Registers a fresh user through the API and returns what the client would hold. */
export async function registerUser(app: TestApp, overrides: Partial<Record<"email" | "username" | "password" | "publicKey", string>> = {}): Promise<RegisteredUser> {
  userCounter += 1;
  const suffix = `${process.pid}_${userCounter}_${randomBytes(2).toString("hex")}`;
  const input = {
    email: `user${suffix}@example.com`,
    username: `u${suffix}`.slice(0, 30),
    password: "correct horse battery staple",
    publicKey: newPublicKeyPem(),
    ...overrides,
  };
  const response = await app.request("POST", "/api/auth/register", { body: input });
  if (response.status !== 201) throw new Error(`register failed: ${response.status} ${JSON.stringify(response.body)}`);
  return {
    ...input,
    id: response.body.user.id,
    email: response.body.user.email,
    token: response.body.token,
    refreshToken: response.body.refreshToken,
  };
}

export interface RawResponse {
  status: number;
  headers: import("node:http").IncomingHttpHeaders;
  /** The body as text. */
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  body: any;
}

/**
 * A request over node:http with the path sent byte for byte (fetch would normalise "..", "%2e%2e" and the
 * like) and with full control of the headers (Content-Length, Transfer-Encoding, Content-Encoding).
 */
export async function rawRequest(
  app: Pick<TestApp, "baseUrl">,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<RawResponse> {
  const { request } = await import("node:http");
  const url = new URL(app.baseUrl);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
      });
    });
    req.on("error", reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** A JSON value (or a string as is) in base64url, as a JWT's header and payload are written. */
export function base64url(value: unknown): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

/** The claims of a JWT, decoded without verifying it. */
export function claimsOf(token: string): jwt.JwtPayload {
  const claims = jwt.decode(token);
  if (claims === null || typeof claims === "string") throw new Error(`not a JWT: ${token}`);
  return claims;
}
