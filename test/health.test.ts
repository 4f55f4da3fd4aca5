import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "./support/app";

describe("GET /api/health", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(async () => {
    await app.close();
  });

  it("when Firestore answers, then 200 with firestore ok", async () => {
    const response = await app.request("GET", "/api/health");
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ success: true, status: "ok", firestore: "ok" });
  });
});
