import { join, resolve } from "node:path";
import express, { Router } from "express";

/**
 * The local stack's static pages, served by express.static and nothing else (no build step at run
 * time): web/ holds the two-user demo (/) and the API reference page (/api/docs, which renders
 * /api/openapi.json); /client serves the typed client as built by `npm run build` (client/dist), which
 * the demo imports as ES modules. The Cloud Function never mounts this.
 */
export interface LocalSite {
  webDir: string;
  clientDir: string;
}

// functions/src/local or functions/lib/local: the repository root is three levels up either way.
const REPOSITORY_ROOT = resolve(__dirname, "..", "..", "..");

export const DEFAULT_LOCAL_SITE: LocalSite = {
  webDir: join(REPOSITORY_ROOT, "web"),
  clientDir: join(REPOSITORY_ROOT, "client", "dist"),
};

export function localSiteRoutes(site: LocalSite): Router {
  const router = Router();
  router.get("/api/docs", (_req, res) => res.sendFile(join(site.webDir, "docs.html")));
  router.use("/client", express.static(site.clientDir, { index: false }));
  router.use(express.static(site.webDir));
  return router;
}
