import { Router } from "express";
import { caller } from "../auth/middleware";
import { rateLimitHeaders } from "../shared/rate-limit";
import { parseInput } from "../shared/validation";
import { conversationPage } from "./history";
import type { MessageRepository } from "./repository";
import { checkContentSize, historyParamsSchema, historyQuerySchema, sendMessageSchema } from "./schema";
import type { MessageSender } from "./send";

/** Every route here is mounted behind requireAuth. */
export function messageRoutes(sender: MessageSender, messages: MessageRepository): Router {
  const router = Router();

  router.post("/send", async (req, res) => {
    checkContentSize(req.body);
    const input = parseInput(sendMessageSchema, req.body);
    const { record, rateLimit } = await sender.send(caller(res).userId, input);
    res.set(rateLimitHeaders(rateLimit));
    res.status(201).json({
      success: true,
      messageId: record.id,
      timestamp: record.timestamp,
      sequenceNumber: record.sequenceNumber,
      message: record,
    });
  });

  router.get("/:contactId", async (req, res) => {
    const { contactId } = parseInput(historyParamsSchema, req.params, "params");
    const query = parseInput(historyQuerySchema, req.query, "query");
    res.json({ success: true, ...(await conversationPage(messages, caller(res).userId, contactId, query)) });
  });

  return router;
}
