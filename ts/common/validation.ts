/**
 * Precise 400 messages from Ajv errors: "body/algorithm must be one of
 * AES_GCM_128, AES_GCM_256", "body has unknown field 'foo'",
 * "params/keyId must be a UUID (8-4-4-4-12 hex digits)". The message names
 * the field and what it must be, never the value that was sent (it could be a
 * grant or a key pasted into the wrong field).
 */
import { httpError, HttpError } from './http-errors';


/** Names echoed in messages are clipped: a client chooses them. */
function clip(name: string): string {
  return name.length > 64 ? `${name.slice(0, 64)}...` : name;
}

export interface AjvLikeError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

const FORMAT_TEXT: Record<string, string> = {
  'date-time': 'an RFC 3339 date-time with time zone (e.g. 2030-01-01T00:00:00Z)',
  uuid: 'a UUID',
};

function items(n: unknown): string {
  return Number(n) === 1 ? '1 item' : `${String(n)} items`;
}

export function formatValidationError(e: AjvLikeError, dataVar: string, patterns: Record<string, string> = {}): string {
  const where = `${dataVar}${e.instancePath}`;
  const p = e.params;
  switch (e.keyword) {
    case 'required':
      return `${where} must have required field '${String(p.missingProperty)}'`;
    case 'additionalProperties':
      return `${where} has unknown field '${clip(String(p.additionalProperty))}'`;
    case 'enum':
      return `${where} must be one of ${(p.allowedValues as unknown[]).map(String).join(', ')}`;
    case 'const':
      return `${where} must be ${JSON.stringify(p.allowedValue)}`;
    case 'type':
      return `${where} must be ${Array.isArray(p.type) ? p.type.join(' or ') : String(p.type)}`;
    case 'pattern':
      return `${where} must be ${patterns[String(p.pattern)] ?? `a string matching ${String(p.pattern)}`}`;
    case 'format':
      return `${where} must be ${FORMAT_TEXT[String(p.format)] ?? `a valid ${String(p.format)}`}`;
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `${where} must be ${String(p.comparison)} ${String(p.limit)}`;
    case 'minLength':
      return `${where} must be at least ${String(p.limit)} characters`;
    case 'maxLength':
      return `${where} must be at most ${String(p.limit)} characters`;
    case 'minItems':
      return `${where} must have at least ${items(p.limit)}`;
    case 'maxItems':
      return `${where} must have at most ${items(p.limit)}`;
    case 'uniqueItems':
      return `${where} must not contain duplicates (items ${Math.min(Number(p.i), Number(p.j))} and ${Math.max(Number(p.i), Number(p.j))} are equal)`;
    case 'anyOf':
    case 'oneOf':
      return `${where} does not match any allowed form`;
    default:
      return `${where} ${e.message ?? 'is invalid'}`;
  }
}

/** A fastify `schemaErrorFormatter`. */
export function schemaErrorFormatter(patterns: Record<string, string>) {
  return (errors: AjvLikeError[], dataVar: string): HttpError =>
    httpError('badRequest', errors.length ? formatValidationError(errors[0], dataVar, patterns) : `${dataVar} is invalid`);
}
