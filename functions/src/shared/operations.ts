import type { Request, Response } from "express";
import type { z } from "zod";
import type { EndpointLimits } from "./endpoint-limits";
import type { ErrorCode } from "./errors";

/**
 * An HTTP operation, declared once, as data beside its handler. The mount step (shared/mount.ts) builds
 * its Express route from it (authentication, limits, validation, handler); reference/openapi.ts builds
 * its entry in the OpenAPI document from the same object. Paths use OpenAPI's `{param}` placeholders.
 */

type ZodObject = z.ZodObject<z.ZodRawShape>;

/**
 * Who may call: anyone; a caller whose token is valid and whose session is active (read before the
 * handler); or a caller whose token is valid, the session being checked by the handler itself inside
 * its own transaction (one round trip fewer on the hottest path).
 */
export type Access = "public" | "session" | "token";

/** The endpoint rate classes (README "Rate limits") a route applies after authentication, in order. */
export type LimitClass = Exclude<keyof EndpointLimits, "perAddress" | "perUser">;

export interface SuccessResponse {
  status: 200 | 201;
  description: string;
  /** The JSON body; absent for a binary download. */
  schema?: z.ZodType;
  /** A binary body (application/octet-stream). */
  binary?: true;
  headers?: Record<string, string>;
}

/** The `RateLimit-*` headers an answer carries when its operation takes from a rate it reports. */
export const RATE_LIMIT_HEADERS = {
  "RateLimit-Limit": "Requests allowed in the window",
  "RateLimit-Remaining": "Requests left in the window",
  "RateLimit-Reset": "Seconds until the window resets",
};

type Parsed<Schema> = Schema extends z.ZodType ? z.output<Schema> : undefined;

/** What a handler gets: the parsed input, and the request and response for what the schemas do not carry. */
export interface OperationInput<Params, Query, Body> {
  params: Parsed<Params>;
  query: Parsed<Query>;
  body: Parsed<Body>;
  req: Request;
  res: Response;
}

/**
 * The fields answered beside `success: true` with the operation's success status, or nothing when the
 * handler wrote the answer itself (a stream, a second success status, a body that is not an envelope).
 */
export type HandlerResult = Promise<object | void>;

export interface OperationSpec<Deps, Params, Query, Body> {
  /** Stable: the typed client's method for this operation is named after it. */
  operationId: string;
  method: "get" | "post" | "delete";
  /** Relative to the group's prefix. */
  path: string;
  summary: string;
  description?: string;
  auth: Access;
  limits?: LimitClass[];
  params?: Params;
  query?: Query;
  /** A JSON request body. */
  body?: Body;
  /** A check on the raw body before its schema, for a refusal that is not a 400 (a size that answers 413). */
  checkBody?: (body: unknown) => void;
  /**
   * A multipart/form-data body, for the document only: its handler reads the stream itself, text parts
   * validated by `fields`, plus one binary part.
   */
  multipart?: { fields: ZodObject; filePart: string; fileDescription: string };
  success: SuccessResponse;
  /** Another success the operation may answer with instead: a JSON body under its own component name. */
  alsoSucceeds?: SuccessResponse & { schema: z.ZodType; component: string };
  /** The errors specific to this operation; the generic ones (auth, input, rate) are added by reference/openapi.ts. */
  errors: ErrorCode[];
  /** An error answer that is more than the plain envelope, by HTTP status. */
  errorBodies?: Record<number, z.ZodType>;
  handle(input: OperationInput<Params, Query, Body>, deps: Deps): HandlerResult;
}

/** An operation with its input types erased, as the mount step and the document generator see it. */
export type Operation<Deps = never> = OperationSpec<Deps, ZodObject | undefined, ZodObject | undefined, z.ZodType | undefined>;

/** One capability's operations, under one path prefix and one tag of the document. */
export interface OperationGroup<Deps> {
  /** Under /api; "" for operations at its root. */
  prefix: string;
  /** The document's tag (reference/openapi.ts describes each). */
  tag: string;
  /** In the order Express matches them: a fixed path before a `{param}` one that would also match it. */
  operations: Array<Operation<Deps>>;
}

/** Declares one of a capability's operations; the handler's input types come from the schemas. */
export function operationOf<Deps>() {
  return <Params extends ZodObject | undefined = undefined, Query extends ZodObject | undefined = undefined, Body extends z.ZodType | undefined = undefined>(
    spec: OperationSpec<Deps, Params, Query, Body>,
  ): Operation<Deps> => spec as unknown as Operation<Deps>;
}
