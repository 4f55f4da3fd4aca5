import { z } from "zod";
import { accountKeyOperations, authOperations } from "../auth/routes";
import { deviceOperations } from "../devices/routes";
import { deviceSchema, linkRequestViewSchema } from "../devices/schema";
import { fileOperations } from "../files/routes";
import { fileRecordSchema } from "../files/schema";
import { keyExchangeOperations } from "../keyexchange/routes";
import { exchangeViewSchema } from "../keyexchange/schema";
import { messageOperations } from "../messages/routes";
import { messageRecordSchema } from "../messages/schema";
import { CLIENT_EVENTS, SERVER_EVENTS, presenceEventSchema, okAckSchema, typingSchema, type ClientEvent, type ServerEvent } from "../relay/schema";
import { ERROR_CODES, type ErrorCode } from "../shared/errors";
import { healthOperations } from "../shared/health";
import type { Operation, OperationGroup } from "../shared/operations";
import { doneResponseSchema, errorEnvelopeSchema, errorSchema } from "../shared/responses";
import { transparencyOperations } from "../transparency/routes";
import { signedHeadSchema } from "../transparency/schema";
import { userOperations } from "../users/routes";
import { contactSchema, profileSchema, publicUserSchema } from "../users/presenters";
import { referenceOperations } from "./routes";

/**
 * The OpenAPI 3.1 document, generated from the operations the app mounts (each capability's routes.ts)
 * and the relay's table of events (relay/schema.ts): request shapes with `z.toJSONSchema(…, { io: "input" })`
 * (what a client may send: defaults optional, before transforms), answers with `io: "output"`.
 * Every request body, answer and event payload is a named component, so the typed client's generated
 * types (client/src/generated.ts) have the same names.
 */

export type JsonSchema = { [key: string]: unknown };
type Registry = ReturnType<typeof z.registry<{ id: string }>>;

/** Every operation group, in the document's order (app.ts mounts the same groups; test/openapi.test.ts checks). */
const GROUPS: Array<OperationGroup<never>> = [
  healthOperations,
  referenceOperations,
  authOperations,
  userOperations,
  accountKeyOperations,
  messageOperations,
  keyExchangeOperations,
  fileOperations,
  deviceOperations,
  transparencyOperations,
];

/** The document's tags: one per group, described here, in the order the reference page shows them. */
const TAGS: Record<string, string> = {
  Health: "Liveness of the API and of Firestore.",
  Auth: "Registration, login, token refresh, logout and password change.",
  Users: "The caller's profile, contacts, user search and identity key change.",
  Messages: "Encrypted messages: send and read history. Realtime delivery is over Socket.IO (x-socket-events).",
  KeyExchange: "ECDH over signed ephemeral keys; the server verifies and relays, never sees a private key.",
  Files: "Encrypted file sharing between an uploader and a receiver.",
  Devices: "The account's signed-in devices, and linking a new one: the identity key moves end to end encrypted, the server relays opaque bytes.",
  Transparency: "The key-transparency log: every identity key ever bound to an account, in an RFC 9162 Merkle tree with signed heads and proofs a client verifies.",
  Reference: "This document.",
};

/** An operation as the document lists it: its full path under /api, and its group's tag. */
type Documented = Operation<never> & { tag: string };

function documentedOperations(): Documented[] {
  return GROUPS.flatMap((group) => {
    if (!(group.tag in TAGS)) throw new Error(`The tag ${group.tag} has no description in reference/openapi.ts`);
    return group.operations.map((operation) => ({ ...operation, path: group.prefix + operation.path, tag: group.tag }));
  });
}

const COMPONENTS = "#/components/schemas/";
const refTo = (id: string) => ({ $ref: COMPONENTS + id });
const pascal = (name: string) => name.replace(/(^|_)([a-z])/g, (_, _sep, letter: string) => letter.toUpperCase());

/** Records that appear in many answers get a name of their own (the rest are named after their use). */
const NAMED_OUTPUTS: Array<[z.ZodType, string]> = [
  [messageRecordSchema, "MessageRecord"],
  [fileRecordSchema, "FileRecord"],
  [profileSchema, "Profile"],
  [contactSchema, "Contact"],
  [publicUserSchema, "PublicUser"],
  [exchangeViewSchema, "KeyExchange"],
  [deviceSchema, "Device"],
  [linkRequestViewSchema, "LinkRequest"],
  [signedHeadSchema, "SignedTreeHead"],
  [errorEnvelopeSchema, "ErrorEnvelope"],
  [errorSchema, "ErrorBody"],
  [presenceEventSchema, "PresenceEvent"],
  [okAckSchema, "OkAck"],
  [doneResponseSchema, "DoneResponse"],
];
const NAMED_INPUTS: Array<[z.ZodType, string]> = [[typingSchema, "TypingPayload"]];

/** Registers `schema` under `id` unless it already has a name; returns its name. */
function named(registry: Registry, schema: z.ZodType, id: string): string {
  const existing = registry.get(schema)?.id;
  if (existing) return existing;
  registry.add(schema, { id });
  return id;
}

/** zod's per-schema `$schema`/`$id`, and the ±2^53 bounds every `.int()` adds, are noise in a component. */
function tidy(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(tidy);
  if (value === null || typeof value !== "object") return value;
  const out: JsonSchema = {};
  for (const [key, inner] of Object.entries(value)) {
    if (key === "$schema" || key === "$id") continue;
    if ((key === "minimum" || key === "maximum") && Math.abs(inner as number) === Number.MAX_SAFE_INTEGER) continue;
    out[key] = tidy(inner);
  }
  return out;
}

function convert(registry: Registry, io: "input" | "output"): Record<string, JsonSchema> {
  const { schemas } = z.toJSONSchema(registry, { io, uri: (id) => COMPONENTS + id, unrepresentable: "any" });
  return tidy(schemas) as Record<string, JsonSchema>;
}

/** The errors an operation can answer with: its own, plus those that come with auth, input and the rate limits. */
function errorCodesOf(operation: Documented): ErrorCode[] {
  const codes = new Set<ErrorCode>();
  if (operation.body || operation.multipart || operation.params || operation.query) codes.add("VALIDATION_ERROR");
  if (operation.auth !== "public") {
    codes.add("UNAUTHORIZED");
    codes.add("TOKEN_EXPIRED");
  }
  if (operation.body || operation.multipart) {
    codes.add("PAYLOAD_TOO_LARGE");
    codes.add("UNSUPPORTED_MEDIA_TYPE");
  }
  for (const code of operation.errors) codes.add(code);
  codes.add("RATE_LIMITED");
  return [...codes].sort((a, b) => ERROR_CODES[a] - ERROR_CODES[b]);
}

function parametersOf(operation: Documented, inputs: (schema: z.ZodType) => JsonSchema) {
  const parameters: JsonSchema[] = [];
  for (const [where, schema] of [
    ["path", operation.params],
    ["query", operation.query],
  ] as const) {
    if (!schema) continue;
    const json = inputs(schema);
    const required = new Set((json.required as string[] | undefined) ?? []);
    for (const [name, property] of Object.entries(json.properties as Record<string, JsonSchema>)) {
      const { description, ...rest } = property;
      parameters.push({
        name,
        in: where,
        required: where === "path" || required.has(name),
        ...(description ? { description } : {}),
        schema: rest,
      });
    }
  }
  return parameters;
}

function errorResponses(operation: Documented, outputs: Registry) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of errorCodesOf(operation)) byStatus.set(ERROR_CODES[code], [...(byStatus.get(ERROR_CODES[code]) ?? []), code]);
  const responses: Record<string, JsonSchema> = {};
  for (const [status, codes] of byStatus) {
    responses[String(status)] = {
      description: codes.join(", "),
      ...(codes.includes("RATE_LIMITED") ? { headers: { "Retry-After": { description: "Seconds to wait", schema: { type: "integer" } } } } : {}),
      content: { "application/json": { schema: refTo(errorBodyId(operation, status, outputs)) } },
    };
  }
  return responses;
}

function errorBodyId(operation: Documented, status: number, outputs: Registry): string {
  const special = operation.errorBodies?.[status];
  return special ? named(outputs, special, `${pascal(operation.operationId)}Error${status}`) : "ErrorEnvelope";
}

function headersOf(headers: Record<string, string> | undefined) {
  if (!headers) return {};
  return {
    headers: Object.fromEntries(Object.entries(headers).map(([name, description]) => [name, { description, schema: { type: "string" } }])),
  };
}

export function buildOpenApiDocument() {
  const inputs = z.registry<{ id: string }>();
  const outputs = z.registry<{ id: string }>();
  for (const [schema, id] of NAMED_OUTPUTS) named(outputs, schema, id);
  for (const [schema, id] of NAMED_INPUTS) named(inputs, schema, id);

  const operations = documentedOperations();
  const paths: Record<string, Record<string, JsonSchema>> = {};
  const multipartParts: Record<string, { filePart: string; fileDescription: string }> = {};
  for (const operation of operations) {
    const name = pascal(operation.operationId);
    let requestBody: JsonSchema | undefined;
    if (operation.body) {
      const id = named(inputs, operation.body, `${name}Request`);
      requestBody = { required: true, content: { "application/json": { schema: refTo(id) } } };
    } else if (operation.multipart) {
      const id = named(inputs, operation.multipart.fields, `${name}Request`);
      multipartParts[id] = operation.multipart;
      requestBody = {
        required: true,
        content: {
          "multipart/form-data": {
            schema: refTo(id),
            encoding: { [operation.multipart.filePart]: { contentType: "application/octet-stream" } },
          },
        },
      };
    }
    const { success, alsoSucceeds } = operation;
    const successContent = success.binary
      ? { "application/octet-stream": { schema: { type: "string", format: "binary" } } }
      : { "application/json": { schema: refTo(named(outputs, success.schema!, `${name}Response`)) } };
    const alternative = alsoSucceeds && {
      [String(alsoSucceeds.status)]: {
        description: alsoSucceeds.description,
        ...headersOf(alsoSucceeds.headers),
        content: { "application/json": { schema: refTo(named(outputs, alsoSucceeds.schema, alsoSucceeds.component)) } },
      },
    };

    paths[operation.path] ??= {};
    paths[operation.path]![operation.method] = {
      operationId: operation.operationId,
      tags: [operation.tag],
      summary: operation.summary,
      ...(operation.description ? { description: operation.description } : {}),
      ...(operation.auth !== "public" ? { security: [{ bearerAuth: [] }] } : { security: [] }),
      parameters: [], // filled below, once the components exist
      ...(requestBody ? { requestBody } : {}),
      responses: {
        [String(success.status)]: { description: success.description, ...headersOf(success.headers), content: successContent },
        ...alternative,
        ...errorResponses(operation, outputs),
      },
    };
  }

  const socketEvents = socketEventsSection(inputs, outputs);
  const schemas = { ...convert(inputs, "input"), ...convert(outputs, "output") };
  for (const [id, { filePart, fileDescription }] of Object.entries(multipartParts)) {
    const fields = schemas[id]!;
    fields.properties = { ...(fields.properties as object), [filePart]: { type: "string", format: "binary", description: fileDescription } };
    fields.required = [...((fields.required as string[]) ?? []), filePart];
  }

  // Path and query parameters are listed one by one, from the same schemas, in input form.
  const inputJson = (schema: z.ZodType) => tidy(z.toJSONSchema(schema, { io: "input", unrepresentable: "any" })) as JsonSchema;
  for (const operation of operations) paths[operation.path]![operation.method]!.parameters = parametersOf(operation, inputJson);

  return {
    openapi: "3.1.0",
    info: {
      title: "E2EE messenger API",
      version: "1.0.0",
      description:
        "The REST API and the realtime (Socket.IO) events of the end-to-end-encrypted messenger backend. The server never sees plaintext or private keys. Every failure is `{ success: false, error: { code, message, details? } }` (ErrorEnvelope); an unknown route is 404 NOT_FOUND. docs/API.md is the narrative reference; this document is generated from the zod schemas the routes validate with.",
    },
    servers: [{ url: "/api", description: "This server (locally http://localhost:3000/api)" }],
    tags: Object.entries(TAGS).map(([name, description]) => ({ name, description })),
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b))),
      securitySchemes: { bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
    },
    "x-socket-events": socketEvents,
  };
}

export type OpenApiDocument = ReturnType<typeof buildOpenApiDocument>;

function socketEventsSection(inputs: Registry, outputs: Registry) {
  const failed = named(outputs, errorEnvelopeSchema, "ErrorEnvelope");
  const clientToServer = Object.fromEntries(
    Object.entries<ClientEvent>(CLIENT_EVENTS).map(([event, spec]) => [
      event,
      {
        description: spec.description,
        payload: refTo(named(inputs, spec.payload, `${pascal(event)}Payload`)),
        ...(spec.ack ? { ack: { oneOf: [refTo(named(outputs, spec.ack, `${pascal(event)}Ack`)), refTo(failed)] } } : {}),
      },
    ]),
  );
  const serverToClient = Object.fromEntries(
    Object.entries<ServerEvent>(SERVER_EVENTS).map(([event, spec]) => [
      event,
      {
        description: spec.description,
        payload: refTo(named(outputs, spec.payload, `${pascal(event)}Event`)),
        ...(spec.clientAcks ? { clientAcks: true } : {}),
      },
    ]),
  );
  return {
    description:
      "Socket.IO 4, path /socket.io: on the API's origin locally (ws://localhost:3000), on the relay's Cloud Run URL in production (docs/DEPLOY.md). Authenticate in the handshake (`io(url, { auth: { token } })`) or with the `authenticate` event. `payload` is the event's single argument; `ack` what the server passes to the client's ack callback; `clientAcks` events expect the client to call theirs.",
    path: "/socket.io",
    clientToServer,
    serverToClient,
  };
}

let cached: OpenApiDocument | undefined;
/** Built once per process: the schemas do not change while it runs. */
export function openApiDocument(): OpenApiDocument {
  return (cached ??= buildOpenApiDocument());
}
