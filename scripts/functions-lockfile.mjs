// Writes functions/package-lock.json: the functions workspace's production dependencies exactly as the
// root package-lock.json resolves them, i.e. the versions CI tested.
//
// Why: `firebase deploy` uploads functions/ alone, and Cloud Build installs from its package.json; the
// lockfile lives at the workspace root and is not uploaded, so the build could resolve newer versions.
// With functions/package-lock.json present, Cloud Build runs `npm ci` and installs these versions.
//
//   node scripts/functions-lockfile.mjs           write it (the firebase.json predeploy hook runs this)
//   node scripts/functions-lockfile.mjs --check   exit 1 if the committed file is stale (test/deploy-smoke.test.ts)
//   node scripts/functions-lockfile.mjs --verify  also `npm ci --omit=dev` it in a temp folder and compare the
//                                                 installed versions with the root install (needs the registry)
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const WORKSPACE = "functions";
const OUTPUT = join(ROOT, WORKSPACE, "package-lock.json");

/** The lockfile entry a package at `from` gets for `name`, by Node's resolution (walk up node_modules folders). */
function resolveFrom(packages, from, name) {
  let dir = from;
  for (;;) {
    const candidate = `${dir ? `${dir}/` : ""}node_modules/${name}`;
    const entry = packages[candidate];
    if (entry) return entry.link ? { path: entry.resolved, entry: packages[entry.resolved] } : { path: candidate, entry };
    if (!dir) return undefined;
    const parent = dir.lastIndexOf("/node_modules/");
    dir = parent >= 0 ? dir.slice(0, parent) : "";
  }
}

/** What an entry needs installed next to it: its dependencies, optional ones, and non-optional peers. */
function requirements(entry) {
  const optionalPeers = new Set(Object.keys(entry.peerDependenciesMeta ?? {}).filter((name) => entry.peerDependenciesMeta[name].optional));
  return [
    ...Object.keys(entry.dependencies ?? {}).map((name) => ({ name, optional: false })),
    ...Object.keys(entry.optionalDependencies ?? {}).map((name) => ({ name, optional: true })),
    ...Object.keys(entry.peerDependencies ?? {}).filter((name) => !optionalPeers.has(name)).map((name) => ({ name, optional: false })),
  ];
}

/** Strips what only makes sense in the workspace's lockfile (dev/peer flags are recomputed by npm). */
function cleanEntry(entry) {
  const { dev: _dev, devOptional: _devOptional, peer: _peer, link: _link, ...rest } = entry;
  return rest;
}

export function buildFunctionsLockfile(rootLock) {
  const packages = rootLock.packages;
  const manifest = JSON.parse(readFileSync(join(ROOT, WORKSPACE, "package.json"), "utf8"));
  const out = {};
  // Place each needed package as high as it fits (like npm's hoisting), nested under its requester when
  // a different version holds the top-level name. Production dependencies first; what only the
  // devDependencies (types) bring is marked dev, as npm does, so `npm ci` finds the file in sync.
  const place = (roots, dev) => {
  const queue = Object.keys(roots ?? {}).map((name) => ({ name, from: WORKSPACE, placeUnder: "" }));
  while (queue.length > 0) {
    const { name, from, placeUnder, optional } = queue.shift();
    const found = resolveFrom(packages, from, name);
    if (!found) {
      if (optional) continue;
      throw new Error(`${name}, needed by ${from}, is not in package-lock.json: run npm install`);
    }
    const top = `node_modules/${name}`;
    const nested = `${placeUnder ? `${placeUnder}/` : ""}node_modules/${name}`;
    // Visible from the requester already (top level or on its own path, same version): nothing to add.
    const visible = [nested, top].find((path) => out[path]);
    if (visible && out[visible].version === found.entry.version) continue;
    const path = !out[top] ? top : nested;
    if (out[path]) continue;
    out[path] = dev ? { ...cleanEntry(found.entry), dev: true } : cleanEntry(found.entry);
    for (const requirement of requirements(found.entry)) queue.push({ ...requirement, from: found.path, placeUnder: path });
  }
  };
  place(manifest.dependencies, false);
  place(manifest.devDependencies, true);
  const sorted = Object.fromEntries(Object.keys(out).sort().map((path) => [path, out[path]]));
  return {
    name: manifest.name,
    lockfileVersion: 3,
    requires: true,
    packages: {
      "": { name: manifest.name, dependencies: manifest.dependencies, devDependencies: manifest.devDependencies, engines: manifest.engines },
      ...sorted,
    },
  };
}

/** name@version of every production package installed for `dir` (or for the workspace, from the root). */
function installedVersions(dir, workspace) {
  const args = ["ls", "--all", "--omit=dev", "--json", ...(workspace ? ["--workspace", workspace] : [])];
  const tree = JSON.parse(execFileSync("npm", args, { cwd: dir, encoding: "utf8", maxBuffer: 64 * 2 ** 20 }));
  const versions = new Set();
  const walk = (deps) => {
    for (const [name, info] of Object.entries(deps ?? {})) {
      if (!info.version) continue; // an optional peer nobody installed
      versions.add(`${name}@${info.version}`);
      walk(info.dependencies);
    }
  };
  walk(workspace ? tree.dependencies[workspace].dependencies : tree.dependencies);
  return versions;
}

function main() {
  const rootLock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8"));
  const text = JSON.stringify(buildFunctionsLockfile(rootLock), null, 2) + "\n";
  if (process.argv.includes("--check")) {
    const current = readFileSync(OUTPUT, "utf8");
    if (current !== text) {
      console.error("functions/package-lock.json is stale: run `node scripts/functions-lockfile.mjs` and commit it.");
      process.exit(1);
    }
    console.log("functions/package-lock.json matches the root lockfile.");
    return;
  }
  writeFileSync(OUTPUT, text);
  console.log(`wrote ${OUTPUT} (${Object.keys(JSON.parse(text).packages).length - 1} packages)`);
  if (process.argv.includes("--verify")) {
    const dir = mkdtempSync(join(tmpdir(), "functions-deploy-"));
    try {
      cpSync(join(ROOT, WORKSPACE, "package.json"), join(dir, "package.json"));
      cpSync(OUTPUT, join(dir, "package-lock.json"));
      execFileSync("npm", ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"], { cwd: dir, stdio: "inherit" });
      const deployed = installedVersions(dir);
      const tested = installedVersions(ROOT, WORKSPACE);
      const differing = [...deployed].filter((version) => !tested.has(version));
      differing.push(...[...tested].filter((version) => !deployed.has(version)).map((version) => `${version} (missing)`));
      if (differing.length > 0) {
        console.error(`installed for deploy but not what the tests ran with: ${differing.join(", ")}`);
        process.exit(1);
      }
      console.log(`verified: npm ci installs ${deployed.size} packages, each the version the workspace was tested with.`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
