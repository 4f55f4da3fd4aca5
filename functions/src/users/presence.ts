import type { UserRecord } from "./repository";
import type { Presence } from "./presenters";

/**
 * Where contacts' online state comes from: the realtime relay keeps it in Firestore
 * (relay/presence.ts); the users capability only reads it through this interface.
 */
export interface PresenceDirectory {
  lookup(users: UserRecord[]): Promise<Map<string, Presence>>;
}
