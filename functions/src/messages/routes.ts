import { Router, type RequestHandler } from "express";
import type { SessionStore } from "../auth/sessions";
import { caller } from "../shared/caller";
import { rateLimitHeaders } from "../shared/rate-limit";
import { parseInput } from "../shared/validation";
import { conversationPage } from "./history";
import type { MessageRepository } from "./repository";
import { checkContentSize, historyParamsSchema, historyQuerySchema, sendMessageSchema } from "./schema";
import type { MessageSender } from "./send";

export interface MessageRouteAuth {
  /** Token and session checked before the handler (requireAuth). */
  authenticated: RequestHandler;
  /** Token checked before the handler; the session is checked in the storing transaction. */
  tokenChecked: RequestHandler;
  sessions: SessionStore;
}

export function messageRoutes(sender: MessageSender, messages: MessageRepository, auth: MessageRouteAuth): Router {
  const router = Router();

  // The session is read in the same transaction that stores the message: one round trip fewer on the
  // hottest path, and a message is never stored for a session that has ended.
  router.post("/send", auth.tokenChecked, async (req, res) => {
    checkContentSize(req.body);
    const input = parseInput(sendMessageSchema, req.body);
    const { userId, sessionId } = caller(res);
    const { record, rateLimit, duplicate } = await sender.send(userId, input, auth.sessions.guard(sessionId, userId));
    // A retry took no token from the pair's bucket, so it has no rate to report.
    if (rateLimit) res.set(rateLimitHeaders(rateLimit));
    res.status(duplicate ? 200 : 201).json({
      success: true,
      messageId: record.id,
      timestamp: record.timestamp,
      sequenceNumber: record.sequenceNumber,
      message: record,
      ...(duplicate ? { duplicate: true } : {}),
    });
  });

  router.get("/:contactId", auth.authenticated, async (req, res) => {
    const { contactId } = parseInput(historyParamsSchema, req.params, "params");
    const query = parseInput(historyQuerySchema, req.query, "query");
    res.json({ success: true, ...(await conversationPage(messages, caller(res).userId, contactId, query)) });
  });

  return router;
}
