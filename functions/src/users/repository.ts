import { createHash } from "node:crypto";
import { FieldPath, Timestamp, type DocumentReference, type Firestore, type Transaction } from "firebase-admin/firestore";
import { AppError } from "../shared/errors";
import { COLLECTIONS, FIRESTORE_CODES, firestoreCodeOf } from "../shared/firestore";
import type { PresenceFacts } from "../shared/policies";

/** Where a page of contacts ended: the last contact's addedAt and id. */
export interface ContactCursor {
  addedAtMs: number;
  id: string;
}

/** The only door to users, their uniqueness claims and their contacts (layout: shared/firestore.ts). */

export interface UserRecord {
  id: string;
  email: string;
  username: string;
  usernameLower: string;
  passwordHash: string;
  publicKey: string;
  createdAt: Date;
  lastLogin: Date | null;
  lastSeen: Date | null;
}

export interface ContactRecord {
  user: UserRecord;
  addedAt: Date;
}

export interface NewUser {
  id: string;
  email: string;
  username: string;
  passwordHash: string;
  publicKey: string;
  createdAt: Date;
}

/**
 * The block document "blocker blocks blocked": users/{blockerId}/blocked/{blockedId}. Exported so the
 * transactions that store something addressed to a user (messages, files) can read it among their
 * own reads, which makes the refusal hold against a concurrent block.
 */
export function blockRefOf(db: Firestore, blockerId: string, blockedId: string): DocumentReference {
  return db.collection(COLLECTIONS.users).doc(blockerId).collection(COLLECTIONS.blocked).doc(blockedId);
}

const emailClaimId = (email: string) => createHash("sha256").update(email.toLowerCase()).digest("hex");

type StoredUser = Omit<UserRecord, "id" | "createdAt" | "lastLogin" | "lastSeen"> & {
  createdAt: Timestamp;
  lastLogin: Timestamp | null;
  lastSeen: Timestamp | null;
};

/** A new user's document in the users collection: never logged in, never seen. */
export function storedUserOf(user: Omit<NewUser, "id">): StoredUser {
  return {
    email: user.email,
    username: user.username,
    usernameLower: user.username.toLowerCase(),
    passwordHash: user.passwordHash,
    publicKey: user.publicKey,
    createdAt: Timestamp.fromDate(user.createdAt),
    lastLogin: null,
    lastSeen: null,
  };
}

function fromStored(id: string, data: StoredUser): UserRecord {
  return {
    id,
    email: data.email,
    username: data.username,
    usernameLower: data.usernameLower,
    passwordHash: data.passwordHash,
    publicKey: data.publicKey,
    createdAt: data.createdAt.toDate(),
    lastLogin: data.lastLogin?.toDate() ?? null,
    lastSeen: data.lastSeen?.toDate() ?? null,
  };
}

export class UserRepository {
  private readonly users;
  private readonly emails;
  private readonly usernames;

  constructor(private readonly db: Firestore) {
    this.users = db.collection(COLLECTIONS.users);
    this.emails = db.collection(COLLECTIONS.userEmails);
    this.usernames = db.collection(COLLECTIONS.usernames);
  }

  /**
   * Creates the user and claims its email and username in one transaction; `alsoWrite` adds the
   * caller's own writes to it (the key-transparency binding), so they happen exactly when the user does.
   */
  async create(user: NewUser, alsoWrite?: (tx: Transaction) => void): Promise<UserRecord> {
    const stored = storedUserOf(user);
    const emailRef = this.emails.doc(emailClaimId(user.email));
    const usernameRef = this.usernames.doc(stored.usernameLower);
    await this.db.runTransaction(async (tx) => {
      const [emailClaim, usernameClaim] = await tx.getAll(emailRef, usernameRef);
      // A retried transaction whose first attempt committed finds its own claims: that is success.
      if (emailClaim!.exists && emailClaim!.get("userId") === user.id) return;
      if (emailClaim!.exists) throw new AppError("EMAIL_TAKEN", "An account with this email already exists", { field: "email" });
      if (usernameClaim!.exists) throw new AppError("USERNAME_TAKEN", "This username is taken", { field: "username" });
      tx.create(this.users.doc(user.id), stored);
      tx.create(emailRef, { userId: user.id });
      tx.create(usernameRef, { userId: user.id });
      alsoWrite?.(tx);
    });
    return fromStored(user.id, stored);
  }

  async findById(userId: string): Promise<UserRecord | undefined> {
    const snapshot = await this.users.doc(userId).get();
    return snapshot.exists ? fromStored(snapshot.id, snapshot.data() as StoredUser) : undefined;
  }

  async findByEmail(email: string): Promise<UserRecord | undefined> {
    const claim = await this.emails.doc(emailClaimId(email)).get();
    const userId = claim.get("userId") as string | undefined;
    return userId ? this.findById(userId) : undefined;
  }

  async findByUsername(username: string): Promise<UserRecord | undefined> {
    const claim = await this.usernames.doc(username.toLowerCase()).get();
    const userId = claim.get("userId") as string | undefined;
    return userId ? this.findById(userId) : undefined;
  }

  /**
   * Replaces the user's identity key in one transaction and answers its version (the account's keys
   * counted from 1). `alsoWrite` gets that version and adds the caller's writes (the binding) to it.
   * `changeId` is minted by the caller: a retried attempt whose first one committed finds it and writes nothing.
   */
  async replacePublicKey(
    userId: string,
    publicKey: string,
    changeId: string,
    alsoWrite: (tx: Transaction, version: number) => void,
  ): Promise<number | undefined> {
    const ref = this.users.doc(userId);
    return this.db.runTransaction(async (tx) => {
      const snapshot = await tx.get(ref);
      if (!snapshot.exists) return undefined;
      const version = (snapshot.get("keyVersion") as number | undefined) ?? 1;
      if (snapshot.get("keyChangeId") === changeId) return version;
      tx.update(ref, { publicKey, keyVersion: version + 1, keyChangeId: changeId });
      alsoWrite(tx, version + 1);
      return version + 1;
    });
  }

  async updatePasswordHash(userId: string, passwordHash: string): Promise<void> {
    await this.users.doc(userId).update({ passwordHash });
  }

  async recordLogin(userId: string, at: Date): Promise<void> {
    const when = Timestamp.fromDate(at);
    await this.users.doc(userId).update({ lastLogin: when, lastSeen: when });
  }

  /** Users whose username starts with `prefix` (case-insensitive), in username order. */
  async searchByUsernamePrefix(prefix: string, limit: number): Promise<UserRecord[]> {
    const lower = prefix.toLowerCase();
    const snapshot = await this.users
      .where("usernameLower", ">=", lower)
      .where("usernameLower", "<", lower + "\uf8ff")
      .orderBy("usernameLower")
      .limit(limit)
      .get();
    return snapshot.docs.map((doc) => fromStored(doc.id, doc.data() as StoredUser));
  }

  private contactsOf(userId: string) {
    return this.users.doc(userId).collection(COLLECTIONS.contacts);
  }

  async listContacts(userId: string): Promise<ContactRecord[]> {
    const links = await this.contactsOf(userId).orderBy("addedAt").get();
    if (links.empty) return [];
    const userDocs = await this.db.getAll(...links.docs.map((link) => this.users.doc(link.id)));
    const addedAt = new Map(links.docs.map((link) => [link.id, (link.get("addedAt") as Timestamp).toDate()]));
    return userDocs
      .filter((doc) => doc.exists)
      .map((doc) => ({ user: fromStored(doc.id, doc.data() as StoredUser), addedAt: addedAt.get(doc.id)! }));
  }

  /**
   * One page of contacts in the order they were added (ties by id), after `after` (exclusive): the
   * page's links and its users, so `limit` contacts cost about 2 × limit reads. `more` says whether
   * another page follows (one link more is read to know).
   */
  async listContactsPage(
    userId: string,
    limit: number,
    after?: ContactCursor,
  ): Promise<{ contacts: ContactRecord[]; more: boolean; last?: ContactCursor }> {
    let query = this.contactsOf(userId).orderBy("addedAt").orderBy(FieldPath.documentId()).limit(limit + 1);
    if (after) query = query.startAfter(Timestamp.fromMillis(after.addedAtMs), after.id);
    const links = (await query.get()).docs;
    const page = links.slice(0, limit);
    if (page.length === 0) return { contacts: [], more: false };
    const userDocs = await this.db.getAll(...page.map((link) => this.users.doc(link.id)));
    const addedAt = new Map(page.map((link) => [link.id, (link.get("addedAt") as Timestamp).toDate()]));
    const lastLink = page[page.length - 1]!;
    return {
      contacts: userDocs
        .filter((doc) => doc.exists)
        .map((doc) => ({ user: fromStored(doc.id, doc.data() as StoredUser), addedAt: addedAt.get(doc.id)! })),
      more: links.length > limit,
      last: { addedAtMs: (lastLink.get("addedAt") as Timestamp).toMillis(), id: lastLink.id },
    };
  }

  async countContacts(userId: string): Promise<number> {
    const snapshot = await this.contactsOf(userId).count().get();
    return snapshot.data().count;
  }

  /** Adds the link; false when it already existed. */
  async addContact(userId: string, contactUserId: string, at: Date): Promise<boolean> {
    try {
      // contactUserId repeats the document id so a collection-group query can find "who has me".
      await this.contactsOf(userId).doc(contactUserId).create({ addedAt: Timestamp.fromDate(at), contactUserId });
      return true;
    } catch (error) {
      if (firestoreCodeOf(error) === FIRESTORE_CODES.ALREADY_EXISTS) return false;
      throw error;
    }
  }

  /**
   * Everyone related to the user by a contact link either way: the user's contacts, and the users
   * who have the user as a contact (those who would encrypt to the user's key). Who hears `key_changed`.
   */
  async contactsEitherWay(userId: string): Promise<string[]> {
    const [mine, theirs] = await Promise.all([
      this.contactsOf(userId).select().get(),
      this.db.collectionGroup(COLLECTIONS.contacts).where("contactUserId", "==", userId).select().get(),
    ]);
    const ids = new Set([...mine.docs.map((doc) => doc.id), ...theirs.docs.map((doc) => doc.ref.parent.parent!.id)]);
    ids.delete(userId);
    return [...ids];
  }

  /**
   * Everyone the user shares presence and typing with: users who have the user as a contact and whom
   * the user has as a contact, with a block in neither direction (the rule of docs/API.md, "Presence").
   */
  async presencePeers(userId: string): Promise<Set<string>> {
    const [mine, theirs, myBlocks] = await Promise.all([
      this.contactsOf(userId).select().get(),
      this.db.collectionGroup(COLLECTIONS.contacts).where("contactUserId", "==", userId).select().get(),
      this.blockedBy(userId).select().get(),
    ]);
    const addedMe = new Set(theirs.docs.map((link) => link.ref.parent.parent!.id));
    const blockedByMe = new Set(myBlocks.docs.map((doc) => doc.id));
    const mutual = mine.docs.map((doc) => doc.id).filter((id) => id !== userId && addedMe.has(id) && !blockedByMe.has(id));
    if (mutual.length === 0) return new Set();
    // Whether they block the user: read from each candidate's own list (bounded by the user's contacts).
    const theirBlocks = await this.db.getAll(...mutual.map((id) => blockRefOf(this.db, id, userId)));
    return new Set(mutual.filter((_, index) => !theirBlocks[index]!.exists));
  }

  /** The contacts and blocks between two users, for the presence policy (shared/policies.ts). */
  async presenceFacts(from: string, to: string): Promise<PresenceFacts> {
    const [fromTo, toFrom, fromBlocks, toBlocks] = await this.db.getAll(
      this.contactsOf(from).doc(to),
      this.contactsOf(to).doc(from),
      blockRefOf(this.db, from, to),
      blockRefOf(this.db, to, from),
    );
    return { fromHasTo: fromTo!.exists, toHasFrom: toFrom!.exists, fromBlocksTo: fromBlocks!.exists, toBlocksFrom: toBlocks!.exists };
  }

  private blockedBy(userId: string) {
    return this.users.doc(userId).collection(COLLECTIONS.blocked);
  }

  /** Records that `blockerId` blocks `blockedId`; a block already there keeps its time. False when it was there. */
  async block(blockerId: string, blockedId: string, at: Date): Promise<boolean> {
    try {
      await blockRefOf(this.db, blockerId, blockedId).create({ blockedAt: Timestamp.fromDate(at) });
      return true;
    } catch (error) {
      if (firestoreCodeOf(error) === FIRESTORE_CODES.ALREADY_EXISTS) return false;
      throw error;
    }
  }

  async unblock(blockerId: string, blockedId: string): Promise<void> {
    await blockRefOf(this.db, blockerId, blockedId).delete();
  }

  async isBlocking(blockerId: string, blockedId: string): Promise<boolean> {
    return (await blockRefOf(this.db, blockerId, blockedId).get()).exists;
  }

  async countBlocked(userId: string): Promise<number> {
    return (await this.blockedBy(userId).count().get()).data().count;
  }

  /** The users `userId` blocks, in the order they were blocked (accounts that no longer exist left out). */
  async listBlocked(userId: string): Promise<UserRecord[]> {
    const blocks = await this.blockedBy(userId).orderBy("blockedAt").get();
    if (blocks.empty) return [];
    const userDocs = await this.db.getAll(...blocks.docs.map((block) => this.users.doc(block.id)));
    return userDocs.filter((doc) => doc.exists).map((doc) => fromStored(doc.id, doc.data() as StoredUser));
  }

  /** Removes the link; false when there was none. */
  async removeContact(userId: string, contactUserId: string): Promise<boolean> {
    const ref = this.contactsOf(userId).doc(contactUserId);
    return this.db.runTransaction(async (tx) => {
      const link = await tx.get(ref);
      if (!link.exists) return false;
      tx.delete(ref);
      return true;
    });
  }
}
