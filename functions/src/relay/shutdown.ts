import type { ResilientListener } from "./resilient-listener";
import type { ConnectedUsers, PresenceTracker } from "./presence";
import type { RelayServer } from "./schema";

/**
 * Stops a relay instance. With `handOff` (SIGTERM on Cloud Run), sockets are dropped at the transport so
 * socket.io-client reconnects by itself, to another instance; otherwise they are told the server closed.
 * The instance's users go offline unless connected elsewhere, and the instance leaves the live list.
 * Messages need nothing here: whatever a dropped socket had not acknowledged is in its next backlog.
 */
export async function shutDownRelay(
  parts: { io: RelayServer; eventFeed: ResilientListener; connectedUsers: ConnectedUsers; presence: PresenceTracker },
  { handOff = false } = {},
): Promise<void> {
  const { io, eventFeed, connectedUsers, presence } = parts;
  for (const socket of io.of("/").sockets.values()) {
    if (handOff) socket.conn.close();
    else socket.disconnect(true);
  }
  eventFeed.stop();
  await connectedUsers.idle();
  await presence.stop();
  // io.close() would also close the HTTP server, which belongs to whoever created it.
  io.engine.close();
  io.removeAllListeners();
}
