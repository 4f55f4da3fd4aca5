import { isIPv4, isIPv6 } from "node:net";

/**
 * The part of a client address that names its rate-limit bucket. An IPv4 address is one bucket of its
 * own; an IPv6 client usually holds a whole /64 (a home or a cloud VM gets one, and picks any address
 * in it), so every IPv6 address counts against its /64 and rotating within it buys nothing. An
 * IPv4-mapped IPv6 address (::ffff:1.2.3.4, as a dual-stack socket reports an IPv4 peer) is its IPv4
 * address. Anything else (no address at all) is kept as it is.
 */
export function addressBucket(address: string): string {
  const withoutZone = address.split("%")[0]!;
  if (!isIPv6(withoutZone)) return address;
  const groups = ipv6Groups(withoutZone);
  const mappedIPv4 = groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff;
  if (mappedIPv4) return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join(".");
  return `${groups
    .slice(0, 4)
    .map((group) => group.toString(16))
    .join(":")}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address ("::" expanded, a trailing dotted IPv4 converted). */
function ipv6Groups(address: string): number[] {
  const [head = "", tail] = address.split("::");
  const parse = (part: string): number[] =>
    part === ""
      ? []
      : part.split(":").flatMap((piece) => {
          if (!isIPv4(piece)) return [parseInt(piece, 16)];
          const [a, b, c, d] = piece.split(".").map(Number) as [number, number, number, number];
          return [(a << 8) | b, (c << 8) | d];
        });
  const front = parse(head);
  const back = tail === undefined ? [] : parse(tail);
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
}
