import { operations, type ErrorBody, type OperationId, type Operations, type OperationSpec } from "./generated.js";
import { verifyUserKey, type VerifiedUserKey, type VerifyUserKeyOptions } from "./transparency.js";

/**
 * The REST half of the typed client: one method per operation of the OpenAPI document, named by its
 * operationId, with the argument and answer types generated from it (generated.ts). Path parameters come
 * first, then the body or the query. Non-2xx answers throw ApiError with the envelope's code.
 */

export type ErrorCode = ErrorBody["code"];

export class ApiError extends Error {
  override name = "ApiError";

  constructor(
    /** The HTTP status (0 when the answer came over the socket). */
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    /** From `Retry-After`, on 429 RATE_LIMITED. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }

  /** `details.field`: the offending field of a validation error. */
  get field(): string | undefined {
    return typeof this.details?.field === "string" ? this.details.field : undefined;
  }
}

export interface ApiClientOptions {
  /** The API's base URL: `http://localhost:3000/api` (VITE_API_BASE_URL), or `/api` in a page the server serves. */
  baseUrl: string;
  /** The access token sent as `Authorization: Bearer <token>` on operations that need it. */
  token?: string;
  /** Defaults to the global fetch (browsers, Node 18+). */
  fetch?: typeof fetch;
}

export type ApiMethods = { [Id in OperationId]: (...args: Operations[Id]["args"]) => Promise<Operations[Id]["response"]> };

export type ApiClient = ApiMethods & {
  readonly baseUrl: string;
  readonly token: string | undefined;
  /** The same client, authenticated as someone (e.g. with the token register or login returned). */
  withToken(token: string | undefined): ApiClient;
  /**
   * Checks the key the API served for a user against the key-transparency log (transparency.ts):
   * the head's signature, every binding's inclusion, the served key being the newest, and consistency
   * from `trustedHead`. Throws KeyTransparencyError naming what failed. Needs a token.
   */
  verifyUserKey(userId: string, options: VerifyUserKeyOptions): Promise<VerifiedUserKey>;
};

interface CallInput {
  pathParams: string[];
  body?: unknown;
  query?: Record<string, unknown>;
}

/** Splits a method's positional arguments into path parameters, then the body or the query. */
function inputOf(spec: OperationSpec, args: unknown[]): CallInput {
  const pathParams = args.slice(0, spec.pathParams.length).map(String);
  const rest = args[spec.pathParams.length];
  if (spec.body) return { pathParams, body: rest };
  if (spec.query) return { pathParams, query: (rest ?? {}) as Record<string, unknown> };
  return { pathParams };
}

function urlOf(baseUrl: string, spec: OperationSpec, input: CallInput): string {
  let path = spec.path;
  spec.pathParams.forEach((name, index) => {
    path = path.replace(`{${name}}`, encodeURIComponent(input.pathParams[index] ?? ""));
  });
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(input.query ?? {})) {
    if (value !== undefined && value !== null) search.set(name, String(value));
  }
  const query = search.toString();
  return `${baseUrl.replace(/\/+$/, "")}${path}${query ? `?${query}` : ""}`;
}

/** A multipart body from an object: Blobs become file parts, everything else text parts. */
function formOf(body: unknown): FormData {
  const form = new FormData();
  for (const [name, value] of Object.entries(body as Record<string, unknown>)) {
    if (value instanceof Blob) form.append(name, value, "encrypted");
    else if (value !== undefined) form.append(name, String(value));
  }
  return form;
}

async function errorOf(response: Response): Promise<ApiError> {
  const retryAfter = Number(response.headers.get("Retry-After") ?? NaN);
  const text = await response.text();
  let envelope: { error?: Partial<ErrorBody> } | undefined;
  try {
    envelope = JSON.parse(text) as { error?: Partial<ErrorBody> };
  } catch {
    // not the envelope (a proxy's error page): reported below with the status
  }
  const error = envelope?.error;
  return new ApiError(
    response.status,
    (error?.code ?? "INTERNAL_ERROR") as ErrorCode,
    error?.message ?? `HTTP ${response.status}`,
    error?.details,
    Number.isFinite(retryAfter) ? retryAfter : undefined,
  );
}

export function createApiClient(options: ApiClientOptions): ApiClient {
  const fetchImpl = options.fetch ?? ((...args: Parameters<typeof fetch>) => globalThis.fetch(...args));

  async function call(id: OperationId, args: unknown[]): Promise<unknown> {
    const spec: OperationSpec = operations[id];
    const input = inputOf(spec, args);
    const headers: Record<string, string> = {};
    let body: string | FormData | undefined;
    if (spec.body === "json") {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(input.body);
    } else if (spec.body === "multipart") {
      body = formOf(input.body); // fetch sets the multipart Content-Type with its boundary
    }
    if (spec.auth && options.token) headers.Authorization = `Bearer ${options.token}`;

    const response = await fetchImpl(urlOf(options.baseUrl, spec, input), { method: spec.method, headers, body });
    if (!response.ok) throw await errorOf(response);
    if (spec.binary) return new Uint8Array(await response.arrayBuffer());
    return response.json();
  }

  const methods = Object.fromEntries(
    (Object.keys(operations) as OperationId[]).map((id) => [id, (...args: unknown[]) => call(id, args)]),
  ) as ApiMethods;

  return {
    ...methods,
    baseUrl: options.baseUrl,
    token: options.token,
    withToken: (token) => createApiClient({ ...options, token }),
    verifyUserKey: (userId, verifyOptions) => verifyUserKey(methods, userId, verifyOptions),
  };
}
