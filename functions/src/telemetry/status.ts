import { dirname, join, resolve } from "node:path";
import type { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { DataPointType, type Histogram, type MetricData } from "@opentelemetry/sdk-metrics";
import express, { Router } from "express";
import { ATTR } from "./instruments";

/**
 * The local stack's view of its own metrics (never mounted by the Cloud Function):
 * - GET /metrics: Prometheus text, read on demand from the same meter the app records into;
 * - GET /status: a page of small uPlot charts (web/status.html; uPlot served from node_modules here);
 * - GET /status/series: what the page draws, sampled from the meter every SAMPLE_MS for the last
 *   WINDOW_POINTS samples: sockets, sends per second, delivery latency p50/p99 over the trailing
 *   LATENCY_WINDOW_MS, refusals by reason (totals since start).
 */
const SAMPLE_MS = 2000;
const WINDOW_POINTS = 150; // 5 minutes
const LATENCY_WINDOW_MS = 60_000;

// functions/src/telemetry or functions/lib/telemetry: the repository root is three levels up either way.
const WEB_DIR = resolve(__dirname, "..", "..", "..", "web");

interface Sample {
  atMs: number;
  sockets: number;
  stored: number;
  refused: Record<string, number>;
  /** Cumulative delivery-latency bucket counts, and their upper bounds (seconds). */
  latencyBounds: number[];
  latencyCounts: number[];
}

export interface StatusSeries {
  /** Seconds since the epoch, one per sample. */
  time: number[];
  sockets: number[];
  sendsPerSecond: number[];
  latencyP50Ms: Array<number | null>;
  latencyP99Ms: Array<number | null>;
  refusals: Record<string, number[]>;
}

export function localTelemetryRoutes(prometheus: PrometheusExporter): { routes: Router; stop(): void } {
  const samples: Sample[] = [];
  const sampleNow = async () => {
    const { resourceMetrics } = await prometheus.collect();
    samples.push(sampleOf(resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics)));
    if (samples.length > WINDOW_POINTS + 1) samples.shift();
  };
  const timer = setInterval(() => void sampleNow().catch(() => undefined), SAMPLE_MS);
  timer.unref();
  void sampleNow().catch(() => undefined);

  const router = Router();
  router.get("/metrics", (req, res) => prometheus.getMetricsRequestHandler(req, res));
  router.get("/status", (_req, res) => res.sendFile(join(WEB_DIR, "status.html")));
  router.get("/status/page.js", (_req, res) => res.sendFile(join(WEB_DIR, "status.js")));
  router.get("/status/series", async (_req, res) => {
    await sampleNow(); // the latest point is now, whenever the page asks
    res.json(seriesOf(samples));
  });
  // uPlot's built files, from node_modules (resolved here: only the local stack and tests serve them).
  router.use("/status/uplot", express.static(dirname(require.resolve("uplot")), { index: false }));
  return { routes: router, stop: () => clearInterval(timer) };
}

function sampleOf(metrics: MetricData[]): Sample {
  const byName = new Map(metrics.map((metric) => [metric.descriptor.name, metric]));
  const total = (name: string) => (byName.get(name)?.dataPoints as Array<{ value: number }> | undefined)?.reduce((sum, point) => sum + point.value, 0) ?? 0;
  const refused: Record<string, number> = {};
  for (const point of (byName.get("messenger.messages.refused")?.dataPoints ?? []) as Array<{ value: number; attributes: Record<string, unknown> }>) {
    const reason = String(point.attributes[ATTR.refusalReason]);
    refused[reason] = (refused[reason] ?? 0) + point.value;
  }
  let latencyBounds: number[] = [];
  let latencyCounts: number[] = [];
  const latency = byName.get("messenger.message.delivery.duration");
  if (latency?.dataPointType === DataPointType.HISTOGRAM) {
    for (const point of latency.dataPoints) {
      const histogram = point.value as Histogram;
      latencyBounds = histogram.buckets.boundaries;
      latencyCounts = histogram.buckets.counts.map((count, index) => count + (latencyCounts[index] ?? 0));
    }
  }
  return { atMs: Date.now(), sockets: total("messenger.relay.sockets"), stored: total("messenger.messages.stored"), refused, latencyBounds, latencyCounts };
}

/** The q-quantile (ms) of the deliveries between two cumulative histograms, interpolated within its bucket. */
function quantileMs(bounds: number[], newer: number[], older: number[], q: number): number | null {
  const counts = newer.map((count, index) => count - (older[index] ?? 0));
  const total = counts.reduce((sum, count) => sum + count, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let index = 0; index < counts.length; index++) {
    const count = counts[index]!;
    if (seen + count >= rank && count > 0) {
      const lower = index === 0 ? 0 : bounds[index - 1]!;
      const upper = bounds[index] ?? lower * 2;
      return Math.round((lower + ((rank - seen) / count) * (upper - lower)) * 1000 * 10) / 10;
    }
    seen += count;
  }
  return null;
}

export function seriesOf(samples: Sample[]): StatusSeries {
  const shown = samples.slice(1);
  const reasons = [...new Set(samples.flatMap((sample) => Object.keys(sample.refused)))].sort();
  const series: StatusSeries = { time: [], sockets: [], sendsPerSecond: [], latencyP50Ms: [], latencyP99Ms: [], refusals: Object.fromEntries(reasons.map((reason) => [reason, []])) };
  shown.forEach((sample, index) => {
    const previous = samples[index]!;
    const windowStart = samples.find((candidate) => candidate.atMs >= sample.atMs - LATENCY_WINDOW_MS) ?? samples[0]!;
    const base = windowStart === sample ? previous : windowStart;
    series.time.push(sample.atMs / 1000);
    series.sockets.push(sample.sockets);
    const seconds = Math.max(0.001, (sample.atMs - previous.atMs) / 1000);
    series.sendsPerSecond.push(Math.round(((sample.stored - previous.stored) / seconds) * 100) / 100);
    series.latencyP50Ms.push(quantileMs(sample.latencyBounds, sample.latencyCounts, base.latencyCounts, 0.5));
    series.latencyP99Ms.push(quantileMs(sample.latencyBounds, sample.latencyCounts, base.latencyCounts, 0.99));
    for (const reason of reasons) series.refusals[reason]!.push(sample.refused[reason] ?? 0);
  });
  return series;
}
