import type { AppConfig } from "../config";
import { addressBucket } from "../shared/address-bucket";
import type { Clock } from "../shared/clock";
import { AppError, errors } from "../shared/errors";
import { newId } from "../shared/ids";
import { enforce, type FirestoreRateLimiter } from "../shared/rate-limit";
import { toProfile } from "../users/presenters";
import type { UserRepository } from "../users/repository";
import type { UserService } from "../users/service";
import { defaultDeviceName } from "./device-name";
import type { PasswordHasher } from "./passwords";
import type { ChangePasswordInput, LoginInput, RefreshInput, RegisterInput } from "./schema";
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
}

export class AuthService {
  constructor(private readonly deps: AuthServiceDeps) {}

  private async startSession(userId: string, deviceName: string) {
    const { sessionId, deviceId, refreshToken } = await this.deps.sessions.create(userId, deviceName);
    const { token, expiresIn } = this.deps.tokens.issue({ userId, sessionId });
    return { token, refreshToken, expiresIn, deviceId };
  }

  /** `userAgent` names the device when the request does not. */
  async register(input: RegisterInput, userAgent?: string) {
    const { users, passwords, clock } = this.deps;
    const user = await users.create({
      id: newId("user"),
      email: input.email,
      username: input.username,
      passwordHash: await passwords.hash(input.password),
      publicKey: input.publicKey,
      createdAt: clock.now(),
    });
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
  async changePassword(claims: { userId: string; sessionId: string }, input: ChangePasswordInput, ip: string) {
    const { users, passwords, sessions } = this.deps;
    const user = await users.findById(claims.userId);
    if (!user) throw errors.sessionEnded();
    await this.countPasswordAttempt(user.email, ip);
    if (!(await passwords.verify(input.currentPassword, user.passwordHash))) {
      throw new AppError("UNAUTHORIZED", WRONG_CURRENT_PASSWORD);
    }
    await users.updatePasswordHash(user.id, await passwords.hash(input.newPassword));
    await sessions.revokeAll(user.id, "password_changed", claims.sessionId);
  }
}
