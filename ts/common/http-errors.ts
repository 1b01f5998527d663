/**
 * HTTP face of DneError: every service error code is declared once here with
 * its status, so a route throws `httpError('notFound', ...)` and the error
 * handler never guesses. 4xx responses carry the precise message; 5xx carry a
 * generic one and the cause goes to the log (fastify `lib/errors.js` style).
 */
import { DneError, ErrorCodes } from './errors';

export type ErrorName = keyof typeof ErrorCodes;

/** HTTP status per error code. Codes without an entry are internal (500). */
export const HTTP_STATUS: Readonly<Partial<Record<ErrorName, number>>> = {
  badArgument: 400,
  badRequest: 400,
  unauthenticated: 401,
  forbidden: 403,
  grantRefused: 403,
  keyNotReleasable: 403,
  notFound: 404,
  conflict: 409,
  senderIdsExhausted: 409,
  bodyTooLarge: 413,
  unsupportedMediaType: 415,
  internal: 500,
};

const statusByCode = new Map<string, number>(
  Object.entries(HTTP_STATUS).map(([name, status]) => [ErrorCodes[name as ErrorName], status as number]),
);

/** A DneError that a service reports to its client with an HTTP status. */
export class HttpError extends DneError {
  readonly statusCode: number;
  constructor(
    code: string,
    message: string,
    readonly detail?: Record<string, unknown>,
  ) {
    super(code, message);
    this.name = 'HttpError';
    this.statusCode = statusByCode.get(code) ?? 500;
  }
}

export function httpError(name: ErrorName, message: string, detail?: Record<string, unknown>): HttpError {
  return new HttpError(ErrorCodes[name], message, detail);
}

/** The status an error is reported with: declared codes keep theirs, anything else is 500. */
export function statusOf(err: unknown): number {
  if (err instanceof HttpError) return err.statusCode;
  if (err instanceof DneError) return statusByCode.get(err.code) ?? 500;
  return 500;
}

/** The JSON body every dne service sends for an error. */
export interface ErrorBody {
  statusCode: number;
  code: string;
  error: string;
  message: string;
}

const REASON: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
};

export function errorBody(statusCode: number, code: string, message: string): ErrorBody {
  return { statusCode, code, error: REASON[statusCode] ?? 'Error', message };
}
