import type { RequestHandler } from "express";
import type { Firestore } from "firebase-admin/firestore";
import type { AppConfig } from "../config";
import type { Clock } from "./clock";
import { byCaller, byClientAddress, FirestoreRateLimiter, MemoryRateLimiter, rateLimit, sharedCeiling } from "./rate-limit";

/**
 * The rate limit middleware of each HTTP endpoint class (README "Rate limits"), built once per app.
 * Where abuse would matter (creating accounts, per address and all together, guessing refresh tokens, scraping the user directory,
 * probing usernames, spamming key exchanges) the buckets live in Firestore, so the limit holds however
 * many instances serve the API. The ceilings on every request only have to keep one instance from being
 * flooded, so they stay in the process and cost no Firestore round trip.
 * Login, send and upload are limited inside their flows (auth/service.ts, messages/repository.ts,
 * files/service.ts).
 */
export function createEndpointLimits(policies: AppConfig["rateLimits"], db: Firestore, clock: Clock) {
  const shared = new FirestoreRateLimiter(db, clock);
  const local = new MemoryRateLimiter(clock);
  return named({
    /** Every /api request, per client address. */
    perAddress: rateLimit(local, policies.apiPerIp, byClientAddress("api")),
    /** Every authenticated request, per user: mount right behind requireAuth. */
    perUser: rateLimit(local, policies.apiPerUser, byCaller("api")),
    register: rateLimit(shared, policies.register, byClientAddress("register")),
    /**
     * One ceiling on registrations from every address together, mounted behind `register`, so rotating
     * addresses cannot mint accounts without end; an attempt the address's bucket refused takes nothing
     * from it.
     */
    registerGlobal: sharedCeiling(shared, policies.registerGlobal, "register:global"),
    refresh: rateLimit(shared, policies.refresh, byClientAddress("refresh")),
    search: rateLimit(shared, policies.search, byCaller("search")),
    /** Listing contacts: a page of up to 1000 costs about 2,000 reads, so it is counted on every instance. */
    contactReads: rateLimit(shared, policies.contactReads, byCaller("contacts.read")),
    /** Adding and removing contacts (adding one also tells whether a username exists). */
    contactWrites: rateLimit(shared, policies.contactWrites, byCaller("contacts")),
    /** Initiating and responding to key exchanges. */
    keyExchange: rateLimit(shared, policies.keyExchange, byCaller("keyexchange")),
  });
}

/** Each limit, when it refuses, leaves its class's name for the 429 count by class (telemetry/http.ts). */
function named<Limits extends Record<string, RequestHandler>>(limits: Limits): Limits {
  const entries = Object.entries(limits).map(([name, limit]): [string, RequestHandler] => [
    name,
    async (req, res, next) => {
      try {
        await limit(req, res, next);
      } catch (error) {
        res.locals.rateLimitClass = name;
        throw error;
      }
    },
  ]);
  return Object.fromEntries(entries) as Limits;
}

export type EndpointLimits = ReturnType<typeof createEndpointLimits>;
