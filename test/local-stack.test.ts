import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../functions/src/local/firestore-emulator";
import { isGroupAlive } from "../functions/src/local/processes";
import { newPublicKeyPem } from "./support/app";
import { multipart } from "./support/multipart";

/**
 * The local stack as `npm start` runs it: the built server in its own process, starting its own
 * Firestore emulator, keeping data in DATA_DIR across restarts, leaving nothing behind on a signal.
 * (`npm test` builds functions/lib first.)
 */
const SERVER = resolve(__dirname, "..", "functions", "lib", "server.js");
const dataDir = mkdtempSync(join(tmpdir(), "local-stack-"));

interface RunningStack {
  child: ChildProcess;
  url: string;
  output: () => string;
}

/** Every stack this file started: killed in afterAll whatever happened to the test that started it. */
const spawned = new Set<ChildProcess>();

function spawnStack(port: number, extraEnv: Record<string, string> = {}) {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: "127.0.0.1", DATA_DIR: dataDir, BCRYPT_COST: "4", ...extraEnv };
  delete env.FIRESTORE_EMULATOR_HOST; // the stack must start its own emulator
  const child = spawn(process.execPath, [SERVER], { env, stdio: ["ignore", "pipe", "pipe"] });
  spawned.add(child);
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  return { child, output: () => output };
}

async function startStack(extraEnv: Record<string, string> = {}): Promise<RunningStack> {
  const port = await freePort();
  const { child, output } = spawnStack(port, extraEnv);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`local stack exited early:\n${output()}`);
    const healthy = await fetch(`${url}/api/health`).then((r) => r.ok, () => false);
    if (healthy) return { child, url, output };
    await new Promise((r) => setTimeout(r, 250));
  }
  child.kill("SIGKILL");
  throw new Error(`local stack did not become healthy:\n${output()}`);
}

async function stopStack(stack: RunningStack, signal: NodeJS.Signals): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => stack.child.once("exit", (code) => resolve(code)));
  stack.child.kill(signal);
  return exited;
}

async function post(url: string, body: unknown, token?: string) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as any };
}

afterAll(() => {
  for (const child of spawned) child.kill("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
});

describe("the local stack (npm start)", () => {

  const user = { email: "stack@example.com", username: "stack_user", password: "a long enough password", publicKey: newPublicKeyPem() };
  let firstToken = "";

  it("when started, then it serves the API on its port with its own emulator and a generated secret", async () => {
    const stack = await startStack();
    try {
      const registered = await post(`${stack.url}/api/auth/register`, user);
      expect(registered.status).toBe(201);
      firstToken = registered.body.token;
      const profile = await fetch(`${stack.url}/api/users/profile`, { headers: { Authorization: `Bearer ${firstToken}` } });
      expect(profile.status).toBe(200);
      expect(((await profile.json()) as any).user.username).toBe("stack_user");
      const metrics = await (await fetch(`${stack.url}/metrics`)).text();
      expect(metrics).toMatch(/http_server_request_duration_count\{[^}]*http_route="\/api\/users\/profile"/);
      // The frontend team's pages: the demo, the typed client it imports, Socket.IO's browser client, the reference.
      // And what the backend is doing: the /status charts (uPlot from node_modules) and /metrics.
      for (const [path, type] of [["/", "text/html"], ["/client/index.js", "javascript"], ["/socket.io/socket.io.js", "javascript"], ["/api/docs", "text/html"], ["/api/openapi.json", "application/json"], ["/status", "text/html"], ["/status/uplot/uPlot.iife.min.js", "javascript"], ["/status/series", "application/json"], ["/metrics", "text/plain"]]) {
        const page = await fetch(`${stack.url}${path}`);
        expect(page.status, path).toBe(200);
        expect(page.headers.get("content-type"), path).toContain(type);
      }

      const secretFile = join(dataDir, "jwt-secret");
      expect(statSync(secretFile).mode & 0o777).toBe(0o600);
      const emulatorPid = Number(readFileSync(join(dataDir, "firestore-emulator.pid"), "utf8"));
      expect(isGroupAlive(emulatorPid)).toBe(true);

      expect(await stopStack(stack, "SIGTERM")).toBe(0);
      expect(isGroupAlive(emulatorPid)).toBe(false);
      expect(existsSync(join(dataDir, "firestore", "snapshot"))).toBe(true);
    } finally {
      stack.child.kill("SIGKILL");
    }
  });

  it("when restarted, then the user and its token survive, and Ctrl-C (SIGINT) also leaves no emulator", async () => {
    const stack = await startStack();
    try {
      const login = await post(`${stack.url}/api/auth/login`, { email: user.email, password: user.password });
      expect(login.status).toBe(200);
      const profile = await fetch(`${stack.url}/api/users/profile`, { headers: { Authorization: `Bearer ${firstToken}` } });
      expect(profile.status).toBe(200);

      const emulatorPid = Number(readFileSync(join(dataDir, "firestore-emulator.pid"), "utf8"));
      expect(await stopStack(stack, "SIGINT")).toBe(0);
      expect(isGroupAlive(emulatorPid)).toBe(false);
    } finally {
      stack.child.kill("SIGKILL");
    }
  });

  it("when the stack is killed hard (SIGKILL), then its emulator stops by itself within seconds", async () => {
    const stack = await startStack();
    const emulatorGroup = Number(readFileSync(join(dataDir, "firestore-emulator.pid"), "utf8"));
    await stopStack(stack, "SIGKILL");
    const deadline = Date.now() + 10_000;
    while (isGroupAlive(emulatorGroup) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(isGroupAlive(emulatorGroup)).toBe(false);
  });
});

/** Resolves with the exit code and how long the process took to exit (rejects after `timeoutMs`). */
async function exitOf(child: ChildProcess, timeoutMs = 20_000): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  if (child.exitCode !== null) return { code: child.exitCode, ms: 0 };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the process did not exit")), timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, ms: Date.now() - started });
    });
  });
}

async function registerAndSend(url: string, count: number): Promise<{ token: string; receiverToken: string; receiverId: string; ids: string[] }> {
  const suffix = Math.random().toString(36).slice(2, 8);
  const people = [];
  for (const name of ["s", "r"]) {
    const registered = await post(`${url}/api/auth/register`, {
      email: `${name}${suffix}@example.com`,
      username: `${name}_${suffix}`,
      password: "a long enough password",
      publicKey: newPublicKeyPem(),
    });
    expect(registered.status).toBe(201);
    people.push(registered.body);
  }
  const [sender, receiver] = people;
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const sent = await post(
      `${url}/api/messages/send`,
      {
        receiverId: receiver.user.id,
        encryptedContent: "AAAA",
        iv: "AAAAAAAAAAAAAAAA",
        authTag: "AAAAAAAAAAAAAAAAAAAAAA==",
        nonce: `nonce-${suffix}-${i}`,
        timestamp: new Date().toISOString(),
        signature: "AAAA",
        messageType: "text",
      },
      sender.token,
    );
    expect(sent.status, JSON.stringify(sent.body)).toBe(201);
    ids.push(sent.body.messageId);
  }
  return { token: sender.token, receiverToken: receiver.token, receiverId: receiver.user.id, ids };
}

describe("what survives what, and how a start fails (npm start)", { timeout: 90_000 }, () => {
  it("when the stack is killed hard (SIGKILL) right after acknowledged sends and an upload, then after a restart every 201 message and the file are there", async () => {
    const stack = await startStack();
    let conversation: Awaited<ReturnType<typeof registerAndSend>>;
    const fileBody = randomBytes(200 * 1024);
    let fileId = "";
    try {
      conversation = await registerAndSend(stack.url, 40);
      const form = multipart([
        { name: "receiverId", value: conversation.receiverId },
        { name: "filename", value: "photo.jpg.enc" },
        { name: "iv", value: "AAAAAAAAAAAAAAAA" },
        { name: "authTag", value: "AAAAAAAAAAAAAAAAAAAAAA==" },
        { name: "signature", value: "AAAA" },
        { name: "encryptedData", data: fileBody },
      ]);
      const uploaded = await fetch(`${stack.url}/api/files/upload`, {
        method: "POST",
        headers: { "Content-Type": form.contentType, Authorization: `Bearer ${conversation.token}` },
        body: form.body,
      });
      expect(uploaded.status).toBe(201);
      fileId = ((await uploaded.json()) as any).fileId;
    } finally {
      await stopStack(stack, "SIGKILL");
    }
    // No graceful export ran: the emulator's watchdog saved the data when its owner died.
    const again = await startStack();
    try {
      const history = await fetch(`${again.url}/api/messages/${conversation!.receiverId}?limit=100`, {
        headers: { Authorization: `Bearer ${conversation!.token}` },
      });
      expect(history.status).toBe(200);
      const body = (await history.json()) as any;
      expect(body.total).toBe(40);
      expect(body.messages.map((m: any) => m.id).sort()).toEqual([...conversation!.ids].sort());
      const download = await fetch(`${again.url}/api/files/${fileId}`, { headers: { Authorization: `Bearer ${conversation!.receiverToken}` } });
      expect(download.status).toBe(200);
      expect(Buffer.from(await download.arrayBuffer()).equals(fileBody)).toBe(true);
    } finally {
      expect(await stopStack(again, "SIGTERM")).toBe(0);
    }
  });

  it("when a second stack starts on the same data folder, then it refuses in one line naming the first, and the first keeps serving", async () => {
    const first = await startStack();
    try {
      const second = spawnStack(await freePort());
      const { code, ms } = await exitOf(second.child);
      expect(code).toBe(1);
      expect(ms).toBeLessThan(10_000);
      expect(second.output()).toContain(`Another local stack is already running on ${dataDir}: pid ${first.child.pid} at ${first.url}`);
      const emulatorGroup = Number(readFileSync(join(dataDir, "firestore-emulator.pid"), "utf8"));
      expect(isGroupAlive(emulatorGroup)).toBe(true);
      const login = await post(`${first.url}/api/auth/login`, { email: "nobody@example.com", password: "whatever it is" });
      expect(login.status).toBe(401);
    } finally {
      expect(await stopStack(first, "SIGTERM")).toBe(0);
    }
  });

  it("when the port is taken, then the start exits 1 within seconds with a clear message and starts no emulator", async () => {
    const blocker = createNetServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", () => resolve()));
    const port = (blocker.address() as AddressInfo).port;
    const otherDir = mkdtempSync(join(tmpdir(), "local-stack-port-"));
    try {
      const start = spawnStack(port, { DATA_DIR: otherDir });
      const { code, ms } = await exitOf(start.child);
      expect(code).toBe(1);
      expect(ms).toBeLessThan(10_000);
      expect(start.output()).toContain(`Port ${port} on 127.0.0.1 is already in use`);
      expect(existsSync(join(otherDir, "firestore-emulator.pid"))).toBe(false);
      expect(existsSync(join(otherDir, "stack.lock"))).toBe(false);
    } finally {
      blocker.close();
      rmSync(otherDir, { recursive: true, force: true });
    }
  });

  it("when the emulator stops answering, then a request gets 503 with Retry-After within the deadline, and the stack recovers with it", async () => {
    const stack = await startStack({ FIRESTORE_DEADLINE_SECONDS: "2" });
    const emulatorGroup = Number(readFileSync(join(dataDir, "firestore-emulator.pid"), "utf8"));
    try {
      process.kill(-emulatorGroup, "SIGSTOP");
      const started = Date.now();
      const login = await post(`${stack.url}/api/auth/login`, { email: "nobody@example.com", password: "whatever it is" });
      const elapsed = Date.now() - started;
      expect(login.status).toBe(503);
      expect(login.body).toMatchObject({ success: false, error: { code: "SERVICE_UNAVAILABLE" } });
      expect(elapsed).toBeLessThan(4000);
      // Counted as a busy database, answered over HTTP.
      expect(await (await fetch(`${stack.url}/metrics`)).text()).toMatch(/messenger_database_busy_total\{[^}]*messenger_transport="http"[^}]*\} 1/);
      process.kill(-emulatorGroup, "SIGCONT");
      // The same client answers again once the emulator does. (Health reads; the login's transactions
      // may wait a while longer for locks the emulator still holds for the abandoned attempt.)
      let after = 0;
      const deadline = Date.now() + 20_000;
      while (after !== 200 && Date.now() < deadline) {
        after = await fetch(`${stack.url}/api/health`).then((r) => r.status);
        if (after !== 200) await new Promise((r) => setTimeout(r, 500));
      }
      expect(after).toBe(200);
    } finally {
      try {
        process.kill(-emulatorGroup, "SIGCONT");
      } catch {
        // gone
      }
      expect(await stopStack(stack, "SIGTERM")).toBe(0);
    }
  });

  it("when the emulator dies while the stack runs, then the stack says so and exits 1, leaving nothing running", async () => {
    const stack = await startStack();
    const emulatorGroup = Number(readFileSync(join(dataDir, "firestore-emulator.pid"), "utf8"));
    // Kill the JVM only (the watchdog's child), as a crash or the OOM killer would.
    const jvm = readFileSync(`/proc/${emulatorGroup}/task/${emulatorGroup}/children`, "utf8").trim().split(/\s+/).map(Number)[0]!;
    process.kill(jvm, "SIGKILL");
    const { code } = await exitOf(stack.child).catch((error: Error) => {
      throw new Error(`${error.message}; its output:\n${stack.output()}`);
    });
    expect(code).toBe(1);
    expect(stack.output()).toContain("The Firestore emulator stopped unexpectedly");
    const deadline = Date.now() + 10_000;
    while (isGroupAlive(emulatorGroup) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(isGroupAlive(emulatorGroup)).toBe(false);
    expect(existsSync(join(dataDir, "stack.lock"))).toBe(false);
  });
});
