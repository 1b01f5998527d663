/**
 * The key manager's HTTP app (fastify over HTTPS with mutual TLS only).
 * `buildKeyManagerApp` makes a ready instance without listening; `listen`
 * and signal handling live in server.ts (fastify/demo app.ts/server.ts).
 *
 * Request path: TLS handshake (client certificate required and verified
 * against the dne CA, else no HTTP at all) → onRequest: identity from the
 * certificate's dne:// URI SAN → schema validation (unknown fields, wrong
 * types, oversize bodies are 4xx) → KeyService method (one transaction) →
 * response serialised through its schema. Every 4xx is audited once.
 */
import Fastify, { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { TLSSocket } from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { DneError, ErrorCodes } from '../common/errors';
import { fastifyErrorToHttp, logRefusedHandshakes, mtlsHttpsOptions, ServerTls, STRICT_AJV } from '../common/fastify-app';
import { errorBody, httpError, statusOf } from '../common/http-errors';
import { identityFromCertificate, identityUri } from '../common/identity';
import { createLogger, LogLevel } from '../common/logging';
import { schemaErrorFormatter } from '../common/validation';
import { MasterKey } from './master-key';
import {
  AuditQuery,
  AuditResponse,
  CreateKeyBody,
  errorResponses,
  HealthResponse,
  KeyIdParams,
  KeyListSchema,
  KeyMetadataSchema,
  ListKeysQuery,
  PATTERN_TEXT,
  PolicyParams,
  ReleaseBody,
  ReleaseResponse,
  RevokeBody,
  RotateBody,
  RotateResponse,
} from './schemas';
import { AUDITED, KeyManagerSettings, KeyService, Peer } from './service';
import { KeyStore } from './store';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified TLS peer, set in onRequest. */
    peer?: Peer;
    /** What we know of a peer that could not be identified (for the audit log). */
    peerHint?: string;
  }
}

export const DEFAULT_BODY_LIMIT = 64 * 1024;
export const DEFAULT_EXPIRY_SWEEP_MS = 60_000;

export type KeyManagerTls = ServerTls;

export interface KeyManagerAppOptions {
  tls: KeyManagerTls;
  store: KeyStore;
  masterKey: MasterKey;
  settings: KeyManagerSettings;
  /** A pino logger (tests pass one with a capturing stream); default: JSON to stdout at `logLevel`. */
  logger?: Logger;
  logLevel?: LogLevel;
  bodyLimit?: number;
  /** How often expired keys are persisted as expired and audited; 0 disables the timer. */
  expirySweepMs?: number;
  now?: () => number;
  /** Close the store and wipe the master key when the app closes (default true). */
  ownResources?: boolean;
}

const peerCertCache = new WeakMap<TLSSocket, X509Certificate | undefined>();

function actorOf(req: FastifyRequest): string {
  return req.peer ? identityUri(req.peer) : `unidentified peer ${req.peerHint ?? ''} from ${req.ip}`.replace('  ', ' ');
}

function ms(iso: string | undefined, field = 'time'): number | undefined {
  if (iso === undefined) return undefined;
  const t = Date.parse(iso);
  // The date-time format admits values no clock has (a :60 leap second,
  // Feb 30): refuse them here rather than fail later.
  if (!Number.isFinite(t)) throw httpError('badRequest', `body/${field} is not a valid instant: use RFC 3339, e.g. 2030-01-31T12:00:00Z`);
  return t;
}

export async function buildKeyManagerApp(opts: KeyManagerAppOptions) {
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const logger = (opts.logger ?? createLogger('keymanager', opts.logLevel ?? 'info')).child({ instance: opts.settings.instanceId });
  const service = new KeyService(opts.store, opts.masterKey, opts.settings, logger, opts.now);

  const app = Fastify({
    https: mtlsHttpsOptions(opts.tls, true),
    loggerInstance: logger,
    bodyLimit,
    ajv: STRICT_AJV,
    schemaErrorFormatter: schemaErrorFormatter(PATTERN_TEXT),
    return503OnClosing: true,
    // Policy ids may be 128 characters (fastify's default path-parameter
    // limit is 100, which made such policies impossible to rotate).
    routerOptions: { maxParamLength: 256 },
    // On close, idle keep-alive connections are dropped; requests in flight finish first.
    forceCloseConnections: 'idle',
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.decorate('keyService', service);
  // JSON only: a text/plain body is refused with 415, not parsed as a string.
  app.removeContentTypeParser('text/plain');

  logRefusedHandshakes(app, logger);

  app.addHook('onRequest', async (req) => {
    const sock = req.raw.socket as TLSSocket;
    if (!sock.encrypted || !sock.authorized) {
      throw httpError('unauthenticated', `client certificate not verified${sock.authorizationError ? `: ${String(sock.authorizationError)}` : ''}`);
    }
    let cert = peerCertCache.get(sock);
    if (!peerCertCache.has(sock)) {
      cert = sock.getPeerX509Certificate();
      peerCertCache.set(sock, cert);
    }
    const id = identityFromCertificate(cert);
    if (!id.ok) {
      req.peerHint = cert ? `(${cert.subject.replace(/\n/g, ', ')}; serial ${cert.serialNumber})` : '';
      throw httpError('forbidden', `client certificate refused: ${id.reason}`);
    }
    req.peer = { ...id.identity, remoteAddress: req.ip };
  });

  // POST without a body validates as {} so the message names the missing field.
  app.addHook('preValidation', async (req) => {
    if (req.method === 'POST' && req.body === undefined) req.body = {};
  });

  app.addHook('onSend', async (_req, reply) => {
    reply.header('cache-control', 'no-store');
  });

  app.setErrorHandler(async (error: FastifyError | Error, req: FastifyRequest, reply: FastifyReply) => {
    let err: Error = error;
    if (!(err instanceof DneError)) err = fastifyErrorToHttp(error as FastifyError, { bodyTooLarge: `body is larger than ${bodyLimit} bytes`, prototypeKey: true }) ?? err;
    const status = statusOf(err);
    const refused = status < 500;
    const code = err instanceof DneError && refused ? err.code : ErrorCodes.internal;
    const message = refused ? err.message : 'internal error';
    if (!refused) req.log.error({ err: error, peer: actorOf(req), url: req.url }, 'request failed');
    // recordFailure logs the refusal (once) along with writing its audit record
    if (!(err as unknown as Record<symbol, unknown>)[AUDITED]) {
      await service.recordFailure(actorOf(req), `${req.method} ${req.routeOptions.url ?? req.url.split('?')[0]}`, err, {
        detail: { remoteAddress: req.ip },
      });
    }
    return reply.status(status).send(errorBody(status, code, message));
  });

  app.setNotFoundHandler(async (req) => {
    throw httpError('notFound', `no route ${req.method} ${req.url.split('?')[0]}`);
  });

  const peerOf = (req: FastifyRequest): Peer => {
    if (!req.peer) throw new DneError(ErrorCodes.internal, 'request without an identified peer reached a handler');
    return req.peer;
  };

  app.get('/healthz', { schema: { response: { 200: HealthResponse } } }, async (req) => {
    peerOf(req);
    await opts.store.read((tx) => tx.getMeta('schema_version'));
    return { status: 'ok' as const, instanceId: opts.settings.instanceId, store: opts.store.kind };
  });

  app.post(
    '/v1/keys',
    { schema: { body: CreateKeyBody, response: { 201: KeyMetadataSchema, ...errorResponses(400, 403, 409) } } },
    async (req, reply) => {
      const b = req.body;
      const meta = await service.createKey(peerOf(req), {
        policyId: b.policyId,
        algorithm: b.algorithm,
        notBefore: ms(b.notBefore, 'notBefore'),
        notAfter: ms(b.notAfter, 'notAfter'),
      });
      return reply.status(201).send(meta);
    },
  );

  app.get('/v1/keys', { schema: { querystring: ListKeysQuery, response: { 200: KeyListSchema } } }, async (req) => {
    const limit = req.query.limit === undefined ? 100 : Number(req.query.limit);
    if (limit < 1 || limit > 1000) throw httpError('badRequest', 'querystring/limit must be from 1 to 1000');
    return { keys: await service.listKeys(peerOf(req), { policyId: req.query.policyId, after: req.query.after, limit }) };
  });

  app.get('/v1/keys/:keyId', { schema: { params: KeyIdParams, response: { 200: KeyMetadataSchema } } }, async (req) =>
    service.getKey(peerOf(req), req.params.keyId),
  );

  app.post(
    '/v1/keys/:keyId/revoke',
    { schema: { params: KeyIdParams, body: RevokeBody, response: { 200: KeyMetadataSchema } } },
    async (req) => service.revokeKey(peerOf(req), req.params.keyId, req.body.reason),
  );

  app.post(
    '/v1/policies/:policyId/rotate',
    { schema: { params: PolicyParams, body: RotateBody, response: { 201: RotateResponse } } },
    async (req, reply) => {
      const b = req.body;
      const r = await service.rotatePolicy(peerOf(req), req.params.policyId, {
        algorithm: b.algorithm,
        notBefore: ms(b.notBefore, 'notBefore'),
        notAfter: ms(b.notAfter, 'notAfter'),
      });
      return reply.status(201).send(r);
    },
  );

  app.post('/v1/release', { schema: { body: ReleaseBody, response: { 200: ReleaseResponse } } }, async (req) => {
    const keys = await service.release(peerOf(req), { grant: req.body.grant, keyIds: req.body.keyIds, count: req.body.count });
    return { keys };
  });

  app.get('/v1/audit', { schema: { querystring: AuditQuery, response: { 200: AuditResponse } } }, async (req) => {
    const since = req.query.since === undefined ? 0 : Number(req.query.since);
    const limit = req.query.limit === undefined ? 100 : Number(req.query.limit);
    if (limit < 1 || limit > 1000) throw httpError('badRequest', 'querystring/limit must be from 1 to 1000');
    const entries = await service.audit(peerOf(req), since, limit);
    return {
      entries: entries.map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
      next: entries.length ? entries[entries.length - 1].id : since,
    };
  });

  try {
    await service.start();
  } catch (err) {
    if (opts.ownResources ?? true) {
      await opts.store.close();
      opts.masterKey.destroy();
    }
    throw err;
  }

  const sweepMs = opts.expirySweepMs ?? DEFAULT_EXPIRY_SWEEP_MS;
  const timer =
    sweepMs > 0
      ? setInterval(() => {
          service.sweepExpired().catch((err: unknown) => logger.error({ err }, 'expiry sweep failed'));
        }, sweepMs)
      : undefined;
  timer?.unref();

  app.addHook('onClose', async () => {
    if (timer) clearInterval(timer);
    if (opts.ownResources ?? true) {
      await opts.store.close();
      opts.masterKey.destroy();
    }
  });

  await app.ready();
  return app;
}

export type KeyManagerApp = Awaited<ReturnType<typeof buildKeyManagerApp>>;

declare module 'fastify' {
  interface FastifyInstance {
    keyService: KeyService;
  }
}
