import { requestContext } from "../shared/http";
import { operationOf, type OperationGroup } from "../shared/operations";
import { caller } from "../shared/caller";
import {
  changeKeyResponseSchema,
  changeKeySchema,
  changePasswordResponseSchema,
  changePasswordSchema,
  loginResponseSchema,
  loginSchema,
  logoutAllResponseSchema,
  logoutResponseSchema,
  refreshResponseSchema,
  refreshSchema,
  registerResponseSchema,
  registerSchema,
} from "./schema";
import type { AuthService } from "./service";

interface AuthRouteDeps {
  auth: AuthService;
}

const operation = operationOf<AuthRouteDeps>();

export const authOperations: OperationGroup<AuthRouteDeps> = {
  prefix: "/auth",
  tag: "Auth",
  operations: [
    operation({
      operationId: "register",
      method: "post",
      path: "/register",
      summary: "Register with an identity public key",
      description:
        "`password`: 8 characters to 72 bytes of UTF-8 (longer is refused, never truncated). `publicKey`: PEM SPKI EC key on P-256 or P-384, stored exactly as sent. Email and username are unique case-insensitively.",
      auth: "public",
      limits: ["register", "registerGlobal"],
      body: registerSchema,
      success: { status: 201, description: "Registered and logged in", schema: registerResponseSchema },
      errors: ["EMAIL_TAKEN", "USERNAME_TAKEN"],
      handle: ({ body, req }, { auth }) => auth.register(body, req.get("user-agent")),
    }),
    operation({
      operationId: "login",
      method: "post",
      path: "/login",
      summary: "Log in",
      description:
        "A wrong password and an unknown email give the same 401. Throttled per client address, per account and client address, and per account from every address (a much higher ceiling): 429 with `Retry-After`. Another address's failures never throttle yours below that ceiling.",
      auth: "public",
      // Throttled inside the flow (auth/service.ts): the buckets depend on the account and the outcome.
      body: loginSchema,
      success: { status: 200, description: "Logged in, with the caller's contacts", schema: loginResponseSchema },
      errors: ["UNAUTHORIZED", "RATE_LIMITED", "TOO_MANY_DEVICES"],
      handle: ({ body, req }, { auth }) => auth.login(body, requestContext(req).ip, req.get("user-agent")),
    }),
    operation({
      operationId: "refresh",
      method: "post",
      path: "/refresh",
      summary: "Rotate the refresh token",
      description:
        "Presenting a refresh token this session already replaced revokes the whole session (401); any other wrong secret is a plain 401 and the session lives on. Refresh never extends a session past its absolute lifetime (90 days from login by default).",
      auth: "public",
      limits: ["refresh"],
      body: refreshSchema,
      success: { status: 200, description: "A new access token and a new refresh token", schema: refreshResponseSchema },
      errors: ["UNAUTHORIZED"],
      handle: ({ body }, { auth }) => auth.refresh(body),
    }),
    operation({
      operationId: "logout",
      method: "post",
      path: "/logout",
      summary: "Revoke the session",
      description: "The access token and refresh token are refused from then on, and the session's sockets are disconnected.",
      auth: "session",
      success: { status: 200, description: "Logged out", schema: logoutResponseSchema },
      errors: [],
      handle: async ({ res }, { auth }) => {
        const { sessionId, userId } = caller(res);
        await auth.logout(sessionId, userId);
        return { message: "Logged out successfully" };
      },
    }),
    operation({
      operationId: "logoutAll",
      method: "post",
      path: "/logout-all",
      summary: "Revoke every session of the caller",
      description:
        "Every session of the user ends, the caller's included: their access and refresh tokens are refused from then on, and their sockets are disconnected.",
      auth: "session",
      success: { status: 200, description: "Every session ended; `revokedSessions` counts them", schema: logoutAllResponseSchema },
      errors: [],
      handle: async ({ res }, { auth }) => ({ revokedSessions: await auth.logoutAll(caller(res).userId) }),
    }),
    operation({
      operationId: "changePassword",
      method: "post",
      path: "/change-password",
      summary: "Change the password",
      description:
        "`newPassword` follows the registration rules. The caller's session stays valid; every other session ends (its sockets are disconnected). A wrong `currentPassword` is 401 and counts as a failed login against the login limits (429 with `Retry-After`).",
      auth: "session",
      body: changePasswordSchema,
      success: { status: 200, description: "Password changed", schema: changePasswordResponseSchema },
      errors: ["UNAUTHORIZED", "RATE_LIMITED"],
      handle: async ({ body, req, res }, { auth }) => {
        await auth.changePassword(caller(res), body, requestContext(req).ip);
        return {};
      },
    }),
  ],
};

/**
 * The key change: under /users as the contract has it, declared here because it is an account
 * credential change like the password's (checked and throttled the same way, ending other sessions).
 */
export const accountKeyOperations: OperationGroup<AuthRouteDeps> = {
  prefix: "/users",
  tag: "Users",
  operations: [
    operation({
      operationId: "changeKey",
      method: "post",
      path: "/key",
      summary: "Replace the identity key",
      description:
        "The new key is bound to the account in the key-transparency log (merged within seconds: GET /transparency/proof/{userId} answers `pending: true` until then). Every other session of the account ends (its sockets are disconnected); the caller's stays. Every contact, either way (users the caller has added and users who added the caller), gets `key_changed` `{ userId, publicKey }`, durable until acknowledged. A wrong `currentPassword` is 401 and counts as a failed login against the login limits (429 with `Retry-After`).",
      auth: "session",
      body: changeKeySchema,
      success: { status: 200, description: "Key replaced; the caller's profile with the new key", schema: changeKeyResponseSchema },
      errors: ["UNAUTHORIZED", "RATE_LIMITED"],
      handle: ({ body, req, res }, { auth }) => auth.changeKey(caller(res), body, requestContext(req).ip),
    }),
  ],
};
