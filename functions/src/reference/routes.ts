import { Router } from "express";
import { openApiDocument } from "./openapi";

/** GET /openapi.json: public, like the API it describes (mounted under /api). */
export function referenceRoutes(): Router {
  const router = Router();
  router.get("/openapi.json", (_req, res) => {
    res.json(openApiDocument());
  });
  return router;
}
