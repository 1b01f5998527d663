/**
 * What the services' fastify apps (key manager, manager, controller) share:
 * the HTTPS options for client-certificate TLS, JSON-only validation
 * settings, logging of refused handshakes, and how fastify's own errors
 * become precise 4xx answers. Who a peer is and what it may do differ per
 * service and stay in each app.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { ErrorName, HttpError, httpError } from './http-errors';

export interface ServerTls {
  cert: string | Buffer;
  key: string | Buffer;
  /** The CA (bundle) that client certificates must chain to. */
  ca: string | Buffer | (string | Buffer)[];
}

/**
 * HTTPS options asking every client for a certificate. With
 * rejectUnauthorized the handshake itself fails without a valid one (no HTTP
 * at all); without it the app decides (the manager also takes bearer tokens).
 */
export function mtlsHttpsOptions(tls: ServerTls, rejectUnauthorized: boolean) {
  return { cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: true, rejectUnauthorized, minVersion: 'TLSv1.2' as const };
}

/** Ajv as the services use it: no coercion, no silent removal of unknown fields, defaults filled in, first error only. */
export const STRICT_AJV = { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false } };

/** Handshakes refused for want of a (valid) client certificate never become requests; log them. */
export function logRefusedHandshakes(app: Pick<FastifyInstance, 'server'>, logger: Logger): void {
  app.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    logger.warn({ remoteAddress: socket.remoteAddress, reason: err.code ?? err.message }, 'TLS handshake refused');
  });
}

export interface FastifyErrorWording {
  /** The 413 message (it names the limit). */
  bodyTooLarge: string;
  /** Map a content-length mismatch to our own message (default true; the controller keeps fastify's). */
  contentLength?: boolean;
  /** Name a __proto__/constructor.prototype key when a SyntaxError says so (the key manager). */
  prototypeKey?: boolean;
}

/** Fastify's own errors (body parsing, limits, validation) as HttpErrors; null for anything that is not a 4xx. */
export function fastifyErrorToHttp(err: FastifyError, w: FastifyErrorWording): HttpError | null {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return httpError('bodyTooLarge', w.bodyTooLarge);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return httpError('unsupportedMediaType', 'content-type must be application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return httpError('badRequest', 'body is empty but content-type is application/json');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      // fastify uses one code for syntax errors and for __proto__/constructor.prototype keys (secure-json-parse)
      return httpError('badRequest', 'body is not valid JSON, or it contains a __proto__ or constructor.prototype key');
  }
  if (err.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH' && w.contentLength !== false) return httpError('badRequest', 'content-length does not match the body');
  if (err instanceof SyntaxError || err.name === 'SyntaxError') {
    // Never echo the parser's message: it quotes the body, which could hold a grant.
    if (w.prototypeKey && /prototype/.test(err.message)) return httpError('badRequest', 'body contains a forbidden __proto__ or constructor.prototype key');
    return httpError('badRequest', 'body is not valid JSON');
  }
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    const name: ErrorName = status === 404 ? 'notFound' : status === 413 ? 'bodyTooLarge' : status === 415 ? 'unsupportedMediaType' : 'badRequest';
    return httpError(name, err.message);
  }
  return null;
}
