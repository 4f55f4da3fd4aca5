#!/usr/bin/env node
// Writes client/src/generated.ts from the API's OpenAPI document, which the backend generates from the
// zod schemas its routes validate with. So the client's types have one source: those schemas. Why not
// openapi-typescript: client/README.md.
//
//   npm run generate:client                 (from the repository root: builds functions/, then this)
//   node client/scripts/generate.mjs --check  exits 1 if generated.ts is not what the document gives
//   ... --document file.json | -            read the document from a file or stdin instead of functions/lib
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const OUTPUT = join(here, "..", "src", "generated.ts");
const COMPONENTS = "#/components/schemas/";

function loadDocument(source) {
  if (source === "-") return JSON.parse(readFileSync(0, "utf8"));
  if (source) return JSON.parse(readFileSync(source, "utf8"));
  const require = createRequire(import.meta.url);
  try {
    return require("../../functions/lib/reference/openapi.js").buildOpenApiDocument();
  } catch (error) {
    throw new Error(`Cannot load the OpenAPI document from functions/lib (run \`npm run build\` first): ${error.message}`);
  }
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const key = (name) => (IDENTIFIER.test(name) ? name : JSON.stringify(name));
const pascal = (name) => name.replace(/(^|_)([a-z])/g, (_, _sep, letter) => letter.toUpperCase());

/** A JSDoc block from a schema's description and the constraints TypeScript cannot express. */
function docOf(schema, indent) {
  const lines = [];
  if (schema.description) lines.push(...String(schema.description).split("\n"));
  const rules = [];
  if (schema.format && schema.format !== "binary") rules.push(`format: ${schema.format}`);
  if (schema.minLength !== undefined) rules.push(`minLength: ${schema.minLength}`);
  if (schema.maxLength !== undefined) rules.push(`maxLength: ${schema.maxLength}`);
  if (schema.minimum !== undefined) rules.push(`minimum: ${schema.minimum}`);
  if (schema.maximum !== undefined) rules.push(`maximum: ${schema.maximum}`);
  if (schema.pattern !== undefined) rules.push(`pattern: ${schema.pattern}`);
  if (schema.default !== undefined) rules.push(`default: ${JSON.stringify(schema.default)}`);
  if (rules.length > 0) lines.push(rules.join("; "));
  if (lines.length === 0) return "";
  const safe = lines.map((line) => line.replaceAll("*/", "*\\/"));
  if (safe.length === 1) return `${indent}/** ${safe[0]} */\n`;
  return `${indent}/**\n${safe.map((line) => `${indent} * ${line}`).join("\n")}\n${indent} */\n`;
}

/** The TypeScript type of a JSON Schema (the subset zod's toJSONSchema produces). */
function typeOf(schema, indent = "") {
  if (!schema || Object.keys(schema).length === 0) return "unknown";
  if (schema.$ref) return schema.$ref.slice(COMPONENTS.length);
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((value) => JSON.stringify(value)).join(" | ");
  const union = schema.anyOf ?? schema.oneOf;
  if (union) return union.map((member) => wrap(typeOf(member, indent))).join(" | ");
  if (Array.isArray(schema.type)) return schema.type.map((type) => typeOf({ ...schema, type }, indent)).join(" | ");
  switch (schema.type) {
    case "string":
      return schema.format === "binary" ? "Blob" : "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "null":
      return "null";
    case "array":
      return `${wrap(typeOf(schema.items, indent))}[]`;
    case "object":
      return objectType(schema, indent);
    default:
      return "unknown";
  }
}

const wrap = (type) => (/[|&]/.test(type) && !type.startsWith("{") ? `(${type})` : type);

function objectType(schema, indent) {
  const inner = `${indent}  `;
  const required = new Set(schema.required ?? []);
  const members = Object.entries(schema.properties ?? {}).map(
    ([name, property]) => `${docOf(property, inner)}${inner}${key(name)}${required.has(name) ? "" : "?"}: ${typeOf(property, inner)};\n`,
  );
  const extra = schema.additionalProperties;
  if (extra !== undefined && extra !== false) members.push(`${inner}[key: string]: ${extra === true ? "unknown" : typeOf(extra, inner)};\n`);
  return members.length === 0 ? "Record<string, never>" : `{\n${members.join("")}${indent}}`;
}

function component(name, schema) {
  const type = typeOf(schema);
  const declaration = schema.type === "object" && type.startsWith("{") ? `export interface ${name} ${type}` : `export type ${name} = ${type};`;
  return `${docOf(schema, "")}${declaration}\n`;
}

/** Path and query parameters as an object type, from the operation's parameter list. */
function parametersType(parameters, where) {
  const list = parameters.filter((parameter) => parameter.in === where);
  if (list.length === 0) return undefined;
  const members = list.map(
    (parameter) => `${docOf({ ...parameter.schema, description: parameter.description }, "    ")}    ${key(parameter.name)}${parameter.required ? "" : "?"}: ${typeOf(parameter.schema, "    ")};\n`,
  );
  return { type: `{\n${members.join("")}  }`, required: list.some((parameter) => parameter.required), names: list.map((parameter) => parameter.name) };
}

function operationsOf(document) {
  const table = [];
  const types = [];
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const id = operation.operationId;
      const params = parametersType(operation.parameters ?? [], "path");
      const query = parametersType(operation.parameters ?? [], "query");
      const content = operation.requestBody?.content ?? {};
      const bodyKind = content["application/json"] ? "json" : content["multipart/form-data"] ? "multipart" : null;
      const body = bodyKind ? typeOf((content["application/json"] ?? content["multipart/form-data"]).schema) : undefined;
      // An operation may succeed in more than one way (send: 201 stored, 200 a retry): the union of their bodies.
      const successes = Object.entries(operation.responses)
        .filter(([status]) => status.startsWith("2"))
        .map(([, success]) => success.content ?? {});
      const binary = successes.some((content) => Boolean(content["application/octet-stream"]));
      const response = binary ? "Uint8Array" : successes.map((content) => typeOf(content["application/json"].schema)).join(" | ");
      const pathParams = params?.names ?? [];

      const args = [
        ...pathParams.map((name) => `${name}: string`),
        ...(body ? [`body: ${body}`] : []),
        ...(query ? [`query${query.required ? "" : "?"}: ${pascal(id)}Query`] : []),
      ];
      const auth = (operation.security ?? []).length > 0;
      table.push(
        `  ${id}: { method: ${JSON.stringify(method.toUpperCase())}, path: ${JSON.stringify(path)}, pathParams: ${JSON.stringify(pathParams)}, ` +
          `body: ${JSON.stringify(bodyKind)}, query: ${Boolean(query)}, binary: ${binary}, auth: ${auth} },\n`,
      );
      if (query) types.push(`/** The query of ${method.toUpperCase()} ${path}. */\nexport type ${pascal(id)}Query = ${query.type.replaceAll("\n  ", "\n")};\n`);
      types.push(
        `  /** ${method.toUpperCase()} ${path}: ${operation.summary} */\n` +
          `  ${id}: { args: [${args.join(", ")}]; response: ${response} };\n`,
      );
    }
  }
  return { table, types };
}

function socketEventsOf(events) {
  const payload = (ref) => typeOf(ref);
  const fromServer = Object.entries(events.serverToClient).map(
    ([event, spec]) =>
      `${docOf(spec, "  ")}  ${key(event)}: (payload: ${payload(spec.payload)}${spec.clientAcks ? ", ack: () => void" : ""}) => void;\n`,
  );
  const fromClient = Object.entries(events.clientToServer).map(
    ([event, spec]) =>
      `${docOf(spec, "  ")}  ${key(event)}: (payload: ${payload(spec.payload)}${spec.ack ? `, ack: (response: ${typeOf(spec.ack)}) => void` : ""}) => void;\n`,
  );
  return (
    `/** Events the server emits (Socket.IO's ListenEvents for a client socket). */\n` +
    `export interface ServerToClientEvents {\n${fromServer.join("")}}\n\n` +
    `/** Events a client emits (Socket.IO's EmitEvents for a client socket). */\n` +
    `export interface ClientToServerEvents {\n${fromClient.join("")}}\n`
  );
}

export function generate(document) {
  const components = Object.entries(document.components.schemas).map(([name, schema]) => component(name, schema));
  const { table, types } = operationsOf(document);
  return (
    `// Generated by client/scripts/generate.mjs from the API's OpenAPI document (${document.info.title} ${document.info.version}),\n` +
    `// which the backend builds from the zod schemas its routes validate with. Do not edit: run \`npm run generate:client\`.\n\n` +
    components.join("\n") +
    `\n${socketEventsOf(document["x-socket-events"])}\n` +
    types.filter((type) => type.startsWith("/**")).join("\n") +
    `\n/** Every REST operation by operationId: the typed client's arguments and answer. */\nexport interface Operations {\n` +
    types.filter((type) => !type.startsWith("/**")).join("") +
    `}\n\nexport type OperationId = keyof Operations;\n\n` +
    `/** How each operation is called (paths relative to the API base URL, e.g. http://localhost:3000/api). */\n` +
    `export const operations = {\n${table.join("")}} as const satisfies Record<OperationId, OperationSpec>;\n\n` +
    `export interface OperationSpec {\n  method: "GET" | "POST" | "DELETE";\n  path: string;\n  pathParams: readonly string[];\n` +
    `  body: "json" | "multipart" | null;\n  query: boolean;\n  binary: boolean;\n  auth: boolean;\n}\n`
  );
}

function main(argv) {
  const check = argv.includes("--check");
  const at = argv.indexOf("--document");
  const text = generate(loadDocument(at >= 0 ? argv[at + 1] : undefined));
  if (!check) {
    writeFileSync(OUTPUT, text);
    process.stdout.write(`wrote ${OUTPUT}\n`);
    return 0;
  }
  let current = "";
  try {
    current = readFileSync(OUTPUT, "utf8");
  } catch {
    // missing: stale
  }
  if (current === text) return 0;
  process.stderr.write("client/src/generated.ts is out of date with the OpenAPI document: run `npm run generate:client`.\n");
  return 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
