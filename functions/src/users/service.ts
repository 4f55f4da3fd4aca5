import type { Clock } from "../shared/clock";
import { AppError, errors } from "../shared/errors";
import type { PresenceDirectory } from "./presence";
import { toContact, toProfile, toPublicUser } from "./presenters";
import type { UserRepository } from "./repository";
import { encodeContactCursor, type ContactsQuery } from "./schema";

/** Contacts per user: bounds the login response and the presence fan-out. */
export const MAX_CONTACTS = 1000;

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
    const contacts = await this.users.listContacts(userId);
    const presence = await this.presence.lookup(contacts.map((contact) => contact.user));
    return contacts.map((contact) => toContact(contact, presence.get(contact.user.id)!));
  }

  /** One page of the caller's contacts with presence, and the cursor of the next page (null at the end). */
  async contactsPage(userId: string, page: ContactsQuery) {
    const { contacts, more, last } = await this.users.listContactsPage(userId, page.limit, page.cursor);
    const presence = await this.presence.lookup(contacts.map((contact) => contact.user));
    return {
      contacts: contacts.map((contact) => toContact(contact, presence.get(contact.user.id)!)),
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
}
