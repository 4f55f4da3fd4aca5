import { spawn, type ChildProcess } from "node:child_process";
import { createPublicKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { deleteApp, initializeApp, type App } from "firebase-admin/app";
import { getFirestore } from "firebase-admin/firestore";
import jwt, { type JwtPayload } from "jsonwebtoken";
import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { freePort } from "../functions/src/local/firestore-emulator";
import { isGroupAlive } from "../functions/src/local/processes";
import { COLLECTIONS, TTL_FIELDS } from "../functions/src/shared/firestore";
import { newPublicKeyPem } from "./support/app";
import { messageBody } from "./support/messages";

/**
 * What `firebase deploy` ships, as close to production as this machine allows: the built `api` function
 * (functions/lib, built by `npm test`) loaded by the Firebase Functions emulator from the repository's
 * own functions configuration, its JWT secret read from functions/.secret.local and its variables from
 * functions/.env.<project> as in production, talking to this run's Firestore emulator. The Functions
 * emulator needs neither Java nor the internet; everything lives in a temporary project folder.
 */
const ROOT = resolve(__dirname, "..");
const FIREBASE_CLI = join(ROOT, "node_modules", ".bin", "firebase");
const BUILT_FUNCTIONS = join(ROOT, "functions", "lib", "index.js");
const START_TIMEOUT_MS = 45_000;
const STOP_TIMEOUT_MS = 15_000;
/** The longest the emulator may run, whatever happens to the test. */
const HOLD_DEADLINE_MS = 120_000;

/**
 * Keeps `firebase emulators:exec` running while the test talks to the function. When the test removes
 * the sentinel file it exits, and the CLI stops its emulators. If the test process is gone (killed hard)
 * or the deadline passes, nobody will clean up: it removes the project folder and kills its whole
 * process group (the CLI, its emulators' workers and itself), so nothing outlives the test.
 */
const HOLD_SCRIPT = `
const fs = require("node:fs");
const path = require("node:path");
const [projectDir, ownerPid, deadline] = process.argv.slice(2);
const sentinel = path.join(projectDir, "running");
const ownerAlive = () => { try { process.kill(Number(ownerPid), 0); return true; } catch { return false; } };
setInterval(() => {
  if (!fs.existsSync(sentinel)) process.exit(0);
  if (!ownerAlive() || Date.now() > Number(deadline)) {
    fs.rmSync(projectDir, { recursive: true, force: true });
    process.kill(0, "SIGKILL");
  }
}, 200);
`;

interface FunctionsEmulator {
  /** The function's URL, e.g. http://127.0.0.1:PORT/demo-smoke-1a2b/us-central1/api */
  apiUrl: string;
  projectId: string;
  /** The JWT secret the function was given through functions/.secret.local. */
  jwtSecret: string;
  /** The firebase CLI, in a process group of its own that holds everything it starts. */
  cli: ChildProcess;
  output(): string;
  /** Ends the hold script; resolves with the CLI's exit code once it and all its children are gone. */
  stop(): Promise<number | null>;
}

/** The key-transparency log key the function is given through functions/.secret.local. */
const LOG_KEY_PEM = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/**
 * A project folder with the repository's functions configuration and free ports for every emulator the
 * functions emulator brings along, so nothing collides with other tests or a developer's emulators.
 */
async function writeProject(dir: string, projectId: string, jwtSecret: string): Promise<void> {
  const functionsDir = join(dir, "functions");
  mkdirSync(functionsDir);
  // The deployed source folder as the emulator sees it. lib/ resolves its modules from its real path
  // (functions/node_modules, then the workspace's); the CLI resolves firebase-functions from here.
  symlinkSync(join(ROOT, "functions", "package.json"), join(functionsDir, "package.json"));
  symlinkSync(join(ROOT, "functions", "lib"), join(functionsDir, "lib"), "dir");
  symlinkSync(join(ROOT, "node_modules"), join(functionsDir, "node_modules"), "dir");
  // The log key as docs/DEPLOY.md writes it: one double-quoted line whose \n escapes dotenv expands.
  const logKey = LOG_KEY_PEM.replace(/\n/g, "\\n");
  writeFileSync(join(functionsDir, ".secret.local"), `JWT_SECRET=${jwtSecret}\nTRANSPARENCY_LOG_KEY="${logKey}"\n`, { mode: 0o600 });
  // Deployed variables live in functions/.env.<project>; these keep the test fast and show they are read.
  writeFileSync(join(functionsDir, `.env.${projectId}`), "BCRYPT_COST=4\nACCESS_TOKEN_TTL_SECONDS=600\n");

  const repoConfig = JSON.parse(readFileSync(join(ROOT, "firebase.json"), "utf8"));
  const at = async () => ({ host: "127.0.0.1", port: await freePort() });
  const config = {
    functions: repoConfig.functions,
    emulators: {
      singleProjectMode: true,
      functions: await at(),
      hub: await at(),
      logging: await at(),
      eventarc: await at(),
      tasks: await at(),
      ui: { enabled: false },
    },
  };
  writeFileSync(join(dir, "firebase.json"), JSON.stringify(config, null, 2));
  writeFileSync(join(dir, "hold.cjs"), HOLD_SCRIPT);
}

async function startFunctionsEmulator(): Promise<FunctionsEmulator> {
  if (!existsSync(BUILT_FUNCTIONS)) throw new Error(`${BUILT_FUNCTIONS} is missing: run \`npm run build\` first.`);
  const dir = mkdtempSync(join(tmpdir(), "deploy-smoke-"));
  const projectId = `demo-smoke-${randomBytes(4).toString("hex")}`;
  const jwtSecret = randomBytes(48).toString("base64url");
  await writeProject(dir, projectId, jwtSecret);
  mkdirSync(join(dir, "tmp"));
  const sentinel = join(dir, "running");
  writeFileSync(sentinel, "");

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    FIRESTORE_EMULATOR_HOST: inject("firestoreEmulatorHost"),
    // Offline and unattended: CI skips the CLI's message-of-the-day fetch and update check; npm offline
    // answers the emulator's "is firebase-functions outdated?" (`npm show`) without the registry; a
    // config home of its own means no stored login and no usage reporting.
    CI: "1",
    NO_UPDATE_NOTIFIER: "1",
    npm_config_offline: "true",
    XDG_CONFIG_HOME: join(dir, "config"),
    // Where the CLI leaves its hub locator and the runtime's sockets: removed with the folder.
    TMPDIR: join(dir, "tmp"),
    METADATA_SERVER_DETECTION: "none",
  };
  // The function must get its project from the emulator and its secret from .secret.local, nothing else.
  for (const name of ["JWT_SECRET", "TRANSPARENCY_LOG_KEY", "FIREBASE_PROJECT_ID", "GCLOUD_PROJECT", "FIREBASE_CONFIG", "GOOGLE_APPLICATION_CREDENTIALS"]) {
    delete env[name];
  }
  const deadline = Date.now() + HOLD_DEADLINE_MS;
  const script = `'${process.execPath}' hold.cjs '${dir}' ${process.pid} ${deadline}`;
  const cli = spawn(
    process.execPath,
    [FIREBASE_CLI, "emulators:exec", "--only", "functions", "--project", projectId, "--config", join(dir, "firebase.json"), script],
    { cwd: dir, env, detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  cli.stdout!.on("data", (chunk) => (output += chunk));
  cli.stderr!.on("data", (chunk) => (output += chunk));
  const exited = new Promise<number | null>((done) => cli.once("exit", (code) => done(code)));

  let stopping: Promise<number | null> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      rmSync(sentinel, { force: true });
      const code = await Promise.race([exited, sleep(STOP_TIMEOUT_MS).then(() => undefined)]);
      // The CLI's function workers may outlive it: end whatever is left of its group.
      for (const signal of ["SIGTERM", "SIGKILL"] as const) {
        if (!isGroupAlive(cli.pid!)) break;
        try {
          process.kill(-cli.pid!, signal);
        } catch {
          // the group ended meanwhile
        }
        await sleep(1000);
      }
      if (isGroupAlive(cli.pid!)) throw new Error(`the firebase CLI's processes survived SIGKILL (group ${cli.pid})`);
      rmSync(dir, { recursive: true, force: true });
      return code === undefined ? null : code;
    })());

  try {
    const apiUrl = await waitForFunction(cli, () => output);
    return { apiUrl, projectId, jwtSecret, cli, output: () => output, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The URL the emulator announces for `api`, once the function answers its health check there. */
async function waitForFunction(cli: ChildProcess, output: () => string): Promise<string> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (cli.exitCode !== null) throw new Error(`the functions emulator exited early:\n${output()}`);
    const apiUrl = /http function initialized \((http:\/\/[^)\s]+\/api)\)/.exec(output())?.[1];
    const healthy = apiUrl && (await fetch(`${apiUrl}/health`, { signal: AbortSignal.timeout(5000) }).then((r) => r.ok, () => false));
    if (healthy) return apiUrl;
    await sleep(250);
  }
  throw new Error(`the api function did not answer within ${START_TIMEOUT_MS / 1000}s:\n${output()}`);
}

async function call(url: string, method: string, body?: unknown, token?: string) {
  const response = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { "Content-Type": "application/json" }), ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text so a failing assertion shows it
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

describe("the api function in the Firebase Functions emulator", () => {
  let emulator: FunctionsEmulator;
  let firebaseApp: App;

  beforeAll(async () => {
    emulator = await startFunctionsEmulator();
    firebaseApp = initializeApp({ projectId: emulator.projectId }, `deploy-smoke-${randomBytes(4).toString("hex")}`);
  }, 60_000);

  afterAll(async () => {
    await emulator?.stop();
    if (emulator) {
      await fetch(
        `http://${inject("firestoreEmulatorHost")}/emulator/v1/projects/${emulator.projectId}/databases/(default)/documents`,
        { method: "DELETE" },
      ).catch(() => undefined);
    }
    if (firebaseApp) await deleteApp(firebaseApp);
  }, 30_000);

  it("when users register, log in and send through the function URL, then it answers with its secret, its variables and the shared Firestore", async () => {
    const { apiUrl, jwtSecret } = emulator;
    const password = "correct horse battery staple";
    const register = (name: string) =>
      call(`${apiUrl}/auth/register`, "POST", {
        email: `${name}@example.com`,
        username: name,
        password,
        publicKey: newPublicKeyPem(),
      });

    const [alice, bob] = await Promise.all([register("smoke_alice"), register("smoke_bob")]);
    expect(alice.status, JSON.stringify(alice.body)).toBe(201);
    expect(bob.status, JSON.stringify(bob.body)).toBe(201);
    expect(alice.headers.get("x-request-id")).toBeTruthy();
    // functions/.env.<project> reached the function.
    expect(alice.body.expiresIn).toBe(600);

    const login = await call(`${apiUrl}/auth/login`, "POST", { email: "smoke_alice@example.com", password });
    expect(login.status, JSON.stringify(login.body)).toBe(200);
    // Signed with the secret from functions/.secret.local.
    const claims = jwt.verify(login.body.token, jwtSecret, { algorithms: ["HS256"] }) as JwtPayload;
    expect(claims.sub).toBe(alice.body.user.id);

    // The log key from functions/.secret.local, its public half served.
    const logKey = await call(`${apiUrl}/transparency/key`, "GET");
    expect(logKey.body.publicKey).toBe(createPublicKey(LOG_KEY_PEM).export({ type: "spki", format: "pem" }).toString());

    const sent = await call(`${apiUrl}/messages/send`, "POST", messageBody(bob.body.user.id), login.body.token);
    expect(sent.status, JSON.stringify(sent.body)).toBe(201);
    expect(sent.body.sequenceNumber).toBe(1);

    // The function wrote to this run's Firestore emulator, in the emulator's project.
    const stored = await getFirestore(firebaseApp).collection(COLLECTIONS.messages).doc(sent.body.messageId).get();
    expect(stored.get("senderId")).toBe(alice.body.user.id);
    expect(stored.get("receiverId")).toBe(bob.body.user.id);
  });

  it("when a JSON body over the limit arrives already parsed by the platform, then 413 as on the local stack", async () => {
    const oversized = JSON.stringify({ email: "smoke_alice@example.com", password: "x".repeat(300 * 1024) });
    const response = await call(`${emulator.apiUrl}/auth/login`, "POST", oversized);
    expect(response.status).toBe(413);
    expect(response.body.error.code).toBe("PAYLOAD_TOO_LARGE");
  });

  it("when the script ends, then the CLI stops its emulators and exits cleanly, leaving no process", async () => {
    const code = await emulator.stop();
    expect(code, emulator.output()).toBe(0);
    expect(isGroupAlive(emulator.cli.pid!)).toBe(false);
    // No attempt to reach the internet was reported (this machine has none).
    expect(emulator.output()).not.toMatch(/network connection|Unable to fetch|ENOTFOUND/i);
  });
});

describe("the deploy configuration", () => {
  it("when functions/ is deployed, then it carries a lockfile with exactly the versions the root lockfile tested, and predeploy refuses a stale one", async () => {
    const { buildFunctionsLockfile } = await import("../scripts/functions-lockfile.mjs");
    const rootLock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8"));
    const deployed = JSON.parse(readFileSync(join(ROOT, "functions", "package-lock.json"), "utf8"));
    const stale = JSON.stringify(deployed) !== JSON.stringify(buildFunctionsLockfile(rootLock));
    expect(stale, "functions/package-lock.json is stale: run `npm run lockfile:functions` and commit it").toBe(false);
    // Every package in it is one the workspace resolves to in the root lockfile, at the same version.
    const tested = new Set(Object.entries(rootLock.packages as Record<string, { version?: string }>).map(([path, entry]) => `${path.split("node_modules/").pop()}@${entry.version}`));
    for (const [path, entry] of Object.entries(deployed.packages as Record<string, { version?: string }>)) {
      if (path === "") continue;
      expect(tested.has(`${path.split("node_modules/").pop()}@${entry.version}`), path).toBe(true);
    }
    const config = JSON.parse(readFileSync(join(ROOT, "firebase.json"), "utf8"));
    expect(config.functions[0].predeploy[0]).toContain("functions-lockfile.mjs\" --check");
    expect(config.functions[0].ignore).not.toContain("package-lock.json");
  });

  const indexes = JSON.parse(readFileSync(join(ROOT, "firestore.indexes.json"), "utf8")) as {
    fieldOverrides: Array<{ collectionGroup: string; fieldPath: string; ttl?: boolean; indexes: unknown[] }>;
  };

  it("when a collection expires documents by TTL, then firestore.indexes.json enables it unindexed, and DEPLOY.md checks it", () => {
    const deployGuide = readFileSync(join(ROOT, "docs", "DEPLOY.md"), "utf8");
    const ttlOverrides = indexes.fieldOverrides.filter((override) => override.ttl === true);
    expect(ttlOverrides.map(({ collectionGroup, fieldPath }) => ({ collectionGroup, field: fieldPath }))).toEqual(
      expect.arrayContaining([...TTL_FIELDS]),
    );
    expect(ttlOverrides).toHaveLength(TTL_FIELDS.length);
    for (const override of ttlOverrides) {
      expect(override.indexes, `${override.collectionGroup}.${override.fieldPath}`).toEqual([]);
      expect(deployGuide).toContain(`--collection-group=${override.collectionGroup}`);
    }
  });

  it("when every concurrent request carries the largest body the platform accepts, then the api function's memory holds them", () => {
    // Cloud Functions reads a request's whole body (at most 32 MB) into memory before the app runs.
    const PLATFORM_MAX_REQUEST_MIB = 32;
    // The process itself, measured warm: Node, Express, the Admin SDK and its gRPC channels.
    const PROCESS_MIB = 150;
    const { api } = createRequire(__filename)(BUILT_FUNCTIONS);
    const endpoint = api.__endpoint as { availableMemoryMb: number; concurrency: number; cpu: number };
    expect(endpoint.cpu).toBeGreaterThanOrEqual(1); // concurrency above 1 needs a whole vCPU
    expect(PROCESS_MIB + endpoint.concurrency * PLATFORM_MAX_REQUEST_MIB).toBeLessThanOrEqual(endpoint.availableMemoryMb);
  });
});
