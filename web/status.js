// The /status page: polls /status/series and draws four small uPlot charts (uPlot is served by the local
// stack from node_modules; nothing comes from a CDN). Each chart's element gets data-points (the number of
// non-empty values drawn), which test/status.test.ts reads.
"use strict";

const COLORS = ["#0a84ff", "#ff375f", "#30d158", "#ff9f0a", "#bf5af2", "#64d2ff", "#8e8e93"];
const charts = new Map();

function chartOptions(element, series) {
  return {
    width: Math.max(300, element.clientWidth - 16),
    height: 180,
    scales: { x: { time: true } },
    series: [{}, ...series.map((label, index) => ({ label, stroke: COLORS[index % COLORS.length], width: 2, spanGaps: true }))],
  };
}

function draw(id, labels, columns, time) {
  const element = document.getElementById(id);
  const key = `${id}:${labels.join(",")}`;
  let chart = charts.get(id);
  if (!chart || chart.key !== key) {
    chart?.plot.destroy();
    chart = { key, plot: new uPlot(chartOptions(element, labels), [time, ...columns], element) };
    charts.set(id, chart);
  } else {
    chart.plot.setData([time, ...columns]);
  }
  const values = columns.flat().filter((value) => value !== null && value !== undefined);
  element.dataset.points = String(values.filter((value) => value !== 0).length);
  const latest = columns.map((column) => column[column.length - 1]).map((value) => (value === null || value === undefined ? "–" : value));
  element.querySelector(".now").textContent = labels.length === 1 ? String(latest[0]) : labels.map((label, index) => `${label} ${latest[index]}`).join(" · ");
}

async function refresh() {
  const response = await fetch("/status/series", { cache: "no-store" });
  const series = await response.json();
  draw("sockets", ["sockets"], [series.sockets], series.time);
  draw("sends", ["sends/s"], [series.sendsPerSecond], series.time);
  draw("latency", ["p50", "p99"], [series.latencyP50Ms, series.latencyP99Ms], series.time);
  const reasons = Object.keys(series.refusals);
  if (reasons.length > 0) draw("refusals", reasons, reasons.map((reason) => series.refusals[reason]), series.time);
  else draw("refusals", ["none"], [series.time.map(() => 0)], series.time);
  document.getElementById("charts").dataset.state = "ready";
}

async function loop() {
  try {
    await refresh();
  } catch (error) {
    document.getElementById("charts").dataset.state = "failed";
    console.warn("status refresh failed", error);
  }
  setTimeout(loop, 2000);
}
loop();
