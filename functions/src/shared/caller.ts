import type { Response } from "express";
import { errors } from "./errors";

/**
 * Who is asking: the user and session whose token the auth middleware accepted (auth/middleware.ts).
 * Every capability's routes read it here, so knowing the caller does not make them import auth.
 */
export interface Caller {
  userId: string;
  sessionId: string;
}

export function setCaller(res: Response, who: Caller): void {
  res.locals.auth = who;
}

/** The only source of "who is asking"; a route reached without the auth middleware answers 401. */
export function caller(res: Response): Caller {
  const who = knownCaller(res);
  if (!who) throw errors.unauthorized();
  return who;
}

/** The caller if the request was authenticated, for what runs either way (the request log). */
export function knownCaller(res: Response): Caller | undefined {
  return res.locals.auth as Caller | undefined;
}
