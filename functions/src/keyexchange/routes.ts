import { Router } from "express";
import { caller } from "../shared/caller";
import type { EndpointLimits } from "../shared/endpoint-limits";
import { parseInput } from "../shared/validation";
import { exchangeParamsSchema, initiateSchema, respondSchema } from "./schema";
import type { KeyExchangeService } from "./service";

/** Every route here is mounted behind requireAuth. */
export function keyExchangeRoutes(exchanges: KeyExchangeService, limits: Pick<EndpointLimits, "keyExchange">): Router {
  const router = Router();

  router.post("/initiate", limits.keyExchange, async (req, res) => {
    const input = parseInput(initiateSchema, req.body);
    res.status(201).json({ success: true, ...(await exchanges.initiate(caller(res).userId, input)) });
  });

  router.post("/respond", limits.keyExchange, async (req, res) => {
    const input = parseInput(respondSchema, req.body);
    res.json({ success: true, ...(await exchanges.respond(caller(res).userId, input)) });
  });

  router.get("/pending", async (_req, res) => {
    res.json({ success: true, ...(await exchanges.pending(caller(res).userId)) });
  });

  router.get("/:exchangeId", async (req, res) => {
    const { exchangeId } = parseInput(exchangeParamsSchema, req.params, "params");
    res.json({ success: true, exchange: await exchanges.get(caller(res).userId, exchangeId) });
  });

  return router;
}
