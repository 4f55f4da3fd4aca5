import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../functions/src/local/firestore-emulator";
import { newPublicKeyPem } from "./support/app";

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

/** The emulator runs in a process group of its own (its pid file names the group). */
function isGroupAlive(groupId: number): boolean {
  try {
    process.kill(-groupId, 0);
    return true;
  } catch {
    return false;
  }
}

async function startStack(): Promise<RunningStack> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: "127.0.0.1", DATA_DIR: dataDir, BCRYPT_COST: "4" };
  delete env.FIRESTORE_EMULATOR_HOST; // the stack must start its own emulator
  const child = spawn(process.execPath, [SERVER], { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`local stack exited early:\n${output}`);
    const healthy = await fetch(`${url}/api/health`).then((r) => r.ok, () => false);
    if (healthy) return { child, url, output: () => output };
    await new Promise((r) => setTimeout(r, 250));
  }
  child.kill("SIGKILL");
  throw new Error(`local stack did not become healthy:\n${output}`);
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

describe("the local stack (npm start)", () => {
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

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
      // The frontend team's pages: the demo, the typed client it imports, Socket.IO's browser client, the reference.
      for (const [path, type] of [["/", "text/html"], ["/client/index.js", "javascript"], ["/socket.io/socket.io.js", "javascript"], ["/api/docs", "text/html"], ["/api/openapi.json", "application/json"]]) {
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
