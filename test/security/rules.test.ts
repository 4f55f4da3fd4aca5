import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  assertFails,
  assertSucceeds,
  initializeTestEnvironment,
  type RulesTestContext,
  type RulesTestEnvironment,
} from "@firebase/rules-unit-testing";
import { setLogLevel } from "firebase/firestore";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { COLLECTIONS } from "../../functions/src/shared/firestore";

/**
 * Clients never reach Firestore or Cloud Storage directly: the API and the relay use the Admin SDK, which
 * the rules do not apply to. These stories prove the deployed Firestore rules refuse every client, for every
 * collection the backend uses (COLLECTIONS, with users/{id}/contacts as a subcollection), whether or not
 * the client is signed in to Firebase Auth, and even when its uid is the document's own id.
 * storage.rules cannot be evaluated on this machine: see the end of this file for why, and what is checked.
 */

const ROOT = resolve(__dirname, "..", "..");
// Every denial is expected here; the client SDK would log each one as an error.
setLogLevel("silent");
const ALICE = "user_aliceAliceAliceAliceAlice1";
const BOB = "user_bobBobBobBobBobBobBobBob12";

/** One existing document per collection, and where a new one would go. */
const PATHS: Array<{ collection: string; existing: string; fresh: string }> = [
  ...Object.values(COLLECTIONS)
    .filter((name) => name !== COLLECTIONS.contacts)
    .map((name) => ({ collection: name, existing: `${name}/${ALICE}`, fresh: `${name}/${BOB}` })),
  {
    collection: `${COLLECTIONS.users}/{userId}/${COLLECTIONS.contacts}`,
    existing: `${COLLECTIONS.users}/${ALICE}/${COLLECTIONS.contacts}/${BOB}`,
    fresh: `${COLLECTIONS.users}/${ALICE}/${COLLECTIONS.contacts}/user_carolCarolCarolCarolCarol1`,
  },
];

const SEED = { ownerId: ALICE, secret: "ciphertext-or-hash", contactUserId: BOB };

function hostAndPort(value: string): { host: string; port: number } {
  const separator = value.lastIndexOf(":");
  return { host: value.slice(0, separator), port: Number(value.slice(separator + 1)) };
}

async function seed(env: RulesTestEnvironment): Promise<void> {
  await env.withSecurityRulesDisabled(async (admin) => {
    const db = admin.firestore();
    await Promise.all(PATHS.map(({ existing }) => db.doc(existing).set(SEED)));
  });
}

describe("firestore.rules", () => {
  let env: RulesTestEnvironment;

  beforeAll(async () => {
    env = await initializeTestEnvironment({
      projectId: `demo-rules-${randomBytes(4).toString("hex")}`,
      firestore: { ...hostAndPort(inject("firestoreEmulatorHost")), rules: readFileSync(resolve(ROOT, "firestore.rules"), "utf8") },
    });
    await seed(env);
  });

  afterAll(async () => {
    await env?.clearFirestore();
    await env?.cleanup();
  });

  const clients: Array<{ who: string; context: () => RulesTestContext }> = [
    { who: "an unauthenticated client", context: () => env.unauthenticatedContext() },
    { who: "a client signed in as the document's own user", context: () => env.authenticatedContext(ALICE) },
    { who: "a client signed in as another user", context: () => env.authenticatedContext(BOB) },
    {
      who: "a client signed in with an admin-looking custom claim",
      context: () => env.authenticatedContext(ALICE, { admin: true, email_verified: true } as Record<string, unknown>),
    },
  ];

  describe.each(clients)("when $who", ({ context }) => {
    it.each(PATHS)("then every read and write of $collection is denied", async ({ existing, fresh }) => {
      const db = context().firestore();
      const collection = existing.slice(0, existing.lastIndexOf("/"));

      await assertFails(db.doc(existing).get());
      await assertFails(db.collection(collection).get());
      await assertFails(db.collection(collection).where("ownerId", "==", ALICE).get());
      await assertFails(db.doc(fresh).set({ ownerId: ALICE }));
      await assertFails(db.doc(existing).set({ ownerId: BOB }, { merge: true }));
      await assertFails(db.doc(existing).update({ secret: "changed" }));
      await assertFails(db.doc(existing).delete());
    });

    it("then a collection-group query over every user's contacts is denied", async () => {
      const db = context().firestore();

      await assertFails(db.collectionGroup(COLLECTIONS.contacts).where("contactUserId", "==", BOB).get());
      await assertFails(db.collectionGroup(COLLECTIONS.contacts).get());
    });

    it("then a collection the backend does not use is denied too", async () => {
      const db = context().firestore();

      await assertFails(db.doc(`somethingNew/${ALICE}`).set({ ownerId: ALICE }));
      await assertFails(db.doc(`somethingNew/${ALICE}`).get());
    });

    it("then a batched write and a transaction are denied and change nothing", async () => {
      const db = context().firestore();
      const batch = db.batch();
      batch.set(db.doc(PATHS[0]!.fresh), { ownerId: ALICE });
      batch.delete(db.doc(PATHS[0]!.existing));

      await assertFails(batch.commit());
      await assertFails(db.runTransaction(async (tx) => tx.get(db.doc(PATHS[0]!.existing))));

      await env.withSecurityRulesDisabled(async (admin) => {
        expect((await admin.firestore().doc(PATHS[0]!.existing).get()).data()).toEqual(SEED);
        expect((await admin.firestore().doc(PATHS[0]!.fresh).get()).exists).toBe(false);
      });
    });
  });

  it("when the denied operations are over, then every seeded document is unchanged and none was added", async () => {
    await env.withSecurityRulesDisabled(async (admin) => {
      const db = admin.firestore();
      for (const { existing, fresh } of PATHS) {
        expect((await db.doc(existing).get()).data(), existing).toEqual(SEED);
        expect((await db.doc(fresh).get()).exists, fresh).toBe(false);
      }
    });
  });
});

describe("the rules harness itself (control)", () => {
  it("when the rules allow everything, then the same reads and writes succeed, so the denials above are the rules' doing", async () => {
    const env = await initializeTestEnvironment({
      projectId: `demo-rules-open-${randomBytes(4).toString("hex")}`,
      firestore: {
        ...hostAndPort(inject("firestoreEmulatorHost")),
        rules: "rules_version = '2'; service cloud.firestore { match /databases/{db}/documents { match /{d=**} { allow read, write: if true; } } }",
      },
    });
    try {
      await seed(env);
      const db = env.unauthenticatedContext().firestore();
      const { existing, fresh } = PATHS[0]!;
      await assertSucceeds(db.doc(existing).get());
      await assertSucceeds(db.doc(fresh).set({ ownerId: ALICE }));
      await assertSucceeds(db.collectionGroup(COLLECTIONS.contacts).get());
    } finally {
      await env.clearFirestore();
      await env.cleanup();
    }
  });
});

/**
 * storage.rules is NOT evaluated by any test. Storage rules run only in firebase-tools' rules runtime, a
 * Java 21 JAR downloaded on first use; this machine has Java 17 (enough for the Firestore emulator) and no
 * internet. The Storage emulator the tests use (functions/src/local/storage-emulator.ts) runs without that
 * runtime: it refuses to load rules (/internal/setRules answers 501), denies every client SDK request
 * whatever the rules say (it has "no loaded ruleset"), and lets Admin SDK requests through as production
 * does. A denial test against it would pass for any storage.rules, so none pretends to.
 *
 * What is checked instead is the file itself: it must stay the deny-everything ruleset, so any change to it
 * fails here and has to be reviewed (and evaluated with `firebase emulators:exec` where Java 21 is available).
 */
describe("storage.rules (its text: the rules runtime is not available here, see above)", () => {
  /** The rules without comments, whitespace collapsed. */
  const normalized = (rules: string) => rules.replace(/\/\/.*$/gm, "").replace(/\s+/g, " ").trim();

  it("when storage.rules is read, then it is one rule for every path of every bucket, allowing read and write to no one", () => {
    const rules = readFileSync(resolve(ROOT, "storage.rules"), "utf8");
    expect(normalized(rules)).toBe(
      normalized(`
        rules_version = '2';
        service firebase.storage {
          match /b/{bucket}/o {
            match /{allPaths=**} {
              allow read, write: if false;
            }
          }
        }`),
    );
  });
});
