import { describe, expect, it } from "vitest";
import { createAuthenticator, verifyToken } from "../../functions/src/auth/authenticate";
import { createAccessTokens } from "../../functions/src/auth/tokens";
import { loadConfig } from "../../functions/src/config";
import { TestClock } from "../support/clock";

/**
 * The one authentication the API's middleware and the relay share (auth/authenticate.ts), without the
 * emulator: its answers are a session or a named refusal. How each edge words them over HTTP and as
 * `auth_error` is in auth.test.ts and relay.test.ts.
 */

const config = loadConfig("test", { FIREBASE_PROJECT_ID: "demo-authenticate", JWT_SECRET: "test-secret-that-is-long-enough-0123456789" });
const clock = new TestClock();
const tokens = createAccessTokens(config.jwt, clock);
const session = { userId: "user_alice", sessionId: "sess_alice" };
const { token } = tokens.issue(session);
/** Sessions where only Alice's is active. */
const sessions = { isActive: async (sessionId: string, userId: string) => sessionId === session.sessionId && userId === session.userId };
const authenticate = createAuthenticator(tokens, sessions);

describe("authenticate", () => {
  it.each([
    ["a bare token", token],
    ["a Bearer token", `Bearer ${token}`],
  ])("when %s names an active session, then that session", async (_label, rawToken) => {
    expect(await authenticate(rawToken)).toEqual({ ok: true, session });
  });

  it.each([
    ["absent", undefined],
    ["not a string", { token }],
    ["empty after the scheme", "Bearer "],
  ])("when the token is %s, then missing_token", async (_label, rawToken) => {
    expect(await authenticate(rawToken)).toMatchObject({ ok: false, refusal: "missing_token", error: { code: "UNAUTHORIZED" } });
  });

  it("when the token is not one this server signed, then invalid_token", async () => {
    expect(await authenticate(`${token}x`)).toMatchObject({ ok: false, refusal: "invalid_token", error: { code: "UNAUTHORIZED" } });
  });

  it("when the session has ended, then session_ended", async () => {
    const ended = tokens.issue({ userId: "user_alice", sessionId: "sess_ended" }).token;
    expect(await authenticate(ended)).toMatchObject({ ok: false, refusal: "session_ended", error: { code: "UNAUTHORIZED" } });
  });

  it("when the token has expired, then expired_token, before any session is read", async () => {
    const later = new TestClock();
    later.advance((config.jwt.accessTokenTtlSeconds + 1) * 1000);
    const readsNoSession = { isActive: async () => expect.fail("the session was read") };
    const result = await createAuthenticator(createAccessTokens(config.jwt, later), readsNoSession)(token);
    expect(result).toMatchObject({ ok: false, refusal: "expired_token", error: { code: "TOKEN_EXPIRED" } });
  });

  it("when only the token is verified (its session checked later, in a transaction), then an ended session still passes", () => {
    const ended = { userId: "user_alice", sessionId: "sess_ended" };
    expect(verifyToken(tokens, `Bearer ${tokens.issue(ended).token}`)).toEqual({ ok: true, session: ended });
  });
});
