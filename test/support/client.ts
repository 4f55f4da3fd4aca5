import { z } from "zod";
import { connectRealtime, createApiClient, type ApiClient, type RealtimeSocket } from "../../client/src/index.js";
import type { TestApp } from "./app";

/** The typed client (client/) pointed at a test app, optionally authenticated. */
export function apiClient(app: Pick<TestApp, "baseUrl">, token?: string): ApiClient {
  return createApiClient({ baseUrl: `${app.baseUrl}/api`, token });
}

/** The typed client's socket, authenticated in the handshake (websocket only, no reconnection: deterministic). */
export async function realtimeClient(app: Pick<TestApp, "baseUrl">, token: string): Promise<RealtimeSocket> {
  // Imported as ES modules, like the client itself: socket.io-client's CommonJS and ESM typings do not mix.
  const { io } = await import("socket.io-client");
  return connectRealtime(io, app.baseUrl, { token, transports: ["websocket"], forceNew: true, reconnection: false });
}

type JsonSchema = Record<string, unknown>;
const COMPONENTS = "#/components/schemas/";

/**
 * Checks values against the OpenAPI document's own schemas (as served), strictly: zod rebuilds each
 * JSON Schema (z.fromJSONSchema), so unknown fields, wrong types, patterns and formats all fail.
 */
export function documentSchemas(document: { components: { schemas: Record<string, JsonSchema> } }) {
  const defs = JSON.parse(JSON.stringify(document.components.schemas).replaceAll(COMPONENTS, "#/$defs/")) as Record<string, JsonSchema>;
  const cache = new Map<string, z.ZodType>();
  const schemaOf = (schema: JsonSchema): z.ZodType => {
    const key = JSON.stringify(schema);
    if (!cache.has(key)) {
      const rewritten = JSON.parse(key.replaceAll(COMPONENTS, "#/$defs/")) as JsonSchema;
      cache.set(key, z.fromJSONSchema({ $defs: defs, ...rewritten } as Parameters<typeof z.fromJSONSchema>[0]));
    }
    return cache.get(key)!;
  };
  return {
    /** Throws, naming the schema and the problems, unless `value` matches `schema` (a schema or a $ref). */
    check(schema: JsonSchema, value: unknown, what = JSON.stringify(schema)): void {
      const result = schemaOf(schema).safeParse(value);
      if (!result.success) {
        throw new Error(`${what} does not match the document: ${JSON.stringify(result.error.issues, null, 1).slice(0, 1500)}\nvalue: ${JSON.stringify(value).slice(0, 800)}`);
      }
    },
    ref: (name: string) => ({ $ref: COMPONENTS + name }),
  };
}
