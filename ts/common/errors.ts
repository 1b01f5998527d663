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
  /** A request failed schema validation or is otherwise malformed (HTTP 400). */
  badRequest: 'ERR_DNE_BAD_REQUEST',
  /** A request body is larger than the service accepts (HTTP 413). */
  bodyTooLarge: 'ERR_DNE_BODY_TOO_LARGE',
  /** A request body is not JSON (HTTP 415). */
  unsupportedMediaType: 'ERR_DNE_UNSUPPORTED_MEDIA_TYPE',
  /** The TLS peer presented no usable certificate identity (HTTP 401). */
  unauthenticated: 'ERR_DNE_UNAUTHENTICATED',
  /** The peer's role may not do this (HTTP 403). */
  forbidden: 'ERR_DNE_FORBIDDEN',
  /** A key-access grant is missing, malformed, forged, expired or names someone else (HTTP 403). */
  grantRefused: 'ERR_DNE_GRANT_REFUSED',
  /** A key exists but may not be released: revoked or expired (HTTP 403). */
  keyNotReleasable: 'ERR_DNE_KEY_NOT_RELEASABLE',
  /** A key, policy or route does not exist (HTTP 404). */
  notFound: 'ERR_DNE_NOT_FOUND',
  /** The request conflicts with the current state, e.g. revoking a revoked key (HTTP 409). */
  conflict: 'ERR_DNE_CONFLICT',
  /** This instance's sender-ID range for a key is used up: rotate the key (HTTP 409). */
  senderIdsExhausted: 'ERR_DNE_SENDER_IDS_EXHAUSTED',
  /** Something failed inside the service; details are in its log, not in the response (HTTP 500). */
  internal: 'ERR_DNE_INTERNAL',
  /** A master key file or value is missing, unreadable, badly protected or wrong. */
  masterKey: 'ERR_DNE_MASTER_KEY',
  /** Certificate or key files could not be created, read or verified. */
  pki: 'ERR_DNE_PKI',
  /** A configuration file or flag is invalid. */
  config: 'ERR_DNE_CONFIG',
  /** The key store is unusable (schema, sender-ID range registration, integrity). */
  store: 'ERR_DNE_STORE',
} as const;

export function badArgument(message: string): DneError {
  return new DneError(ErrorCodes.badArgument, message);
}
