import { randomBytes } from "node:crypto";
import type { AppConfig } from "../config";
import { addressBucket } from "../shared/address-bucket";
import type { Clock } from "../shared/clock";
import { AppError, errors } from "../shared/errors";
import { newId } from "../shared/ids";
import { enforce, type FirestoreRateLimiter } from "../shared/rate-limit";
import type { UserEventPublisher } from "../shared/user-events";
import type { TransparencyRepository } from "../transparency/repository";
import type { KeyChangeNotices } from "../users/key-notices";
import { toProfile } from "../users/presenters";
import type { UserRepository } from "../users/repository";
import type { UserService } from "../users/service";
import { defaultDeviceName } from "./device-name";
import type { PasswordHasher } from "./passwords";
import type { ChangeKeyInput, ChangePasswordInput, LoginInput, RefreshInput, RegisterInput } from "./schema";
import type { SessionStore } from "./sessions";
import type { AccessTokens } from "./tokens";

const INVALID_CREDENTIALS = "Invalid email or password";
const WRONG_CURRENT_PASSWORD = "Current password is incorrect";

export interface AuthServiceDeps {
  users: UserRepository;
  userService: UserService;
  sessions: SessionStore;
  tokens: AccessTokens;
  passwords: PasswordHasher;
  limiter: FirestoreRateLimiter;
  clock: Clock;
  loginThrottle: AppConfig["loginThrottle"];
  /** The key-transparency log's queue: every identity key bound to an account enters it. */
  bindings: Pick<TransparencyRepository, "enqueue">;
  keyNotices: KeyChangeNotices;
  events: UserEventPublisher;
}

/** Minted outside transactions, so a retried attempt recognises its own earlier commit. */
const newBindingId = () => `bind_${randomBytes(18).toString("base64url")}`;

export class AuthService {
  constructor(private readonly deps: AuthServiceDeps) {}

  private async startSession(userId: string, deviceName: string) {
    const { sessionId, deviceId, refreshToken } = await this.deps.sessions.create(userId, deviceName);
    const { token, expiresIn } = this.deps.tokens.issue({ userId, sessionId });
    return { token, refreshToken, expiresIn, deviceId };
  }

  /** `userAgent` names the device when the request does not. */
  async register(input: RegisterInput, userAgent?: string) {
    const { users, passwords, clock, bindings } = this.deps;
    const id = newId("user");
    const createdAt = clock.now();
    const bindingId = newBindingId();
    const passwordHash = await passwords.hash(input.password);
    // The account's first key enters the transparency log's queue in the transaction that creates it.
    const binding = { userId: id, publicKey: input.publicKey, version: 1, timestamp: createdAt.toISOString() };
    const user = await users.create({ id, email: input.email, username: input.username, passwordHash, publicKey: input.publicKey, createdAt }, (tx) =>
      bindings.enqueue(tx, bindingId, binding, createdAt),
    );
    const tokens = await this.startSession(user.id, input.deviceName ?? defaultDeviceName(userAgent));
    const { lastLogin: _lastLogin, ...profile } = toProfile(user);
    return { ...tokens, user: profile };
  }

  /**
   * Counts one password check against the login limits, before the password is checked: per address (a
   * sprayer), per account and address (a targeted guesser), then per account from every address (a
   * distributed guesser, with a much higher ceiling). The strict bucket includes the address, so a
   * stranger's wrong guesses do not lock the owner out; an attempt one bucket refuses takes nothing
   * from the next. An IPv6 address counts as its /64 (addressBucket).
   */
  private async countPasswordAttempt(email: string, ip: string) {
    const { limiter, loginThrottle } = this.deps;
    const address = addressBucket(ip);
    enforce(await limiter.consume(`login:ip:${address}`, loginThrottle.perIp));
    enforce(await limiter.consume(`login:account-ip:${email}:${address}`, loginThrottle.perAccountAndIp));
    enforce(await limiter.consume(`login:account:${email}`, loginThrottle.perAccount));
  }

  async login(input: LoginInput, ip: string, userAgent?: string) {
    const { users, passwords, clock } = this.deps;
    await this.countPasswordAttempt(input.email, ip);

    const user = await users.findByEmail(input.email);
    const valid = user
      ? await passwords.verify(input.password, user.passwordHash)
      : await passwords.verifyAgainstDummy(input.password);
    if (!user || !valid) throw new AppError("UNAUTHORIZED", INVALID_CREDENTIALS);

    // The session first: a login refused for too many devices records nothing.
    const tokens = await this.startSession(user.id, input.deviceName ?? defaultDeviceName(userAgent));
    const now = clock.now();
    await users.recordLogin(user.id, now);
    const contacts = await this.deps.userService.contacts(user.id);
    return { ...tokens, user: toProfile({ ...user, lastLogin: now }), contacts };
  }

  async refresh(input: RefreshInput) {
    const { userId, sessionId, refreshToken } = await this.deps.sessions.rotate(input.refreshToken);
    const { token, expiresIn } = this.deps.tokens.issue({ userId, sessionId });
    return { token, refreshToken, expiresIn };
  }

  async logout(sessionId: string, userId: string) {
    await this.deps.sessions.revoke(sessionId, userId, "logout");
  }

  /** Ends every session of the user, the caller's included; answers how many. */
  async logoutAll(userId: string) {
    return this.deps.sessions.revokeAll(userId, "logout_all");
  }

  /**
   * Replaces the password after checking the current one (an attempt counted like a login), then ends
   * every other session: whoever else was signed in must prove the new password.
   */
  private async checkCurrentPassword(userId: string, currentPassword: string, ip: string) {
    const { users, passwords } = this.deps;
    const user = await users.findById(userId);
    if (!user) throw errors.sessionEnded();
    await this.countPasswordAttempt(user.email, ip);
    if (!(await passwords.verify(currentPassword, user.passwordHash))) {
      throw new AppError("UNAUTHORIZED", WRONG_CURRENT_PASSWORD);
    }
    return user;
  }

  /**
   * Replaces the identity key after checking the password (counted like a login): the new binding
   * enters the transparency log's queue in the same transaction, every other session ends (a device
   * holding the old key must not go on), and every contact, either way, gets `key_changed` until they
   * acknowledge it.
   */
  async changeKey(claims: { userId: string; sessionId: string }, input: ChangeKeyInput, ip: string) {
    const { users, sessions, bindings, keyNotices, events, clock } = this.deps;
    const user = await this.checkCurrentPassword(claims.userId, input.currentPassword, ip);
    const changedAt = clock.now();
    const bindingId = newBindingId();
    const version = await users.replacePublicKey(user.id, input.publicKey, bindingId, (tx, version) =>
      bindings.enqueue(tx, bindingId, { userId: user.id, publicKey: input.publicKey, version, timestamp: changedAt.toISOString() }, changedAt),
    );
    if (version === undefined) throw errors.sessionEnded();
    await sessions.revokeAll(user.id, "key_changed", claims.sessionId);
    const recipients = await users.contactsEitherWay(user.id);
    await keyNotices.record(recipients, { userId: user.id, publicKey: input.publicKey, version, changedAt });
    const payload = { userId: user.id, publicKey: input.publicKey };
    await Promise.all(recipients.map((recipientId) => events.publish(recipientId, "key_changed", payload)));
    return { user: toProfile({ ...user, publicKey: input.publicKey }) };
  }

  async changePassword(claims: { userId: string; sessionId: string }, input: ChangePasswordInput, ip: string) {
    const { users, passwords, sessions } = this.deps;
    const user = await this.checkCurrentPassword(claims.userId, input.currentPassword, ip);
    await users.updatePasswordHash(user.id, await passwords.hash(input.newPassword));
    await sessions.revokeAll(user.id, "password_changed", claims.sessionId);
  }
}
