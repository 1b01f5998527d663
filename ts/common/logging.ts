/**
 * pino for every service: JSON lines, one child logger per component, and
 * redaction of anything that could be a secret, as a second line of defence —
 * the first is never passing secrets to a logger at all.
 */
import pino, { DestinationStream, Logger, LoggerOptions } from 'pino';

const SECRET_FIELDS = ['key', 'salt', 'keymat', 'grant', 'masterKey', 'master', 'wrapped', 'privateKey', 'authorization'];

export const REDACT_PATHS: string[] = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  ...SECRET_FIELDS.map((f) => `*.*.${f}`),
  'keys[*].key',
  'keys[*].salt',
  '*.keys[*].key',
  '*.keys[*].salt',
  'req.headers.authorization',
  'req.headers.cookie',
  'body',
  '*.body',
];

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function loggerOptions(component: string, level: LogLevel = 'info'): LoggerOptions {
  return {
    level,
    base: { component },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
}

export function createLogger(component: string, level: LogLevel = 'info', stream?: DestinationStream): Logger {
  return stream ? pino(loggerOptions(component, level), stream) : pino(loggerOptions(component, level));
}
