import { randomBytes } from "node:crypto";

/** A part of a multipart/form-data body: a text field, or a file (its filename defaults to "blob"). */
export type Part = { name: string; value: string } | { name: string; data: Buffer; filename?: string };

/**
 * A multipart/form-data body built byte by byte, so every malformed shape can be sent. `"`, CR and LF in
 * part names and filenames are replaced with "_" (they would break the Content-Disposition header itself).
 */
export function multipart(parts: Part[]): { body: Buffer; contentType: string } {
  const boundary = `----e2ee-${randomBytes(12).toString("hex")}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${part.name.replace(/["\r\n]/g, "_")}"`;
    if ("data" in part) head += `; filename="${(part.filename ?? "blob").replace(/["\r\n]/g, "_")}"\r\nContent-Type: application/octet-stream`;
    chunks.push(Buffer.from(`${head}\r\n\r\n`), "data" in part ? part.data : Buffer.from(part.value, "utf8"), Buffer.from("\r\n"));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}
