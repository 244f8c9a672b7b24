// The error classes of docs/proof-format.md section 6 and docs/journal-format.md sections 7 and 9.
//
// A failure carries its class (ProofError, DecodeError, ChainError, PackageError), the step
// prefix its message starts with ("decode: ", "block certificate: ", ...), and for the
// journal the reason code and the position of the first bad entry.

export class VerifyError extends Error {
  constructor(cls, message, { reason, seq } = {}) {
    super(message);
    this.cls = cls;
    this.prefix = '';
    this.reason = reason;
    this.seq = seq;
  }
}

export const decodeError = (message) => new VerifyError('DecodeError', message);
export const proofError = (message) => new VerifyError('ProofError', message);
export const chainError = (seq, reason, detail) =>
  new VerifyError('ChainError', `entry ${seq}: ${reason}: ${detail}`, { reason, seq });
export const packageError = (reason, detail) =>
  new VerifyError('PackageError', `${reason}: ${detail}`, { reason });

/** Run one verification step: a failure inside it gets the step's prefix in front of its message. */
export function step(prefix, run) {
  try {
    return run();
  } catch (error) {
    if (error instanceof VerifyError) {
      error.message = `${prefix}: ${error.message}`;
      error.prefix = `${prefix}: ${error.prefix}`;
    }
    throw error;
  }
}
