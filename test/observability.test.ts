import { generateKeyPairSync, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../functions/src/config";
import { createTelemetry } from "../functions/src/telemetry/telemetry";
import { registerUser, startTestApp, type RegisteredUser, type TestApp } from "./support/app";
import { messageBody, sendMessage } from "./support/messages";
import { closeAllSockets, connectReceiving, emitWithAck, waitFor } from "./support/sockets";

/**
 * Issue 19: after a scripted session (register, send over REST and the socket, receive and acknowledge,
 * refused sends, a rate-limited call), the local /metrics shows the matching counters and histograms
 * with the right labels; a request with a `traceparent` writes log lines under that trace, and its
 * Firestore calls are spans under the request's.
 */

/** One Prometheus sample: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The sum of the samples named `name` whose labels include `labels`. */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
    .reduce((sum, sample) => sum + sample.value, 0);
}

let app: TestApp;
let aliceSocket: Awaited<ReturnType<typeof connectReceiving>>["socket"];
let alice: RegisteredUser;
let bob: RegisteredUser;
let metrics: Sample[];
let metricsText: string;

beforeAll(async () => {
  // A burst of 4 sends per pair, so that the fifth is refused for its rate (refusals take no token).
  app = await startTestApp({ SEND_RATE_BURST: "4", SEND_RATE_PER_SECOND: "0.001" }, { relay: {}, telemetry: true });
  [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
  const { received } = await connectReceiving(app, bob.token);

  // Two sends that are stored (REST and socket), both received and acknowledged by Bob.
  expect((await sendMessage(app, alice, bob)).status).toBe(201);
  aliceSocket = (await connectReceiving(app, alice.token)).socket;
  expect(await emitWithAck(aliceSocket, "send_message", messageBody(bob.id))).toMatchObject({ success: true });
  await waitFor(() => received.length === 2, 10_000, "both messages at Bob");

  // Refused: a stale clock (REST) and a replayed nonce (socket); neither takes from the pair's rate.
  const stale = await sendMessage(app, alice, bob, { timestamp: new Date(Date.now() - 3_600_000).toISOString() });
  expect(stale.body.error.code).toBe("STALE_TIMESTAMP");
  const body = messageBody(bob.id);
  expect((await sendMessage(app, alice, bob, { nonce: body.nonce })).status).toBe(201);
  expect(await emitWithAck(aliceSocket, "send_message", { ...body, encryptedContent: randomBytes(48).toString("base64") })).toMatchObject({
    success: false,
    error: { code: "REPLAY_DETECTED" },
  });
  // The fourth is stored; then the pair's burst is spent: rate-limited.
  expect((await sendMessage(app, alice, bob)).status).toBe(201);
  const limited = await sendMessage(app, alice, bob);
  expect(limited.status).toBe(429);
  await waitFor(() => received.length === 4, 10_000, "four messages at Bob");

  const response = await fetch(`${app.baseUrl}/metrics`);
  expect(response.status).toBe(200);
  metricsText = await response.text();
  metrics = parsePrometheus(metricsText);
});

afterAll(async () => {
  closeAllSockets();
  await app?.close();
});

describe("metrics after a scripted session", () => {
  it("when requests were answered, then http.server.request.duration counts them by route pattern, method and status", () => {
    const name = "http_server_request_duration_count";
    const send = { http_route: "/api/messages/send", http_request_method: "POST" };
    expect(valueOf(metrics, name, { ...send, http_response_status_code: "201" })).toBe(3);
    expect(valueOf(metrics, name, { ...send, http_response_status_code: "400" })).toBe(1);
    expect(valueOf(metrics, name, { ...send, http_response_status_code: "429" })).toBe(1);
    expect(valueOf(metrics, name, { http_route: "/api/auth/register", http_response_status_code: "201" })).toBe(2);
    expect(metricsText).toContain("# UNIT http_server_request_duration s");
    // Buckets in seconds, and never a raw path: routes are patterns.
    expect(valueOf(metrics, "http_server_request_duration_bucket", { ...send, http_response_status_code: "201", le: "+Inf" })).toBe(3);
    expect(metrics.filter((sample) => sample.labels.http_route?.includes("user_"))).toEqual([]);
  });

  it("when messages were stored and refused, then they are counted by transport and by reason", () => {
    expect(valueOf(metrics, "messenger_messages_stored_total", { messenger_transport: "http" })).toBe(3);
    expect(valueOf(metrics, "messenger_messages_stored_total", { messenger_transport: "socket" })).toBe(1);
    const refused = (reason: string, transport: string) =>
      valueOf(metrics, "messenger_messages_refused_total", { messenger_refusal_reason: reason, messenger_transport: transport });
    expect(refused("stale_clock", "http")).toBe(1);
    expect(refused("replay", "socket")).toBe(1);
    expect(refused("rate", "http")).toBe(1);
  });

  it("when Bob acknowledged the messages, then the delivery latency histogram has one observation each", () => {
    expect(valueOf(metrics, "messenger_message_delivery_duration_count")).toBe(4);
    expect(valueOf(metrics, "messenger_message_delivery_duration_bucket", { le: "+Inf" })).toBe(4);
    expect(valueOf(metrics, "messenger_message_delivery_duration_sum")).toBeGreaterThan(0);
  });

  it("when the pair's rate refused a send, then the 429 is counted under its class", () => {
    expect(valueOf(metrics, "messenger_rate_limit_refusals_total", { messenger_rate_limit_class: "send", messenger_transport: "http" })).toBe(1);
  });

  it("when sockets connected and events flowed, then the relay's gauges and counters say so, per instance", () => {
    const instance = { messenger_relay_instance: app.relay!.instanceId };
    expect(valueOf(metrics, "messenger_relay_sockets", instance)).toBe(2);
    expect(valueOf(metrics, "messenger_relay_listeners", instance)).toBeGreaterThanOrEqual(1);
    expect(valueOf(metrics, "messenger_relay_authentications_total", { ...instance, messenger_outcome: "success" })).toBe(2);
    const events = (event: string, direction: string) =>
      valueOf(metrics, "messenger_relay_events_total", { ...instance, messenger_socket_event: event, messenger_socket_direction: direction });
    expect(events("send_message", "received")).toBe(2);
    expect(events("message_received", "emitted")).toBe(4);
    expect(valueOf(metrics, "messenger_relay_feed_lag_count", instance)).toBe(4);
    expect(valueOf(metrics, "messenger_relay_heartbeat_age", instance)).toBeGreaterThanOrEqual(0);
  });

  it("when transactions ran, then their attempts are recorded per commit", () => {
    expect(valueOf(metrics, "messenger_firestore_transaction_attempts_count", { messenger_outcome: "committed" })).toBeGreaterThanOrEqual(6);
    expect(valueOf(metrics, "messenger_firestore_transaction_attempts_bucket", { messenger_outcome: "committed", le: "+Inf" })).toBeGreaterThanOrEqual(6);
  });
});

describe("traces", () => {
  const traceLines = (traceId: string) =>
    app.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line["logging.googleapis.com/trace"] === `projects/${app.projectId}/traces/${traceId}`);

  it("when a request carries a traceparent, then its log line carries that trace and its span is the child of the caller's, with Firestore's spans under it", async () => {
    const traceId = randomBytes(16).toString("hex");
    const parentSpanId = randomBytes(8).toString("hex");
    const response = await app.request("GET", "/api/users/profile", { token: alice.token, headers: { traceparent: `00-${traceId}-${parentSpanId}-01` } });
    expect(response.status).toBe(200);

    const lines = traceLines(traceId);
    expect(lines.map((line) => line.message)).toContain("request");
    const request = lines.find((line) => line.message === "request")!;
    expect(request).toMatchObject({ route: "/api/users/profile", status: 200, "logging.googleapis.com/trace_sampled": true });
    expect(request["logging.googleapis.com/spanId"]).toMatch(/^[0-9a-f]{16}$/);

    const spans = app.telemetry!.spans!.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId);
    const server = spans.find((span) => span.name === "GET /api/users/profile")!;
    expect(server).toBeDefined();
    expect(server.parentSpanContext?.spanId).toBe(parentSpanId);
    expect(server.spanContext().spanId).toBe(request["logging.googleapis.com/spanId"]);
    expect(server.attributes).toMatchObject({ "http.route": "/api/users/profile", "http.request.method": "GET", "http.response.status_code": 200 });
    // The Admin SDK's own spans, parented (directly or through each other) by the request's.
    const firestore = spans.filter((span) => span.instrumentationScope.name.includes("firestore"));
    expect(firestore.length).toBeGreaterThan(0);
  });

  it("when a request carries Google's X-Cloud-Trace-Context instead, then its log lines carry that trace", async () => {
    const traceId = randomBytes(16).toString("hex");
    const response = await app.request("GET", "/api/health", { headers: { "X-Cloud-Trace-Context": `${traceId}/12345678901234;o=1` } });
    expect(response.status).toBe(200);
    expect(traceLines(traceId).map((line) => line.message)).toContain("request");
  });

  it("when a socket event is handled, then it is a span of its own named for the event", () => {
    const names = app.telemetry!.spans!.getFinishedSpans().map((span) => span.name);
    expect(names).toContain("socket send_message");
  });
});

describe("a busy database", () => {
  const aborted = () => Object.assign(new Error("10 ABORTED: Transaction lock timeout."), { code: 10 });
  const busy = async (transport: string) =>
    parsePrometheus(await (await fetch(`${app.baseUrl}/metrics`)).text()).filter(
      (sample) => sample.name === "messenger_database_busy_total" && sample.labels.messenger_transport === transport,
    );

  it("when a request or a socket event is answered 503 for a contended transaction, then it is counted with its reason", async () => {
    vi.spyOn(app.services.userService, "profile").mockRejectedValueOnce(aborted());
    expect((await app.request("GET", "/api/users/profile", { token: alice.token })).status).toBe(503);
    expect(await busy("http")).toMatchObject([{ labels: { messenger_busy_reason: "aborted" }, value: 1 }]);

    vi.spyOn(app.services.sender, "send").mockRejectedValueOnce(aborted());
    expect(await emitWithAck(aliceSocket, "send_message", messageBody(bob.id))).toMatchObject({ error: { code: "SERVICE_UNAVAILABLE" } });
    expect(await busy("socket")).toMatchObject([{ labels: { messenger_busy_reason: "aborted" }, value: 1 }]);
  });
});

describe("the Cloud Function's telemetry", () => {
  it("when it is made for production, then it has no /metrics or /status to serve (they are the local stack's only)", () => {
    process.env.METADATA_SERVER_DETECTION ??= "none"; // the resource detector must not look for a metadata server here
    // An hour between exports: nothing is pushed while the test runs (there is nothing to push it to).
    const logKey = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const config = loadConfig(
      "production",
      { FIREBASE_PROJECT_ID: "demo-prod", JWT_SECRET: "x".repeat(40), METRICS_EXPORT_INTERVAL_SECONDS: "3600" },
      { transparencyLogKey: logKey },
    );
    const telemetry = createTelemetry(config, { service: "messenger-api" });
    expect(telemetry.enabled).toBe(true);
    expect(telemetry.localRoutes).toBeUndefined();
    expect(telemetry.spans).toBeUndefined();
    expect(config.telemetry.sampleRatio).toBe(0.1);
  });

  it("when TELEMETRY=off, then nothing is recorded and nothing is served", () => {
    const config = loadConfig("local", { JWT_SECRET: "x".repeat(40), TELEMETRY: "off" });
    const telemetry = createTelemetry(config, { service: "messenger-api" });
    expect(telemetry.enabled).toBe(false);
    expect(telemetry.localRoutes).toBeUndefined();
  });
});
