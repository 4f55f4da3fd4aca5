import { describe, expect, it } from "vitest";
import { defaultDeviceName } from "../../functions/src/auth/device-name";
import { deviceIdOf, isIdOf, newId, sessionIdOfDevice } from "../../functions/src/shared/ids";
import { isInAudience } from "../../functions/src/shared/user-events";

describe("devices: ids, default names, audiences", () => {
  it("when a session is minted, then its device id is the same suffix under dev_, and back", () => {
    const sessionId = newId("sess");
    const deviceId = deviceIdOf(sessionId);
    expect(isIdOf("dev", deviceId)).toBe(true);
    expect(deviceId.slice(4)).toBe(sessionId.slice(5));
    expect(sessionIdOfDevice(deviceId)).toBe(sessionId);
  });

  it("when a device id is malformed or another kind of id, then it names no session", () => {
    for (const bad of ["dev_short", newId("sess"), newId("user"), "dev_../../x_________________", ""]) {
      expect(sessionIdOfDevice(bad)).toBeUndefined();
    }
  });

  it("when a login names no device, then the name comes from the User-Agent, coarsely", () => {
    const chromeMac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";
    const safariIphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
    const firefoxLinux = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
    const edgeWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36 Edg/131.0";
    expect([chromeMac, safariIphone, firefoxLinux, edgeWindows].map(defaultDeviceName)).toEqual([
      "Chrome on macOS",
      "Safari on iOS",
      "Firefox on Linux",
      "Edge on Windows",
    ]);
    expect(defaultDeviceName("curl/8.5.0")).toBe("curl");
    expect(defaultDeviceName(undefined)).toBe("Unknown device");
    expect(defaultDeviceName("")).toBe("Unknown device");
  });

  it("when an event names an audience, then only those devices are in it", () => {
    expect(isInAudience("dev_a", undefined)).toBe(true);
    expect(isInAudience("dev_a", { onlyDevice: "dev_a" })).toBe(true);
    expect(isInAudience("dev_b", { onlyDevice: "dev_a" })).toBe(false);
    expect(isInAudience("dev_a", { exceptDevice: "dev_a" })).toBe(false);
    expect(isInAudience("dev_b", { exceptDevice: "dev_a" })).toBe(true);
  });
});
