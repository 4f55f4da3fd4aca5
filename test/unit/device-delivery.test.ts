import { describe, expect, it } from "vitest";
import { audienceOfPending, backlogKeysOf, isPendingFor, pendingDevicesFor, UNCLAIMED } from "../../functions/src/shared/device-delivery";
import { isInAudience } from "../../functions/src/shared/user-events";

const phone = "dev_phonephonephonephonephone";
const laptop = "dev_laptoplaptoplaptoplaptop";

describe("per-device delivery rules", () => {
  it("when the receiver has devices, then a new message is pending for exactly those; with none, it is unclaimed", () => {
    expect(pendingDevicesFor([phone, laptop])).toEqual([phone, laptop]);
    expect(pendingDevicesFor([])).toEqual([UNCLAIMED]);
    expect(pendingDevicesFor(undefined)).toEqual([UNCLAIMED]);
  });

  it("when a device is listed or the message is unclaimed, then it is pending for that device; otherwise (or on a message from before devices) not", () => {
    expect(isPendingFor([phone, laptop], laptop)).toBe(true);
    expect(isPendingFor([phone], laptop)).toBe(false);
    expect(isPendingFor([UNCLAIMED], laptop)).toBe(true);
    expect(isPendingFor([], laptop)).toBe(false);
    expect(isPendingFor(undefined, laptop)).toBe(false);
  });

  it("when a device reads its backlog, then it looks for its own id and for unclaimed messages", () => {
    expect(backlogKeysOf(phone)).toEqual([phone, UNCLAIMED]);
  });

  it("when a message is routed, then only the pending devices' sockets are in its audience, every socket when unclaimed", () => {
    const audience = audienceOfPending([phone]);
    expect(isInAudience(phone, audience)).toBe(true);
    expect(isInAudience(laptop, audience)).toBe(false);
    expect(audienceOfPending([UNCLAIMED])).toBeUndefined();
    expect(isInAudience(laptop, audienceOfPending([UNCLAIMED]))).toBe(true);
    expect(isInAudience(laptop, audienceOfPending([]))).toBe(false);
  });
});
