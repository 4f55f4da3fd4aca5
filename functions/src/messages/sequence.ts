import { AppError } from "../shared/errors";

/**
 * The largest sequenceNumber a client may choose. Far below 2^53, where adding 1 to a float no longer
 * changes it: a pair pushed there could never send again.
 */
export const MAX_SEQUENCE_NUMBER = 2 ** 31 - 1;

/** How far past the pair's last number a client may jump in one send, so no send can use up the range. */
export const MAX_SEQUENCE_JUMP = 1000;

function outOfBounds(lastSequence: number, why: string): AppError {
  return new AppError("VALIDATION_ERROR", `sequenceNumber must be ${why}`, {
    field: "sequenceNumber",
    lastSequenceNumber: lastSequence,
  });
}

/**
 * The number a new message of the pair gets: the client's, when it is within bounds and greater than
 * the pair's last (it is stored as sent: the client may have signed it); absent, last + 1. A number
 * out of bounds is answered with its refusal.
 */
export function sequenceNumberFor(requested: number | undefined, lastSequence: number): number | AppError {
  if (requested === undefined) return lastSequence + 1;
  if (!Number.isInteger(requested) || requested < 1 || requested > MAX_SEQUENCE_NUMBER) {
    return outOfBounds(lastSequence, `an integer from 1 to ${MAX_SEQUENCE_NUMBER}`);
  }
  if (requested <= lastSequence) {
    return new AppError(
      "REPLAY_DETECTED",
      `sequenceNumber must be greater than ${lastSequence}, the last one stored for this conversation`,
      { field: "sequenceNumber", lastSequenceNumber: lastSequence },
    );
  }
  if (requested > lastSequence + MAX_SEQUENCE_JUMP) {
    return outOfBounds(lastSequence, `at most ${MAX_SEQUENCE_JUMP} greater than ${lastSequence}, the last one stored for this conversation`);
  }
  return requested;
}
