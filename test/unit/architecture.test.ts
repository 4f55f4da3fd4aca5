import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * How the parts of functions/src may depend on each other, read from their import statements (type-only
 * imports count: they couple the parts as much). A part is a top-level folder (`auth/`, `shared/`, …)
 * or a top-level file (`app.ts` is "app"). Entry points start processes and wire everything; nothing
 * imports them, so they are left out.
 */

const SRC = resolve(__dirname, "../../functions/src");
const ENTRY_POINTS = new Set(["index.ts", "server.ts", "relay/standalone.ts"]);
const CAPABILITIES = ["auth", "users", "messages", "keyexchange", "files", "devices", "relay", "transparency"] as const;
/** Below every capability: they use none. */
const PLUMBING = ["shared", "config", "local", "telemetry"];

/**
 * What each capability may import besides plumbing. Users are the base; auth registers and presents
 * them; the others check the caller and blocks; the relay carries every capability's events to sockets.
 * Capabilities that need something from above (publishing to the relay, reading presence) depend on a
 * port: shared/user-events.ts, users/presence.ts.
 */
const CAPABILITY_EDGES: Record<(typeof CAPABILITIES)[number], string[]> = {
  users: [],
  // The key-transparency log stands alone: auth queues bindings into it, the relay runs its sequencer.
  transparency: [],
  auth: ["users", "transparency"],
  files: ["auth", "users"],
  messages: ["auth", "users"],
  keyexchange: ["auth", "users"],
  // Devices are sessions (auth); linking verifies signatures as key exchange does (its signatures.ts).
  devices: ["auth", "users", "keyexchange"],
  relay: ["auth", "users", "messages", "keyexchange", "devices", "transparency"],
};

/** One import between two parts, with the files that make it (for the failure message). */
interface Edge {
  from: string;
  to: string;
  evidence: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** `import … from "x"`, `export … from "x"`, `import "x"` and `import("x")` (inline type imports). */
const SPECIFIERS = [/\b(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']/g, /\bimport\s*["']([^"']+)["']/g, /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g];

function relativeImports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const found = SPECIFIERS.flatMap((pattern) => [...text.matchAll(pattern)].map((match) => match[1]!));
  return found.filter((specifier) => specifier.startsWith("."));
}

const pathOf = (file: string) => relative(SRC, file).split(sep).join("/");
const partOf = (path: string) => (path.includes("/") ? path.split("/")[0]! : path.replace(/\.ts$/, ""));

function importEdges(): Edge[] {
  const edges: Edge[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = pathOf(file);
    if (ENTRY_POINTS.has(from)) continue;
    for (const specifier of relativeImports(file)) {
      const to = pathOf(resolve(dirname(file), specifier)) + ".ts";
      if (partOf(from) !== partOf(to)) edges.push({ from: partOf(from), to: partOf(to), evidence: `${from} imports ${to}` });
    }
  }
  return edges;
}

/** Every elementary cycle, each once (rooted at its smallest part), as its list of parts. */
function cyclesOf(edges: Edge[]): string[][] {
  const next = new Map<string, Set<string>>();
  for (const { from, to } of edges) next.set(from, (next.get(from) ?? new Set()).add(to));
  const parts = [...new Set(edges.flatMap(({ from, to }) => [from, to]))].sort();
  const cycles: string[][] = [];
  for (const start of parts) {
    const walk = (path: string[]) => {
      for (const to of next.get(path[path.length - 1]!) ?? []) {
        if (to === start) cycles.push([...path, start]);
        else if (to > start && !path.includes(to)) walk([...path, to]);
      }
    };
    walk([start]);
  }
  return cycles;
}

function describeCycle(cycle: string[], edges: Edge[]): string {
  const steps = cycle.slice(1).map((to, index) => edges.find((edge) => edge.from === cycle[index] && edge.to === to)!.evidence);
  return `${cycle.join(" -> ")} (${steps.join("; ")})`;
}

describe("import structure of functions/src", () => {
  const edges = importEdges();

  it("when the parts import each other, then no cycle runs between them", () => {
    expect(edges.length).toBeGreaterThan(0); // the reading of imports works at all
    expect(cyclesOf(edges).map((cycle) => describeCycle(cycle, edges))).toEqual([]);
  });

  it("when a capability imports another, then only along an allowed edge", () => {
    const capabilities: readonly string[] = CAPABILITIES;
    const refused = edges.filter(
      ({ from, to }) =>
        capabilities.includes(from) && capabilities.includes(to) && !CAPABILITY_EDGES[from as keyof typeof CAPABILITY_EDGES].includes(to),
    );
    expect(refused.map((edge) => edge.evidence)).toEqual([]);
  });

  it("when plumbing imports, then never a capability or what is built from them", () => {
    const refused = edges.filter(({ from, to }) => PLUMBING.includes(from) && !PLUMBING.includes(to));
    expect(refused.map((edge) => edge.evidence)).toEqual([]);
  });
});
