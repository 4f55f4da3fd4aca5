import type { AppConfig } from "../config";
import type { Clock } from "../shared/clock";
import { AppError } from "../shared/errors";
import { newId } from "../shared/ids";
import { enforce, type FirestoreRateLimiter } from "../shared/rate-limit";
import { toProfile } from "../users/presenters";
import type { UserRepository } from "../users/repository";
import type { UserService } from "../users/service";
import type { PasswordHasher } from "./passwords";
import type { LoginInput, RefreshInput, RegisterInput } from "./schema";
import type { SessionStore } from "./sessions";
import type { AccessTokens } from "./tokens";

const INVALID_CREDENTIALS = "Invalid email or password";

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

  private async startSession(userId: string) {
    const { sessionId, refreshToken } = await this.deps.sessions.create(userId);
    const { token, expiresIn } = this.deps.tokens.issue({ userId, sessionId });
    return { token, refreshToken, expiresIn };
  }

  async register(input: RegisterInput) {
    const { users, passwords, clock } = this.deps;
    const user = await users.create({
      id: newId("user"),
      email: input.email,
      username: input.username,
      passwordHash: await passwords.hash(input.password),
      publicKey: input.publicKey,
      createdAt: clock.now(),
    });
    const tokens = await this.startSession(user.id);
    const { lastLogin: _lastLogin, ...profile } = toProfile(user);
    return { ...tokens, user: profile };
  }

  /**
   * Counts one password check against the login limits, before the password is checked: per address (a
   * sprayer), per account and address (a targeted guesser), then per account from every address (a
   * distributed guesser, with a much higher ceiling). The strict bucket includes the address, so a
   * stranger's wrong guesses do not lock the owner out; an attempt one bucket refuses takes nothing
   * from the next.
   */
  private async countPasswordAttempt(email: string, ip: string) {
    const { limiter, loginThrottle } = this.deps;
    enforce(await limiter.consume(`login:ip:${ip}`, loginThrottle.perIp));
    enforce(await limiter.consume(`login:account-ip:${email}:${ip}`, loginThrottle.perAccountAndIp));
    enforce(await limiter.consume(`login:account:${email}`, loginThrottle.perAccount));
  }

  async login(input: LoginInput, ip: string) {
    const { users, passwords, clock } = this.deps;
    await this.countPasswordAttempt(input.email, ip);

    const user = await users.findByEmail(input.email);
    const valid = user
      ? await passwords.verify(input.password, user.passwordHash)
      : await passwords.verifyAgainstDummy(input.password);
    if (!user || !valid) throw new AppError("UNAUTHORIZED", INVALID_CREDENTIALS);

    const now = clock.now();
    await users.recordLogin(user.id, now);
    const tokens = await this.startSession(user.id);
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
}
