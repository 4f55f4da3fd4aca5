import { z } from "zod";
import { operationOf, type OperationGroup } from "../shared/operations";

interface ReferenceDeps {
  /** The OpenAPI document (openapi.ts), passed in: it is built from these operations too. */
  document: () => object;
}

const operation = operationOf<ReferenceDeps>();

/** GET /openapi.json: public, like the API it describes. */
export const referenceOperations: OperationGroup<ReferenceDeps> = {
  prefix: "",
  tag: "Reference",
  operations: [
    operation({
      operationId: "getOpenApiDocument",
      method: "get",
      path: "/openapi.json",
      summary: "This OpenAPI document",
      description: "Generated from the zod schemas the routes validate with. The socket events are in `x-socket-events`.",
      auth: "public",
      success: { status: 200, description: "The OpenAPI 3.1 document", schema: z.record(z.string(), z.unknown()) },
      errors: [],
      handle: async ({ res }, { document }) => {
        res.json(document()); // the document itself, not an envelope
      },
    }),
  ],
};
