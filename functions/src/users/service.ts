import type { Clock } from "../shared/clock";
import { AppError, errors } from "../shared/errors";
import type { PresenceDirectory } from "./presence";
import { HIDDEN_PRESENCE, toBlockedUser, toContact, toProfile, toPublicUser } from "./presenters";
import type { UserRepository } from "./repository";
import { encodeContactCursor, type ContactsQuery } from "./schema";

/** Contacts per user: bounds the login response and the presence fan-out. */
export const MAX_CONTACTS = 1000;
/** Blocked users per user: bounds GET /users/blocked. */
export const MAX_BLOCKED = 1000;

export class UserService {
  constructor(
    private readonly users: UserRepository,
    private readonly presence: PresenceDirectory,
    private readonly clock: Clock,
  ) {}

  async profile(userId: string) {
    const user = await this.users.findById(userId);
    if (!user) throw errors.notFound("User");
    return toProfile(user);
  }

  async contacts(userId: string) {
    const [contacts, peers] = await Promise.all([this.users.listContacts(userId), this.users.presencePeers(userId)]);
    // Presence only between mutual contacts with no block either way; the others show none.
    const presence = await this.presence.lookup(contacts.map((contact) => contact.user).filter((user) => peers.has(user.id)));
    return contacts.map((contact) => toContact(contact, presence.get(contact.user.id) ?? HIDDEN_PRESENCE));
  }

  /** One page of the caller's contacts with presence, and the cursor of the next page (null at the end). */
  async contactsPage(userId: string, page: ContactsQuery) {
    const [{ contacts, more, last }, peers] = await Promise.all([
      this.users.listContactsPage(userId, page.limit, page.cursor),
      this.users.presencePeers(userId),
    ]);
    // Presence only between mutual contacts with no block either way, as in contacts().
    const presence = await this.presence.lookup(contacts.map((contact) => contact.user).filter((user) => peers.has(user.id)));
    return {
      contacts: contacts.map((contact) => toContact(contact, presence.get(contact.user.id) ?? HIDDEN_PRESENCE)),
      nextCursor: more && last ? encodeContactCursor(last) : null,
    };
  }

  async addContact(userId: string, username: string) {
    const contact = await this.users.findByUsername(username);
    if (!contact) throw new AppError("NOT_FOUND", "No user with this username", { field: "username" });
    if (contact.id === userId) {
      throw errors.validation("username", "username: you cannot add yourself as a contact");
    }
    if ((await this.users.countContacts(userId)) >= MAX_CONTACTS) {
      throw new AppError("LIMIT_EXCEEDED", `A user can have at most ${MAX_CONTACTS} contacts`);
    }
    const addedAt = this.clock.now();
    if (!(await this.users.addContact(userId, contact.id, addedAt))) {
      throw new AppError("ALREADY_EXISTS", "This user is already a contact", { field: "username" });
    }
    return { ...toPublicUser(contact), addedAt: addedAt.toISOString() };
  }

  async removeContact(userId: string, contactId: string) {
    if (!(await this.users.removeContact(userId, contactId))) throw errors.notFound("Contact");
  }

  async search(userId: string, prefix: string, limit: number) {
    // One extra so that excluding the caller still leaves `limit` results.
    const found = await this.users.searchByUsernamePrefix(prefix, limit + 1);
    return found.filter((user) => user.id !== userId).slice(0, limit).map(toPublicUser);
  }

  /** Idempotent: blocking someone already blocked succeeds and keeps the first block's time. */
  async block(userId: string, blockedId: string) {
    if (blockedId === userId) throw errors.validation("userId", "userId: you cannot block yourself");
    if (!(await this.users.findById(blockedId))) throw new AppError("NOT_FOUND", "User not found", { field: "userId" });
    if (await this.users.isBlocking(userId, blockedId)) return;
    if ((await this.users.countBlocked(userId)) >= MAX_BLOCKED) {
      throw new AppError("LIMIT_EXCEEDED", `A user can block at most ${MAX_BLOCKED} users`);
    }
    await this.users.block(userId, blockedId, this.clock.now());
  }

  /** Idempotent: unblocking someone not blocked (or no user at all) succeeds. */
  async unblock(userId: string, blockedId: string) {
    await this.users.unblock(userId, blockedId);
  }

  async blocked(userId: string) {
    return (await this.users.listBlocked(userId)).map(toBlockedUser);
  }
}
