import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import { freePort } from "../../functions/src/local/firestore-emulator";
import type { TestApp } from "./app";

/** The relay as Cloud Run runs it (functions/lib/relay/standalone.js, built by `npm test`), in a process of its own. */
const STANDALONE = resolve(__dirname, "..", "..", "functions", "lib", "relay", "standalone.js");

export interface RelayProcess {
  baseUrl: string;
  child: ChildProcess;
  /** Everything the process printed. */
  output(): string;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
}

/** Starts a standalone relay sharing `api`'s Firestore project and JWT secret; resolves once /healthz answers. */
export async function startRelayProcess(api: TestApp, env: Record<string, string> = {}): Promise<RelayProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [STANDALONE], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      FIREBASE_PROJECT_ID: api.projectId,
      JWT_SECRET: api.config.jwt.secret,
      METADATA_SERVER_DETECTION: "none",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  while (!(await fetch(`${baseUrl}/healthz`).then((r) => r.ok, () => false))) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill("SIGKILL");
      throw new Error(`relay did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { baseUrl, child, output: () => output, exited };
}
