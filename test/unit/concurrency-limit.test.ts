import { describe, expect, it } from "vitest";
import { ConcurrencyLimit } from "../../functions/src/shared/concurrency-limit";

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe("ConcurrencyLimit", () => {
  it("when more tasks than the limit arrive, then at most the limit run at once and the rest start in arrival order", async () => {
    const limit = new ConcurrencyLimit(2);
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const tasks = Array.from({ length: 6 }, (_, index) =>
      limit.run(async () => {
        started.push(index);
        running++;
        most = Math.max(most, running);
        await tick();
        running--;
        return index;
      }),
    );
    expect(await Promise.all(tasks)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(most).toBe(2);
    expect(started).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("when a task fails, then its slot is handed on and the failure reaches only its caller", async () => {
    const limit = new ConcurrencyLimit(1);
    const failing = limit.run(async () => {
      await tick();
      throw new Error("read failed");
    });
    const next = limit.run(async () => "next ran");
    await expect(failing).rejects.toThrow("read failed");
    await expect(next).resolves.toBe("next ran");
    await expect(limit.run(async () => "and the slot is free")).resolves.toBe("and the slot is free");
  });
});
