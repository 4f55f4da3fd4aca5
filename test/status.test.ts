import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerUser, startTestApp, type TestApp } from "./support/app";
import { sendMessage } from "./support/messages";
import { closeAllSockets, connectReceiving, waitFor } from "./support/sockets";

/**
 * The local dashboard (/status, issue 19) in headless Chromium after some traffic: sockets, sends per
 * second, delivery latency and refusals drawn as uPlot charts from the app's own metrics (uPlot served
 * from node_modules). Chromium as in demo.test.ts; the screenshot goes to test-results/status.png.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"];
const ROOT = resolve(__dirname, "..");
const SCREENSHOT = join(ROOT, "test-results", "status.png");
const IN_CI = Boolean(process.env.CI) && process.env.CI !== "false";
const chromiumInstalled = existsSync(CHROMIUM);
if (!chromiumInstalled && !IN_CI) {
  console.warn(`\n[status.test] SKIPPED: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH).\n`);
}

(chromiumInstalled || IN_CI ? describe : describe.skip)("the /status dashboard in headless Chromium", () => {
  let app: TestApp;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];
  const requests: string[] = [];

  beforeAll(async () => {
    if (!chromiumInstalled) throw new Error(`Chromium is required for the dashboard test and was not found at ${CHROMIUM}.`);
    app = await startTestApp({}, { relay: {}, telemetry: true });
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const { received } = await connectReceiving(app, bob.token);
    await connectReceiving(app, alice.token);
    for (let index = 0; index < 5; index++) expect((await sendMessage(app, alice, bob)).status).toBe(201);
    expect((await sendMessage(app, alice, bob, { timestamp: new Date(Date.now() - 3_600_000).toISOString() })).status).toBe(400);
    await waitFor(() => received.length === 5, 10_000, "five messages at Bob");

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1200, height: 700 } });
    page.on("pageerror", (error) => pageErrors.push(`pageerror: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") pageErrors.push(`console: ${message.text()}`);
    });
    page.on("request", (request) => requests.push(request.url()));
  });

  afterAll(async () => {
    await browser?.close();
    closeAllSockets();
    await app?.close();
  });

  it("when traffic has passed, then each chart is drawn with data: sockets, sends per second, latency p50/p99, refusals by reason", { timeout: 60_000 }, async () => {
    await page.goto(`${app.baseUrl}/status`);
    await page.waitForSelector('#charts[data-state="ready"]', { timeout: 20_000 });
    const points = async (id: string) => Number((await page.locator(`#${id}`).getAttribute("data-points")) ?? 0);
    for (const id of ["sockets", "sends", "latency", "refusals"]) {
      await waitFor(async () => (await points(id)) > 0, 20_000, `data in the ${id} chart`);
      expect(await page.locator(`#${id} canvas`).count()).toBe(1);
    }
    await expect.poll(() => page.locator("#refusals").innerText()).toContain("stale_clock");
    mkdirSync(join(ROOT, "test-results"), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    expect(pageErrors).toEqual([]);
    // Everything came from the server itself (uPlot from node_modules), nothing from a CDN.
    expect(requests.filter((url) => !url.startsWith(app.baseUrl))).toEqual([]);
    expect(requests.some((url) => url.endsWith("/status/uplot/uPlot.iife.min.js"))).toBe(true);
  });

  it("when the same numbers are asked of /status/series, then they match what the app recorded", async () => {
    const series = (await (await fetch(`${app.baseUrl}/status/series`)).json()) as any;
    expect(series.sockets.at(-1)).toBe(2);
    expect(Math.max(...series.sendsPerSecond)).toBeGreaterThan(0);
    expect(series.latencyP99Ms.some((value: number | null) => value !== null && value > 0)).toBe(true);
    expect(series.refusals.stale_clock.at(-1)).toBe(1);
  });
});
