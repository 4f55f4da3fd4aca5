/**
 * The relay on its own, for Cloud Run: Socket.IO on PORT, Firestore through the service account,
 * the same configuration as the API (JWT_SECRET from Secret Manager as an environment variable).
 * SIGTERM (Cloud Run scaling in or deploying) drops the sockets at the transport so clients reconnect
 * to another instance, then exits.
 */
import { createServer } from "node:http";
import { initializeApp } from "firebase-admin/app";
import { getFirestore } from "firebase-admin/firestore";
import { createServices } from "../app";
import { ConfigError, loadConfig } from "../config";
import { createLogger } from "../shared/logger";
import { createTelemetry } from "../telemetry/telemetry";
import { attachRelay } from "./relay";

async function main(): Promise<void> {
  const local = Boolean(process.env.FIRESTORE_EMULATOR_HOST);
  const config = loadConfig(local ? "local" : "production");
  const logger = createLogger({ level: config.logLevel });
  initializeApp(local ? { projectId: config.projectId } : undefined);
  // In production: Cloud Monitoring and Cloud Trace as the Cloud Run service account (docs/DEPLOY.md).
  const telemetry = createTelemetry(config, { service: "messenger-relay" });
  const services = createServices({ db: getFirestore(), config, logger, telemetry });

  let relayStats = (): object => ({});
  const server = createServer((req, res) => {
    // Socket.IO answers its own path; this is the container's health check.
    if (req.url === "/healthz") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ success: true, status: "ok", ...relayStats() }));
      return;
    }
    res.writeHead(404, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ success: false, error: { code: "NOT_FOUND", message: "Not found" } }));
  });
  const relay = await attachRelay(server, services);
  relayStats = () => relay.stats();

  const port = Number(process.env.PORT ?? 8080);
  await new Promise<void>((resolve) => server.listen(port, process.env.HOST ?? "0.0.0.0", resolve));
  logger.info("relay listening", { port, instanceId: relay.instanceId });

  process.once("SIGTERM", () => {
    logger.info("SIGTERM: handing sockets off", { instanceId: relay.instanceId, ...relay.stats() });
    relay
      .close({ handOff: true })
      .then(() => new Promise<void>((resolve) => server.close(() => resolve())))
      .then(() => services.passwords.close())
      .then(() => telemetry.shutdown()) // exports what is pending
      .then(
        () => process.exit(0),
        (error: Error) => {
          logger.error("relay shutdown failed", { error });
          process.exit(1);
        },
      );
  });
}

main().catch((error: Error) => {
  process.stderr.write(`${error instanceof ConfigError ? error.message : error.stack}\n`);
  process.exit(1);
});
