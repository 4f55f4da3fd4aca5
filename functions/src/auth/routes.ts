import { Router, type RequestHandler } from "express";
import type { EndpointLimits } from "../shared/endpoint-limits";
import { requestContext } from "../shared/http";
import { parseInput } from "../shared/validation";
import { caller } from "../shared/caller";
import { changePasswordSchema, loginSchema, refreshSchema, registerSchema } from "./schema";
import type { AuthService } from "./service";

export function authRoutes(auth: AuthService, requireAuth: RequestHandler, limits: Pick<EndpointLimits, "register" | "registerGlobal" | "refresh">): Router {
  const router = Router();

  router.post("/register", limits.register, limits.registerGlobal, async (req, res) => {
    const result = await auth.register(parseInput(registerSchema, req.body));
    res.status(201).json({ success: true, ...result });
  });

  router.post("/login", async (req, res) => {
    const result = await auth.login(parseInput(loginSchema, req.body), requestContext(req).ip);
    res.json({ success: true, ...result });
  });

  router.post("/refresh", limits.refresh, async (req, res) => {
    const result = await auth.refresh(parseInput(refreshSchema, req.body));
    res.json({ success: true, ...result });
  });

  router.post("/logout", requireAuth, async (_req, res) => {
    const { sessionId, userId } = caller(res);
    await auth.logout(sessionId, userId);
    res.json({ success: true, message: "Logged out successfully" });
  });

  router.post("/logout-all", requireAuth, async (_req, res) => {
    const revokedSessions = await auth.logoutAll(caller(res).userId);
    res.json({ success: true, revokedSessions });
  });

  router.post("/change-password", requireAuth, async (req, res) => {
    await auth.changePassword(caller(res), parseInput(changePasswordSchema, req.body), requestContext(req).ip);
    res.json({ success: true });
  });

  return router;
}
