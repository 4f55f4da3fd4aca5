import { mkdir, open, opendir, rm, stat } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { assertBlobKey, assertBlobPrefix, type BlobInfo, type BlobStore } from "./blob-store";

/**
 * Blobs as files under one folder (the local stack uses <DATA_DIR>/blobs, tests a temp dir). The folder
 * is never served: bodies leave only through GET /api/files/:fileId. Owner-only permissions.
 */
export class LocalBlobStore implements BlobStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  async write(key: string, source: Readable): Promise<void> {
    const path = this.pathOf(key);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    // "wx": never overwrite. Opened before streaming, so a clash fails without touching the existing file.
    const handle = await open(path, "wx", 0o600);
    try {
      await pipeline(source, handle.createWriteStream());
    } catch (error) {
      await rm(path, { force: true });
      throw error;
    }
  }

  async read(key: string): Promise<Readable | undefined> {
    try {
      const handle = await open(this.pathOf(key), "r");
      return handle.createReadStream();
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  async *list(prefix: string): AsyncGenerator<BlobInfo> {
    assertBlobPrefix(prefix);
    // Walk the deepest folder the prefix names, then filter by the whole prefix.
    const folder = prefix.includes("/") ? prefix.slice(0, prefix.lastIndexOf("/")) : "";
    for await (const path of walk(join(this.root, ...folder.split("/")))) {
      const key = relative(this.root, path).split(sep).join("/");
      if (!key.startsWith(prefix)) continue;
      const info = await stat(path).catch((error: unknown) => {
        if (isMissing(error)) return undefined; // deleted while we walked
        throw error;
      });
      if (info) yield { key, size: info.size, updatedAt: info.mtime };
    }
  }

  private pathOf(key: string): string {
    assertBlobKey(key);
    const path = join(this.root, ...key.split("/"));
    // The key pattern already rules out "..": this is the belt to its braces.
    if (!path.startsWith(this.root + sep)) throw new Error(`Blob key escapes the store: ${key}`);
    return path;
  }
}

async function* walk(folder: string): AsyncGenerator<string> {
  let dir;
  try {
    dir = await opendir(folder);
  } catch (error) {
    if (isMissing(error)) return;
    throw error;
  }
  for await (const entry of dir) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.isFile()) yield path;
  }
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === "ENOENT";
}
