import type { UserRecord } from "./repository";
import type { Presence } from "./presenters";

/**
 * Where contacts' online state comes from. The realtime relay provides the live implementation;
 * until it is attached, everyone is offline and lastSeen is the last login.
 */
export interface PresenceDirectory {
  lookup(users: UserRecord[]): Promise<Map<string, Presence>>;
}

export const offlinePresence: PresenceDirectory = {
  async lookup(users) {
    return new Map(users.map((user) => [user.id, { isOnline: false, lastSeen: user.lastSeen ?? user.lastLogin }]));
  },
};
