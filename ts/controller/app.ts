/**
 * The controller's HTTP app (fastify over HTTPS, mutual TLS only; DESIGN §6).
 * `buildControllerApp` makes a ready instance around a started
 * ControllerService without listening; server.ts listens and handles signals.
 *
 * Request path: TLS handshake (client certificate verified against the dne
 * CA, else no HTTP at all) → onRequest: identity from the certificate's
 * dne:// URI SAN → role check (a host only ever reaches its own
 * /v1/hosts/{hostId}) → schema validation → service → response.
 */
import Fastify, { FastifyError, FastifyReply, FastifyRequest, LogController } from 'fastify';
import { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { DneError, ErrorCodes } from '../common/errors';
import { fastifyErrorToHttp, logRefusedHandshakes, mtlsHttpsOptions, ServerTls, STRICT_AJV } from '../common/fastify-app';
import { errorBody, httpError, statusOf } from '../common/http-errors';
import { Identity, identityFromCertificate, identityUri, Role } from '../common/identity';
import { schemaErrorFormatter } from '../common/validation';
import {
  AckBody,
  ConfigQuery,
  errorResponses,
  GrantResponse,
  HealthResponse,
  HostConfigResponseDoc,
  HostParams,
  PATTERN_TEXT,
  StatusResponse,
} from './schemas';
import type { ControllerService } from './service';

declare module 'fastify' {
  interface FastifyRequest {
    dnePeer?: Identity;
  }
}

export const DEFAULT_BODY_LIMIT = 64 * 1024;
export const MAX_WAIT_SECONDS = 60;
export const DEFAULT_WAIT_SECONDS = 25;

export interface ControllerAppOptions {
  tls: ServerTls;
  service: ControllerService;
  logger: Logger;
  bodyLimit?: number;
  /** Close the service when the app closes (default true). */
  ownService?: boolean;
}

export async function buildControllerApp(opts: ControllerAppOptions) {
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const service = opts.service;
  const logger = opts.logger;
  const app = Fastify({
    https: mtlsHttpsOptions(opts.tls, true),
    loggerInstance: logger,
    // A poll per agent per wait period is routine; request lines at debug keep info quiet for 1,000s of hosts.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit,
    ajv: STRICT_AJV,
    schemaErrorFormatter: schemaErrorFormatter(PATTERN_TEXT),
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Long-polls hold a request for up to 60 s; keep the socket open a little longer than that between them.
    keepAliveTimeout: (MAX_WAIT_SECONDS + 10) * 1000,
    requestTimeout: 0,
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.removeContentTypeParser('text/plain');

  logRefusedHandshakes(app, logger);

  // An agent's keep-alive connection carries a poll every few seconds: parse its certificate once per connection.
  const peerIds = new WeakMap<TLSSocket, ReturnType<typeof identityFromCertificate>>();
  app.addHook('onRequest', async (req) => {
    const sock = req.raw.socket as TLSSocket;
    if (!sock.encrypted || !sock.authorized) throw httpError('unauthenticated', 'client certificate not verified');
    let id = peerIds.get(sock);
    if (!id) peerIds.set(sock, (id = identityFromCertificate(sock.getPeerX509Certificate())));
    if (!id.ok) throw httpError('forbidden', `client certificate refused: ${id.reason}`);
    req.dnePeer = id.identity;
  });

  app.addHook('onResponse', async (req, reply) => {
    req.log.debug({ method: req.method, url: req.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  app.addHook('onSend', async (_req, reply) => {
    reply.header('cache-control', 'no-store');
  });

  app.setErrorHandler(async (error: FastifyError | Error, req: FastifyRequest, reply: FastifyReply) => {
    let err: Error = error;
    if (!(err instanceof DneError)) err = fastifyErrorToHttp(error as FastifyError, { bodyTooLarge: `body is larger than ${bodyLimit} bytes`, contentLength: false }) ?? err;
    const status = statusOf(err);
    const refused = status < 500;
    const peer = req.dnePeer ? identityUri(req.dnePeer) : `unidentified peer from ${req.ip}`;
    if (refused) req.log.warn({ peer, url: req.url.split('?')[0], status, reason: err.message }, 'request refused');
    else req.log.error({ err: error, peer, url: req.url.split('?')[0] }, 'request failed');
    return reply.status(status).send(errorBody(status, refused && err instanceof DneError ? err.code : ErrorCodes.internal, refused ? err.message : 'internal error'));
  });

  app.setNotFoundHandler(async (req) => {
    throw httpError('notFound', `no route ${req.method} ${req.url.split('?')[0]}`);
  });

  const requireRole = (req: FastifyRequest, roles: Role[], what: string): Identity => {
    const p = req.dnePeer!;
    if (!roles.includes(p.role)) throw httpError('forbidden', `${identityUri(p)} may not ${what}; that needs the role ${roles.join(' or ')}`);
    return p;
  };
  /** A host reads and writes only its own /v1/hosts/{hostId} (its certificate name). */
  const requireHost = (req: FastifyRequest, hostId: string): void => {
    const p = requireRole(req, ['host'], `use /v1/hosts/${hostId}`);
    if (p.name !== hostId) throw httpError('forbidden', `${identityUri(p)} may only use /v1/hosts/${p.name}, not /v1/hosts/${hostId}`);
  };

  app.get('/healthz', { schema: { response: { 200: HealthResponse } } }, async () => ({
    status: 'ok' as const,
    instanceId: service.status().instance_id,
    revision: service.status().revision,
  }));

  app.get(
    '/v1/hosts/:hostId/config',
    { schema: { params: HostParams, querystring: ConfigQuery, response: { 200: HostConfigResponseDoc, ...errorResponses(400, 403) } } },
    async (req, reply) => {
      requireHost(req, req.params.hostId);
      const after = req.query.after === undefined ? 0 : Number(req.query.after);
      const wait = req.query.wait === undefined ? DEFAULT_WAIT_SECONDS : Number(req.query.wait);
      if (wait > MAX_WAIT_SECONDS) throw httpError('badRequest', `querystring/wait must be from 0 to ${MAX_WAIT_SECONDS}`);
      const r = await service.poll(req.params.hostId, after, wait, (f) => reply.raw.once('close', f));
      // Pre-rendered JSON: a string payload bypasses the serializer.
      return reply.type('application/json').send(r.json as never);
    },
  );

  app.get('/v1/hosts/:hostId/grant', { schema: { params: HostParams, response: { 200: GrantResponse, ...errorResponses(403) } } }, async (req) => {
    requireHost(req, req.params.hostId);
    return service.grant(req.params.hostId);
  });

  app.post(
    '/v1/hosts/:hostId/ack',
    { schema: { params: HostParams, body: AckBody, response: errorResponses(400, 403, 409) } },
    async (req, reply) => {
      requireHost(req, req.params.hostId);
      await service.ack(req.params.hostId, req.body.version, req.body.installed_key_ids);
      return reply.status(204).send();
    },
  );

  app.get('/v1/status', { schema: { response: { 200: StatusResponse, ...errorResponses(403) } } }, async (req) => {
    requireRole(req, ['admin', 'manager'], 'read the controller status');
    return service.status();
  });

  // Waiting long-polls answer (empty) at once so close does not wait for them.
  app.addHook('preClose', async () => {
    service.wakeAll();
  });
  if (opts.ownService ?? true) app.addHook('onClose', async () => service.close());

  await app.ready();
  return app;
}

export type ControllerApp = Awaited<ReturnType<typeof buildControllerApp>>;
