/**
 * Errors with a stable code, declared once. Messages are precise about what
 * was wrong and never carry secret values (keys, salts, grants).
 */
export class DneError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'DneError';
  }
}

export const ErrorCodes = {
  /** A caller passed an argument of the wrong type or out of range. */
  badArgument: 'ERR_DNE_BAD_ARGUMENT',
  /** The native addon refused an SA or sender configuration. */
  badConfig: 'ERR_DNE_BAD_CONFIG',
  /** The native addon could not be loaded or failed its self-check. */
  native: 'ERR_DNE_NATIVE',
} as const;

export function badArgument(message: string): DneError {
  return new DneError(ErrorCodes.badArgument, message);
}
