import { existsSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Runs firebase-tools' Cloud Storage emulator inside this process, without Java.
 *
 * `firebase emulators:start` wants the Java rules runtime before it serves anything, but the emulator's
 * Cloud Storage JSON API (what firebase-admin and GcsBlobStore use) is plain Node code and needs no rules:
 * admin requests bypass them. So we build its Express app ourselves and serve it, and never call the
 * emulator's start(). The price: this depends on firebase-tools internals (lib/emulator/storage/...),
 * which is why the version is pinned exactly and loadFirebaseToolsStorage() checks their shape.
 *
 * Used by the test run (throwaway, on a free port) and by the local stack (with a data folder: imported
 * on start, exported on exportData() and stop()).
 */

/** The firebase-tools version these internals were read from (root package.json pins it exactly). */
export const TESTED_FIREBASE_TOOLS_VERSION = "15.34.2";

/** The bucket firebase-tools' emulators treat as a project's default (constructDefaultAdminSdkConfig). */
export function defaultStorageBucket(projectId: string): string {
  return `${projectId}.appspot.com`;
}

export interface StorageEmulatorOptions {
  projectId: string;
  host?: string;
  /** 0 or absent: a free port. */
  port?: number;
  /** Where bodies and metadata live between runs (in `<dataDir>/storage`); absent means nothing is kept. */
  dataDir?: string;
  /** How often to export while running, so a crash loses little (only with dataDir). Each export copies every body. */
  exportIntervalMs?: number;
  log?: (message: string) => void;
}

export interface RunningStorageEmulator {
  /** host:port, the value for FIREBASE_STORAGE_EMULATOR_HOST. */
  readonly hostPort: string;
  readonly projectId: string;
  /** Writes every bucket, body and metadata to `<dataDir>/storage` (no-op without dataDir). */
  exportData(): Promise<void>;
  /** Forgets every object of every bucket (what was exported stays until the next export). */
  clear(): Promise<void>;
  /** Exports (with dataDir), then closes the server. Nothing is left listening or running. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------
// The few firebase-tools internals used, as minimal local types (the package ships no declarations).

/** lib/emulator/storage/metadata.js StoredFileMetadata: only what the precondition check reads. */
interface StoredFileMetadata {
  generation: number | string;
}

/** lib/emulator/storage/files.js StorageLayer. */
interface StorageLayer {
  readonly dirPath: string;
  createBucket(id: string): void;
  getMetadata(bucket: string, object: string): StoredFileMetadata | undefined;
  export(directory: string, options: { initiatedBy: string }): Promise<void>;
  import(directory: string, options: { initiatedBy: string }): void;
}

interface EmulatorArgs {
  projectId: string;
  host: string;
  port: number;
  /** Ours, not firebase-tools': where the emulator keeps bodies while it runs. */
  workDir: string;
}

/** lib/emulator/storage/index.js StorageEmulator. */
interface StorageEmulator {
  args: EmulatorArgs;
  readonly adminStorageLayer: StorageLayer;
  /** Empties its maps and points its blob folder at getPersistenceTmpDir() again (creating it). */
  reset(): void;
  getPersistenceTmpDir(): string;
}

type StorageEmulatorClass = new (args: EmulatorArgs) => StorageEmulator;

interface EmulatorRegistry {
  get(name: string): unknown;
  set(name: string, instance: unknown): void;
  clear(name: string): void;
}

export interface FirebaseToolsStorage {
  version: string;
  StorageEmulator: StorageEmulatorClass;
  /** lib/emulator/storage/server.js: the emulator's Express app (JSON API, /v0 Firebase API, /internal/*). */
  createApp(projectId: string, emulator: StorageEmulator): Promise<RequestListener>;
  registry: EmulatorRegistry;
  /** Emulators.STORAGE from lib/emulator/types.js: the registry key. */
  storageName: string;
}

export class FirebaseToolsInternalsError extends Error {
  override name = "FirebaseToolsInternalsError";
}

const requireHere = createRequire(__filename);

/** Names what is missing rather than failing later with "x is not a function". */
function checkShape(loaded: FirebaseToolsStorage, storageLayerPrototype: object): string[] {
  const emulatorPrototype = loaded.StorageEmulator?.prototype as object | undefined;
  const isFunction = (owner: object | undefined, name: string) =>
    typeof (owner as Record<string, unknown> | undefined)?.[name] === "function";
  const hasGetter = (owner: object | undefined, name: string) =>
    owner !== undefined && typeof Object.getOwnPropertyDescriptor(owner, name)?.get === "function";
  const problems: string[] = [];
  if (typeof loaded.StorageEmulator !== "function") problems.push("lib/emulator/storage: StorageEmulator class");
  for (const name of ["getPersistenceTmpDir", "reset"]) {
    if (!isFunction(emulatorPrototype, name)) problems.push(`StorageEmulator.prototype.${name}()`);
  }
  if (!hasGetter(emulatorPrototype, "adminStorageLayer")) problems.push("StorageEmulator.prototype.adminStorageLayer");
  for (const name of ["createBucket", "getMetadata", "export", "import"]) {
    if (!isFunction(storageLayerPrototype, name)) problems.push(`lib/emulator/storage/files: StorageLayer.prototype.${name}()`);
  }
  if (!hasGetter(storageLayerPrototype, "dirPath")) problems.push("lib/emulator/storage/files: StorageLayer.prototype.dirPath");
  if (typeof loaded.createApp !== "function") problems.push("lib/emulator/storage/server: createApp()");
  for (const name of ["get", "set", "clear"]) {
    if (!isFunction(loaded.registry, name)) problems.push(`lib/emulator/registry: EmulatorRegistry.${name}()`);
  }
  if (loaded.storageName !== "storage") problems.push('lib/emulator/types: Emulators.STORAGE === "storage"');
  return problems;
}

/**
 * Loads the firebase-tools internals this file uses and checks they are still there, with a message
 * that says what moved. Throws FirebaseToolsInternalsError (also when firebase-tools is not installed).
 */
export function loadFirebaseToolsStorage(): FirebaseToolsStorage {
  let loaded: FirebaseToolsStorage;
  let storageLayerPrototype: object;
  let version = "(not installed)";
  try {
    version = (requireHere("firebase-tools/package.json") as { version: string }).version;
    loaded = {
      version,
      StorageEmulator: requireHere("firebase-tools/lib/emulator/storage").StorageEmulator,
      createApp: requireHere("firebase-tools/lib/emulator/storage/server").createApp,
      registry: requireHere("firebase-tools/lib/emulator/registry").EmulatorRegistry,
      storageName: requireHere("firebase-tools/lib/emulator/types").Emulators?.STORAGE,
    };
    storageLayerPrototype = requireHere("firebase-tools/lib/emulator/storage/files").StorageLayer?.prototype ?? {};
  } catch (error) {
    throw new FirebaseToolsInternalsError(
      `The Storage emulator could not be loaded from firebase-tools ${version} ` +
        `(tested with ${TESTED_FIREBASE_TOOLS_VERSION}; run npm ci): ${(error as Error).message}`,
    );
  }
  const problems = checkShape(loaded, storageLayerPrototype);
  if (problems.length > 0) {
    throw new FirebaseToolsInternalsError(
      `firebase-tools ${version} no longer has what the in-process Storage emulator uses ` +
        `(tested with ${TESTED_FIREBASE_TOOLS_VERSION}): ${problems.join("; ")}. See functions/src/local/storage-emulator.ts.`,
    );
  }
  return loaded;
}

// ---------------------------------------------------------------------------------------------------
// What we answer in front of the emulator's app.

/** A JSON error shaped like Cloud Storage's, which @google-cloud/storage turns into an ApiError. */
function sendError(res: ServerResponse, status: number, reason: string, message: string): void {
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8" });
  res.end(JSON.stringify({ error: { code: status, message, errors: [{ reason, message, domain: "global" }] } }));
}

/** Answers once the request body is read: answering earlier can reset the connection under a client still sending. */
function answerAfterBody(req: IncomingMessage, answer: () => void): void {
  req.once("end", answer);
  req.once("error", () => undefined);
  req.resume();
}

/**
 * `/internal/setRules` (what @firebase/rules-unit-testing calls) needs the Java rules runtime, and without it
 * the app's handler throws outside Express's reach and kills the process. Rules cannot be evaluated here:
 * client SDK (/v0) requests are all denied ("no loaded ruleset"), admin requests bypass rules as in production.
 */
function refuseRules(req: IncomingMessage, res: ServerResponse): void {
  answerAfterBody(req, () =>
    sendError(res, 501, "notImplemented", "This Storage emulator runs without the rules runtime (Java): rules cannot be loaded or evaluated."),
  );
}

interface UploadPrecondition {
  bucket: string;
  name: string;
  /** The generation the object must have now; "0" means "must not exist". */
  ifGenerationMatch: string;
}

const UPLOAD_PATH = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/;

/** A new upload (simple, multipart, or the start of a resumable one) with ifGenerationMatch; otherwise undefined. */
function uploadPrecondition(req: IncomingMessage, url: URL): UploadPrecondition | "no name in the query" | undefined {
  const bucket = req.method === "POST" ? UPLOAD_PATH.exec(url.pathname)?.[1] : undefined;
  const ifGenerationMatch = url.searchParams.get("ifGenerationMatch");
  if (bucket === undefined || ifGenerationMatch === null || url.searchParams.has("upload_id")) return undefined;
  const name = url.searchParams.get("name");
  // @google-cloud/storage always puts the name in the query; one only in a multipart body would need buffering here.
  if (!name) return "no name in the query";
  return { bucket: decodeURIComponent(bucket), name, ifGenerationMatch };
}

/**
 * The emulator ignores ifGenerationMatch on uploads, and GcsBlobStore relies on it ("create only if absent":
 * a key is never overwritten). We check it ourselves, one conditional upload per object at a time, from the
 * check until the emulator has answered, so two racing uploads cannot both pass.
 */
function withUploadPreconditions(app: RequestListener, layer: StorageLayer): RequestListener {
  const turns = new Map<string, Promise<void>>();
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://storage.local");
    if (url.pathname === "/internal/setRules") return refuseRules(req, res);
    const precondition = uploadPrecondition(req, url);
    if (precondition === undefined) return app(req, res);
    if (typeof precondition === "string") {
      return answerAfterBody(req, () => sendError(res, 400, "invalid", `ifGenerationMatch needs the object name in the query (${precondition})`));
    }
    const { bucket, name, ifGenerationMatch } = precondition;
    const key = `${bucket}/${name}`;
    const previous = turns.get(key) ?? Promise.resolve();
    let closed = false;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // The next conditional upload of this object waits for this one's turn and for its response to close.
    const mine = previous.then(() => released);
    turns.set(key, mine);
    res.once("close", () => {
      closed = true;
      release();
      if (turns.get(key) === mine) turns.delete(key);
    });
    void previous.then(() => {
      if (closed) return; // the client went away while waiting
      const generation = String(layer.getMetadata(bucket, name)?.generation ?? 0);
      if (generation === ifGenerationMatch) return app(req, res);
      answerAfterBody(req, () =>
        sendError(res, 412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold."),
      );
    });
  };
}

// ---------------------------------------------------------------------------------------------------
// Start, export/import, stop.

/** `<dataDir>/storage` is the last complete export; `.next` one being written; `.previous` one being replaced. */
function exportDirs(dataDir: string) {
  const current = join(dataDir, "storage");
  return { current, next: `${current}.next`, previous: `${current}.previous` };
}

/** A crash between the two renames of an export leaves only `.previous`: it is still a complete export. */
function recoverInterruptedSwap(dataDir: string): void {
  const { current, previous } = exportDirs(dataDir);
  if (!existsSync(current) && existsSync(previous)) renameSync(previous, current);
}

async function writeExport(layer: StorageLayer, dataDir: string): Promise<void> {
  const { current, next, previous } = exportDirs(dataDir);
  await rm(next, { recursive: true, force: true });
  await mkdir(next, { recursive: true });
  // The same layout as `firebase emulators:export` writes to storage_export/: buckets.json, blobs/, metadata/.
  await layer.export(next, { initiatedBy: "e2ee-messenger" });
  // Swap in the new export only once it is complete, so an interrupted export loses nothing.
  await rm(previous, { recursive: true, force: true });
  if (existsSync(current)) renameSync(current, previous);
  renameSync(next, current);
  await rm(previous, { recursive: true, force: true });
}

/**
 * Where the emulator keeps bodies while running: inside dataDir when there is one (a folder left by a
 * killed process is then emptied on the next start), else a fresh temporary folder.
 */
function makeWorkDir(dataDir: string | undefined): string {
  if (!dataDir) return mkdtempSync(join(tmpdir(), "e2ee-storage-emulator-"));
  const workDir = join(dataDir, "storage.work");
  rmSync(workDir, { recursive: true, force: true });
  return workDir;
}

/** The emulator, keeping its bodies in args.workDir instead of the shared `<tmp>/firebase/storage/blobs`. */
function createEmulator(tools: FirebaseToolsStorage, args: EmulatorArgs): StorageEmulator {
  // getPersistenceTmpDir() is called from the base constructor, before any field of ours exists: it reads args.
  const OwnFolderStorageEmulator = class extends tools.StorageEmulator {
    override getPersistenceTmpDir(): string {
      return this.args.workDir;
    }
  };
  const emulator = new OwnFolderStorageEmulator(args);
  if (emulator.adminStorageLayer.dirPath !== args.workDir) {
    throw new FirebaseToolsInternalsError(`The Storage emulator ignored getPersistenceTmpDir() (it keeps bodies in ${emulator.adminStorageLayer.dirPath})`);
  }
  return emulator;
}

async function listen(server: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

async function close(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}

export async function startStorageEmulator(options: StorageEmulatorOptions): Promise<RunningStorageEmulator> {
  const log = options.log ?? ((message: string) => process.stderr.write(message + "\n"));
  const host = options.host ?? "127.0.0.1";
  const { projectId, dataDir } = options;
  const tools = loadFirebaseToolsStorage();
  if (tools.version !== TESTED_FIREBASE_TOOLS_VERSION) {
    log(`Storage emulator: firebase-tools ${tools.version} is installed, tested with ${TESTED_FIREBASE_TOOLS_VERSION}.`);
  }
  // firebase-tools keeps one emulator per kind per process: objects' selfLink/mediaLink name the registered one.
  if (tools.registry.get(tools.storageName) !== undefined) {
    throw new Error("A Storage emulator is already running in this process (firebase-tools allows one per process).");
  }

  if (dataDir) {
    await mkdir(dataDir, { recursive: true });
    recoverInterruptedSwap(dataDir);
  }
  const workDir = makeWorkDir(dataDir);
  const removeWorkDir = () => rmSync(workDir, { recursive: true, force: true });
  // Last resort if the process exits without stop(): leave no bodies behind in the temporary folder.
  process.on("exit", removeWorkDir);

  const emulator = createEmulator(tools, { projectId, host, port: options.port ?? 0, workDir });
  const layer = emulator.adminStorageLayer;
  const server = createServer(withUploadPreconditions(await tools.createApp(projectId, emulator), layer));
  const release = async () => {
    await close(server);
    if (tools.registry.get(tools.storageName) === emulator) tools.registry.clear(tools.storageName);
    process.off("exit", removeWorkDir);
    removeWorkDir();
  };
  // With no bucket known, listing buckets (and so exporting) asks the Firebase API for the project's config.
  const ensureDefaultBucket = () => layer.createBucket(defaultStorageBucket(projectId));

  try {
    // Registered with its real port, or the app answers 500: bucket and object metadata (selfLink,
    // mediaLink) are built from the registered emulator's host and port, even on import.
    emulator.args.port = await listen(server, host, options.port ?? 0);
    tools.registry.set(tools.storageName, emulator);
    // Synchronous, right after listening: no request is handled before the import is complete.
    const snapshot = dataDir ? exportDirs(dataDir).current : undefined;
    if (snapshot && existsSync(join(snapshot, "buckets.json"))) {
      layer.import(snapshot, { initiatedBy: "e2ee-messenger" });
      log(`Storage emulator: imported ${snapshot}`);
    }
    ensureDefaultBucket();
  } catch (error) {
    await release();
    throw error;
  }
  const port = emulator.args.port;

  let exporting: Promise<void> = Promise.resolve();
  const exportData = () => {
    if (!dataDir) return Promise.resolve();
    const run = () => {
      ensureDefaultBucket();
      return writeExport(layer, dataDir);
    };
    exporting = exporting.then(run, run);
    return exporting;
  };

  const timer =
    dataDir && options.exportIntervalMs
      ? setInterval(() => exportData().catch((error: Error) => log(`Storage emulator: periodic export failed: ${error.message}`)), options.exportIntervalMs)
      : undefined;
  timer?.unref();

  const clear = async () => {
    await rm(workDir, { recursive: true, force: true });
    emulator.reset(); // recreates workDir
    ensureDefaultBucket();
  };

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (timer) clearInterval(timer);
      try {
        await exportData();
      } catch (error) {
        log(`Storage emulator: could not export on shutdown: ${(error as Error).message}`);
      }
      await release();
    })());

  return { hostPort: `${host}:${port}`, projectId, exportData, clear, stop };
}
