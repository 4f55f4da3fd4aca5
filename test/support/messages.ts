import { randomBytes } from "node:crypto";
import type { RegisteredUser, TestApp } from "./app";

/** A send body as the frontend builds it: base64 ciphertext, fresh nonce, its own clock. */
export function messageBody(receiverId: string, overrides: Record<string, unknown> = {}) {
  return {
    receiverId,
    encryptedContent: randomBytes(48).toString("base64"),
    iv: randomBytes(12).toString("base64"),
    authTag: randomBytes(16).toString("base64"),
    nonce: randomBytes(16).toString("base64"),
    timestamp: new Date().toISOString(),
    signature: randomBytes(64).toString("base64"),
    messageType: "text",
    ...overrides,
  };
}

export async function sendMessage(app: TestApp, from: RegisteredUser, to: RegisteredUser, overrides: Record<string, unknown> = {}) {
  return app.request("POST", "/api/messages/send", { token: from.token, body: messageBody(to.id, overrides) });
}
