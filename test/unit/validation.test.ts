import { describe, expect, it } from "vitest";
import { loginSchema } from "../../functions/src/auth/schema";
import { AppError } from "../../functions/src/shared/errors";
import { parseInput } from "../../functions/src/shared/validation";

describe("parseInput", () => {
  it("when a string field is an object whose length is an object, then it is a 400, not a TypeError (zod checks lengths past the type error)", () => {
    const spoiled = { email: { length: { toString: false } }, password: "correct horse battery staple" };
    let thrown: unknown;
    try {
      parseInput(loginSchema, spoiled);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(AppError);
    expect((thrown as AppError).code).toBe("VALIDATION_ERROR");
    expect((thrown as AppError).status).toBe(400);
  });
});
