import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request as httpRequest } from "node:http";
import { startTestApp, registerUser, type TestApp } from "./support/app";

function raw(app: TestApp, method: string, path: string, headers: Record<string,string> = {}, body?: string) {
  const url = new URL(app.baseUrl);
  return new Promise<{status:number; headers:any; text:string}>((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers }, (res) => {
      let text = ""; res.setEncoding("utf8"); res.on("data", (c) => (text += c)); res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, text }));
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

describe("probe", () => {
  let app: TestApp;
  beforeAll(async () => { app = await startTestApp(); });
  afterAll(async () => { await app.close(); });
  it("probe", async () => {
    const a = await registerUser(app);
    for (const p of ["/api/users/contacts/%ZZ", "/api/users/contacts/..", "/api/users/contacts/a%2Fb", "/api/users/contacts/%00", "/api/users/contacts/abc"]) {
      const r = await raw(app, "DELETE", p, { authorization: `Bearer ${a.token}` });
      console.log(p, r.status, r.text);
    }
    for (const q of ["?q=%ZZ", "?q=a&q=b", "?q=%00", "?q[a]=b", "?q=ab&limit=1&limit=2", "?q=ab&limit=", "?q=ab&limit=1e1", "?q=ab&limit=%20"]) {
      const r = await raw(app, "GET", "/api/users/search" + q, { authorization: `Bearer ${a.token}` });
      console.log(q, r.status, r.text);
    }
    await app.request("POST", "/api/auth/login", { body: { email: a.email, password: "wrong password" } });
    const r = await raw(app, "OPTIONS", "/api/auth/login", { origin: "http://localhost:5173", "access-control-request-method": "POST" });
    console.log(r.status, r.headers);
    const r2 = await raw(app, "POST", "/api/auth/login", { "content-type": "application/json", "content-length": "0" });
    console.log(r2.status, r2.text);
    const r3 = await raw(app, "POST", "/api/auth/login", { "content-type": "application/json", "transfer-encoding": "chunked" }, "");
    console.log(r3.status, r3.text);
    const r4 = await raw(app, "POST", "/api/auth/login", { "content-type": "application/json", "content-encoding": "gzip" }, "xx");
    console.log(r4.status, r4.text);
    console.log(app.logs.join("\n"));
  });
});
