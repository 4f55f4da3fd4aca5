// Renders /api/openapi.json (generated from the routes' zod schemas) as a readable page: operations by
// tag, the socket events (x-socket-events) and every named schema. Plain DOM, no dependencies. Why not
// Swagger UI, Redoc or Scalar: client/README.md.

const COMPONENTS = "#/components/schemas/";
const RULES = ["format", "minLength", "maxLength", "minimum", "maximum", "pattern", "default"];

/** el("p", { class: "x" }, "text", child, …): text is always set as text, never parsed as HTML. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) if (value !== undefined && value !== false) node.setAttribute(name, String(value));
  for (const child of children.flat()) if (child !== undefined && child !== null && child !== false) node.append(child instanceof Node ? child : String(child));
  return node;
}

/** Description text with its `code` spans as <code> (the only markup the descriptions use). */
const prose = (text = "") => String(text).split(/`([^`]+)`/).map((part, index) => (index % 2 === 1 ? el("code", {}, part) : part));

const refName = (ref) => ref.slice(COMPONENTS.length);
const anchorOf = (name) => `schema-${name}`;
const operationAnchor = (operation) => `op-${operation.operationId}`;

/** A short type expression; named schemas become links. */
function typeOf(schema) {
  if (!schema || Object.keys(schema).length === 0) return ["any"];
  if (schema.$ref) return [el("a", { href: `#${anchorOf(refName(schema.$ref))}` }, refName(schema.$ref))];
  if (schema.const !== undefined) return [JSON.stringify(schema.const)];
  if (schema.enum) return [schema.enum.map((value) => JSON.stringify(value)).join(" | ")];
  const union = schema.anyOf ?? schema.oneOf;
  if (union) return union.flatMap((member, index) => (index === 0 ? typeOf(member) : [" | ", ...typeOf(member)]));
  if (Array.isArray(schema.type)) return [schema.type.join(" | ")];
  if (schema.type === "array") return [...typeOf(schema.items), "[]"];
  if (schema.type === "string" && schema.format === "binary") return ["binary"];
  if (schema.type === "object" && !schema.properties) return ["object"];
  return [schema.type ?? "any"];
}

function rulesOf(schema) {
  const target = schema.anyOf?.find((member) => member.type !== "null") ?? schema;
  return RULES.filter((rule) => target[rule] !== undefined).map((rule) => `${rule}: ${typeof target[rule] === "string" ? target[rule] : JSON.stringify(target[rule])}`);
}

/** An object schema as a table of its fields (nested anonymous objects get a table of their own). */
function fieldsTable(schema) {
  if (schema?.$ref) return el("p", {}, "Schema: ", ...typeOf(schema));
  if (schema?.type !== "object" || !schema.properties) return el("p", {}, "Type: ", el("span", { class: "type" }, ...typeOf(schema ?? {})), " ", rulesOf(schema ?? {}).join("; "));
  const required = new Set(schema.required ?? []);
  const rows = Object.entries(schema.properties).map(([name, property]) => {
    const nested = property.type === "object" && property.properties ? fieldsTable(property) : undefined;
    const rules = rulesOf(property);
    return el(
      "tr",
      {},
      el("td", {}, name, required.has(name) ? "" : "?"),
      el("td", { class: "type" }, ...typeOf(property)),
      el("td", {}, ...prose(property.description ?? property.anyOf?.find((member) => member.description)?.description ?? ""), rules.length ? el("div", { class: "rules" }, rules.join("; ")) : undefined, nested),
    );
  });
  return el("table", { class: "schema-table" }, el("thead", {}, el("tr", {}, el("th", {}, "Field"), el("th", {}, "Type"), el("th", {}, "Notes"))), el("tbody", {}, rows));
}

function parametersTable(parameters) {
  const rows = parameters.map((parameter) =>
    el(
      "tr",
      {},
      el("td", {}, parameter.name, parameter.required ? "" : "?"),
      el("td", {}, parameter.in),
      el("td", { class: "type" }, ...typeOf(parameter.schema)),
      el("td", {}, ...prose(parameter.description ?? ""), el("div", { class: "rules" }, rulesOf(parameter.schema).join("; "))),
    ),
  );
  return el("table", { class: "schema-table" }, el("thead", {}, el("tr", {}, el("th", {}, "Parameter"), el("th", {}, "In"), el("th", {}, "Type"), el("th", {}, "Notes"))), el("tbody", {}, rows));
}

function responsesList(responses) {
  return el(
    "table",
    { class: "schema-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "Status"), el("th", {}, "Body"), el("th", {}, "When"))),
    el(
      "tbody",
      {},
      Object.entries(responses).map(([status, response]) => {
        const [mediaType, content] = Object.entries(response.content ?? {})[0] ?? [];
        return el("tr", {}, el("td", {}, status), el("td", { class: "type" }, content ? typeOf(content.schema) : "", mediaType && mediaType !== "application/json" ? ` (${mediaType})` : ""), el("td", {}, response.description, response.headers ? el("div", { class: "rules" }, `headers: ${Object.keys(response.headers).join(", ")}`) : undefined));
      }),
    ),
  );
}

function operationSection(path, method, operation, components) {
  const body = operation.requestBody && Object.entries(operation.requestBody.content)[0];
  const success = Object.entries(operation.responses).find(([status]) => status.startsWith("2"));
  const successSchema = success?.[1].content?.["application/json"]?.schema;
  return el(
    "section",
    { class: "operation", id: operationAnchor(operation) },
    el("h3", {}, el("span", { class: `method ${method}` }, method.toUpperCase()), `/api${path}`, el("span", { class: "badge" }, operation.security?.length ? "Bearer token" : "public"), el("span", { class: "badge" }, operation.operationId)),
    el("p", {}, el("strong", {}, operation.summary)),
    operation.description ? el("p", {}, ...prose(operation.description)) : undefined,
    operation.parameters?.length ? [el("h4", {}, "Parameters"), parametersTable(operation.parameters)] : undefined,
    body ? [el("h4", {}, `Request body (${body[0]})`), fieldsTable(components[refName(body[1].schema.$ref)] ?? body[1].schema)] : undefined,
    el("h4", {}, "Responses"),
    responsesList(operation.responses),
    successSchema?.$ref ? [el("h4", {}, `${success[0]} body`), fieldsTable(components[refName(successSchema.$ref)])] : undefined,
  );
}

function eventSection(name, spec, direction) {
  return el(
    "section",
    { class: "event", id: `event-${name}` },
    el("h3", {}, name, el("span", { class: "badge" }, direction), spec.clientAcks ? el("span", { class: "badge" }, "acknowledge with the callback") : undefined),
    el("p", {}, ...prose(spec.description)),
    el("p", {}, "Payload: ", el("span", { class: "type" }, ...typeOf(spec.payload))),
    spec.ack ? el("p", {}, "Ack callback receives: ", el("span", { class: "type" }, ...typeOf(spec.ack))) : undefined,
  );
}

function render(document_) {
  const components = document_.components.schemas;
  document.title = `${document_.info.title} ${document_.info.version}`;
  document.getElementById("title").textContent = `${document_.info.title} ${document_.info.version}`;
  document.getElementById("intro").replaceChildren(...prose(document_.info.description));
  document.getElementById("meta").textContent = `OpenAPI ${document_.openapi} · base URL ${location.origin}${document_.servers[0].url} · ${Object.keys(components).length} schemas`;

  const byTag = new Map(document_.tags.map((tag) => [tag.name, { tag, operations: [] }]));
  for (const [path, methods] of Object.entries(document_.paths)) {
    for (const [method, operation] of Object.entries(methods)) byTag.get(operation.tags[0]).operations.push({ path, method, operation });
  }

  const toc = document.getElementById("toc");
  const main = document.getElementById("reference");
  for (const { tag, operations } of byTag.values()) {
    toc.append(el("strong", {}, tag.name), el("ul", {}, operations.map(({ path, method, operation }) => el("li", {}, el("a", { href: `#${operationAnchor(operation)}` }, `${method.toUpperCase()} ${path}`)))));
    main.append(el("h2", { id: `tag-${tag.name}` }, tag.name), el("p", {}, ...prose(tag.description)), ...operations.map(({ path, method, operation }) => operationSection(path, method, operation, components)));
  }

  const events = document_["x-socket-events"];
  toc.append(el("strong", {}, "Socket events"), el("ul", {}, [...Object.keys(events.clientToServer), ...Object.keys(events.serverToClient)].map((name) => el("li", {}, el("a", { href: `#event-${name}` }, name)))));
  main.append(
    el("h2", { id: "socket-events" }, "Socket events (Socket.IO)"),
    el("p", {}, ...prose(events.description)),
    el("h3", {}, "Client → server"),
    ...Object.entries(events.clientToServer).map(([name, spec]) => eventSection(name, spec, "client → server")),
    el("h3", {}, "Server → client"),
    ...Object.entries(events.serverToClient).map(([name, spec]) => eventSection(name, spec, "server → client")),
  );

  toc.append(el("strong", {}, el("a", { href: "#schemas" }, "Schemas")));
  main.append(
    el("h2", { id: "schemas" }, "Schemas"),
    ...Object.entries(components).map(([name, schema]) =>
      el("section", { class: "component", id: anchorOf(name) }, el("h3", {}, name), schema.description ? el("p", {}, ...prose(schema.description)) : undefined, fieldsTable(schema)),
    ),
  );
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

fetch("/api/openapi.json")
  .then((response) => {
    if (!response.ok) throw new Error(`GET /api/openapi.json answered ${response.status}`);
    return response.json();
  })
  .then(render)
  .catch((error) => {
    document.getElementById("intro").textContent = `Could not load the API description: ${error.message}`;
  });
