import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { createNoopMeter } from "@opentelemetry/api";
import { createInstruments } from "../../functions/src/telemetry/instruments";

/**
 * The Cloud Monitoring dashboard and alert policies as code (docs/monitoring/, applied with the gcloud
 * commands in docs/DEPLOY.md) name only metrics the backend records: a renamed instrument fails here
 * instead of leaving a chart or an alert silently empty. In PromQL, Cloud Monitoring writes
 * `workload.googleapis.com/messenger.messages.stored` as `workload_googleapis_com:messenger_messages_stored`,
 * and a histogram's series as `_bucket`, `_count`, `_sum`.
 */
const DIR = resolve(__dirname, "../../docs/monitoring");

/** Every instrument's name, as createInstruments declares it (the meter records nothing). */
function declaredNames(): Set<string> {
  const names = new Set<string>();
  const recording = new Proxy(createNoopMeter(), {
    get(meter, key, receiver) {
      const value = Reflect.get(meter, key, receiver);
      if (typeof value !== "function" || !String(key).startsWith("create")) return value;
      return (name: string, ...rest: unknown[]) => {
        names.add(name);
        return value.call(meter, name, ...rest);
      };
    },
  });
  createInstruments(recording);
  return names;
}

describe("docs/monitoring (dashboard and alert policies)", () => {
  const files = readdirSync(DIR).filter((file) => file.endsWith(".json"));
  const promql = (name: string) => name.replace(/\./g, "_");

  it("when the files are read, then each is JSON: one dashboard with tiles, and the four alert policies with a PromQL condition", () => {
    expect(files.sort()).toEqual(["alert-5xx-ratio.json", "alert-busy-database.json", "alert-delivery-latency.json", "alert-relay-heartbeat.json", "dashboard.json"]);
    const dashboard = JSON.parse(readFileSync(join(DIR, "dashboard.json"), "utf8"));
    expect(dashboard.mosaicLayout.tiles.length).toBeGreaterThan(8);
    for (const file of files.filter((name) => name.startsWith("alert-"))) {
      const policy = JSON.parse(readFileSync(join(DIR, file), "utf8"));
      expect(policy.conditions[0].conditionPrometheusQueryLanguage.query, file).toContain("workload_googleapis_com:");
      expect(policy.documentation.content.length, file).toBeGreaterThan(40);
    }
  });

  it("when a query names a metric, then the backend declares it", () => {
    const known = new Set([...declaredNames()].map(promql));
    expect(known.has("http_server_request_duration")).toBe(true);
    const referenced = files.flatMap((file) => [...readFileSync(join(DIR, file), "utf8").matchAll(/workload_googleapis_com:(\w+)/g)].map((match) => match[1]!));
    const unknown = referenced.map((name) => name.replace(/_(bucket|count|sum)$/, "")).filter((name) => !known.has(name));
    expect(referenced.length).toBeGreaterThan(15);
    expect(unknown).toEqual([]);
  });
});
