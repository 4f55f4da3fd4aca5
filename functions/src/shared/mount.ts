import { Router, type RequestHandler } from "express";
import type { EndpointLimits } from "./endpoint-limits";
import type { Operation, OperationGroup } from "./operations";
import { parseInput } from "./validation";

/** The middleware the app builds once and every group's routes share. */
export interface Gates {
  /** Token and active session (requireAuth), then the per-user limit. */
  session: RequestHandler;
  /** Token only (requireToken), then the per-user limit: the handler checks the session itself. */
  token: RequestHandler;
  limits: EndpointLimits;
}

/**
 * The Express routes of a group of operations, each a chain: authentication, its rate classes,
 * validation of params, query and body (a refusal is the 400 envelope of parseInput), then the handler.
 * A prefix whose every operation needs a session is guarded as a whole, so that an unknown path under it
 * answers a stranger 401, as its siblings do, rather than 404.
 */
export function mountOperations<Deps>(group: OperationGroup<Deps>, deps: Deps, gates: Gates): Router {
  const guardedAsWhole = group.prefix !== "" && group.operations.every((operation) => operation.auth === "session");
  const routes = Router();
  for (const operation of group.operations) {
    const chain: RequestHandler[] = [];
    if (operation.auth !== "public" && !guardedAsWhole) chain.push(gates[operation.auth]);
    for (const limit of operation.limits ?? []) chain.push(gates.limits[limit]);
    routes[operation.method](expressPath(operation.path), ...chain, handlerOf(operation, deps));
  }
  const router = Router();
  if (guardedAsWhole) router.use(group.prefix, gates.session, routes);
  else router.use(group.prefix || "/", routes);
  return router;
}

function handlerOf<Deps>(operation: Operation<Deps>, deps: Deps): RequestHandler {
  return async (req, res) => {
    operation.checkBody?.(req.body);
    const params = operation.params && parseInput(operation.params, req.params, "params");
    const query = operation.query && parseInput(operation.query, req.query, "query");
    const body = operation.body && parseInput(operation.body, req.body);
    const fields = await operation.handle({ params, query, body, req, res }, deps);
    if (fields) res.status(operation.success.status).json({ success: true, ...fields });
  };
}

/** OpenAPI's `{param}` as Express's `:param`. */
const expressPath = (path: string) => path.replace(/\{(\w+)\}/g, ":$1");
