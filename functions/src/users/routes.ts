import { Router } from "express";
import { caller } from "../shared/caller";
import type { EndpointLimits } from "../shared/endpoint-limits";
import { parseInput } from "../shared/validation";
import { addContactSchema, blockParamsSchema, blockSchema, contactParamsSchema, contactsQuerySchema, searchQuerySchema } from "./schema";
import type { UserService } from "./service";

/** Every route here is mounted behind requireAuth. */
export function userRoutes(users: UserService, limits: Pick<EndpointLimits, "search" | "contactReads" | "contactWrites">): Router {
  const router = Router();

  router.get("/profile", async (_req, res) => {
    res.json({ success: true, user: await users.profile(caller(res).userId) });
  });

  router.get("/contacts", limits.contactReads, async (req, res) => {
    const page = parseInput(contactsQuerySchema, req.query, "query");
    res.json({ success: true, ...(await users.contactsPage(caller(res).userId, page)) });
  });

  router.post("/add-contact", limits.contactWrites, async (req, res) => {
    const { username } = parseInput(addContactSchema, req.body);
    res.status(201).json({ success: true, contact: await users.addContact(caller(res).userId, username) });
  });

  router.delete("/contacts/:contactId", limits.contactWrites, async (req, res) => {
    const { contactId } = parseInput(contactParamsSchema, req.params, "params");
    await users.removeContact(caller(res).userId, contactId);
    res.json({ success: true, message: "Contact removed" });
  });

  router.get("/search", limits.search, async (req, res) => {
    const { q, limit } = parseInput(searchQuerySchema, req.query, "query");
    res.json({ success: true, users: await users.search(caller(res).userId, q, limit) });
  });

  // Blocking and unblocking count against the contact-writes limit: both change who reaches whom.
  router.post("/block", limits.contactWrites, async (req, res) => {
    const { userId } = parseInput(blockSchema, req.body);
    await users.block(caller(res).userId, userId);
    res.json({ success: true });
  });

  router.delete("/block/:userId", limits.contactWrites, async (req, res) => {
    const { userId } = parseInput(blockParamsSchema, req.params, "params");
    await users.unblock(caller(res).userId, userId);
    res.json({ success: true });
  });

  router.get("/blocked", async (_req, res) => {
    res.json({ success: true, users: await users.blocked(caller(res).userId) });
  });

  return router;
}
