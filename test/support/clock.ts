import type { Clock } from "../../functions/src/shared/clock";

/** Real time plus an offset the test moves forward (no timers are faked). Apart from app.ts so unit tests load it alone. */
export class TestClock implements Clock {
  private offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}
