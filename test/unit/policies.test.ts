import { describe, expect, it } from "vitest";
import * as policies from "../../functions/src/shared/policies";

const file = { uploaderId: "user_alice", receiverId: "user_bob" };
const exchange = { initiatorId: "user_alice", targetId: "user_bob" };
const facts = { fromHasTo: true, toHasFrom: true, fromBlocksTo: false, toBlocksFrom: false };

describe("policies", () => {
  it("when a live file is asked for, then only its uploader and receiver see it, and only the uploader deletes it", () => {
    expect(["user_alice", "user_bob", "user_eve"].map((id) => policies.canSeeFile(id, file, true))).toEqual([true, true, false]);
    expect(policies.canSeeFile("user_alice", file, false)).toBe(false);
    expect(["user_alice", "user_bob"].map((id) => policies.canDeleteFile(id, file))).toEqual([true, false]);
  });

  it("when a file was deleted (downloaded, expired), then only its parties may know it is gone; only the receiver's download deletes it", () => {
    expect(["user_alice", "user_bob", "user_eve"].map((id) => policies.canKnowFileIsGone(id, file))).toEqual([true, true, false]);
    const ephemeral = { ...file, deleteAfterDownload: true };
    expect(["user_alice", "user_bob", "user_eve"].map((id) => policies.downloadDeletesFile(id, ephemeral))).toEqual([false, true, false]);
    expect(policies.downloadDeletesFile("user_bob", file)).toBe(false);
  });

  it("when a message is acknowledged, then only by its receiver", () => {
    expect(policies.canAcknowledgeMessage("user_bob", file)).toBe(true);
    expect(policies.canAcknowledgeMessage("user_alice", file)).toBe(false);
  });

  it("when an exchange is asked for, then its participants see it, only the target responds, each acknowledges their own notice", () => {
    expect(["user_alice", "user_bob", "user_eve"].map((id) => policies.canSeeExchange(id, exchange))).toEqual([true, true, false]);
    expect(["user_alice", "user_bob"].map((id) => policies.canRespondToExchange(id, exchange))).toEqual([false, true]);
    expect(policies.canAcknowledgeExchangeNotice("user_bob", exchange, "request")).toBe(true);
    expect(policies.canAcknowledgeExchangeNotice("user_bob", exchange, "response")).toBe(false);
    expect(policies.canAcknowledgeExchangeNotice("user_alice", exchange, "response")).toBe(true);
  });

  it("when a socket joins a room, then only its own user's", () => {
    expect(policies.canJoinRoom("user_alice", "user_alice")).toBe(true);
    expect(policies.canJoinRoom("user_alice", "user_bob")).toBe(false);
  });

  it("when typing or presence is shared, then typing needs one's own contact, presence mutual contacts and no block", () => {
    expect(policies.arePresencePeers(facts)).toBe(true);
    for (const broken of [{ toHasFrom: false }, { fromBlocksTo: true }, { toBlocksFrom: true }]) {
      expect(policies.arePresencePeers({ ...facts, ...broken })).toBe(false);
      expect(policies.canIndicateTypingTo({ ...facts, ...broken })).toBe(true);
    }
    expect(policies.canIndicateTypingTo({ ...facts, fromHasTo: false })).toBe(false);
  });
});
