/**
 * The manager's HTTP app (issue #5): fastify over HTTPS. `buildManagerApp`
 * makes a ready instance without listening; `listen` and signal handling
 * live in server.ts (fastify/demo app.ts/server.ts).
 *
 * Who may call what (DESIGN §6):
 *   admin      — a verified client certificate with dne://admin/NAME, or a
 *                bearer token from the configuration: the whole public API.
 *   host       — dne://host/NAME: only PUT/POST .../agent/hosts/NAME/*.
 *   controller — dne://controller/NAME: the feed and GET .../status.
 *   anyone     — /healthz, /openapi.json and /docs (the API description is
 *                the same for every installation and holds no data).
 * TLS asks for a client certificate but does not require one, so bearer
 * token admins (curl) can connect; a certificate that is presented must
 * verify against the dne CA, or the request is refused (401).
 */
import Fastify, { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { MANAGER_API } from '../common/contracts';
import { DneError, ErrorCodes } from '../common/errors';
import { fastifyErrorToHttp, mtlsHttpsOptions, ServerTls, STRICT_AJV } from '../common/fastify-app';
import { errorBody, HttpError, httpError, statusOf } from '../common/http-errors';
import { identityFromCertificate, identityUri, Role } from '../common/identity';
import { createLogger, LogLevel } from '../common/logging';
import { AjvLikeError, schemaErrorFormatter } from '../common/validation';
import { registerAgentRoutes } from './routes/agent';
import { registerInventoryRoutes } from './routes/inventory';
import { registerPolicyRoutes } from './routes/policy';
import { registerPublishRoutes } from './routes/publish';
import { PATTERN_TEXT } from './schemas';
import { ManagerService, ManagerSettings } from './service';
import type { ManagerStore } from './store';

export const DEFAULT_BODY_LIMIT = 1024 * 1024;

export type ManagerTls = ServerTls;

/** A bearer token as configured: its name (for the audit log) and the SHA-256 of the token, hex. */
export interface AdminToken {
  name: string;
  sha256: string;
}

export interface ManagerAppOptions {
  /** Without TLS the app serves plain HTTP: for app.inject tests only. */
  tls?: ManagerTls;
  store: ManagerStore;
  settings: ManagerSettings;
  adminTokens?: AdminToken[];
  logger?: Logger;
  logLevel?: LogLevel;
  bodyLimit?: number;
  now?: () => Date;
  /** Close the store when the app closes (default true). */
  ownResources?: boolean;
}

export interface Principal {
  role: Role;
  name: string;
  /** How the audit log names it: dne://role/name, or token:NAME. */
  actor: string;
}

/** Who may call a route (route config `auth`). */
export type Access = 'public' | 'admin' | 'host' | 'controller' | 'admin-or-controller';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    auth?: Access;
  }
  interface FastifyInstance {
    managerService: ManagerService;
    /** Every route registered ("METHOD /path"), for the OpenAPI coverage test. */
    dneRoutes: string[];
  }
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

const baseFormatter = schemaErrorFormatter(PATTERN_TEXT);
/** Fields that accept one of two forms, and how to say so (Ajv's first error names only one branch). */
const ALTERNATIVES: Array<[RegExp, string]> = [
  [/\/protocol$/, 'must be TCP, UDP, ICMPv4, ICMPv6 or an IP protocol number 0-255'],
  [/^\/revision$/, 'must be a revision number (>= 1) or "draft"'],
];

function formatSchemaErrors(errors: AjvLikeError[], dataVar: string): HttpError {
  const any = errors.find((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  if (any) {
    const alt = ALTERNATIVES.find(([re]) => re.test(any.instancePath));
    return httpError('badRequest', `${dataVar}${any.instancePath} ${alt ? alt[1] : 'does not match any allowed form'}`);
  }
  return baseFormatter(errors, dataVar);
}

const PUBLIC_PREFIXES = ['/docs', '/openapi.json', '/healthz'];

export async function buildManagerApp(opts: ManagerAppOptions) {
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const logger = opts.logger ?? createLogger('manager', opts.logLevel ?? 'info');
  const service = new ManagerService(opts.store, opts.settings, logger, opts.now);
  const tokens = (opts.adminTokens ?? []).map((t) => ({ name: t.name, digest: Buffer.from(t.sha256, 'hex') }));

  const app = Fastify({
    ...(opts.tls ? { https: mtlsHttpsOptions(opts.tls, false) } : {}),
    loggerInstance: logger,
    bodyLimit,
    ajv: STRICT_AJV,
    schemaErrorFormatter: formatSchemaErrors,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 256 },
    forceCloseConnections: 'idle',
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.decorate('managerService', service);
  app.decorate('dneRoutes', [] as string[]);
  app.removeContentTypeParser('text/plain');
  app.addHook('onRoute', (r) => {
    const methods = Array.isArray(r.method) ? r.method : [r.method];
    for (const m of methods) if (m !== 'HEAD' && !r.schema?.hide) app.dneRoutes.push(`${m} ${r.url}`);
  });

  // Who is calling: a verified certificate's dne:// identity, else a bearer token.
  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0]!;
    const access: Access = req.routeOptions.config?.auth ?? (PUBLIC_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`)) ? 'public' : 'admin');
    if (access === 'public') return;
    const sock = req.raw.socket as TLSSocket;
    const cert = sock.encrypted ? sock.getPeerX509Certificate() : undefined;
    if (cert) {
      if (!sock.authorized) throw httpError('unauthenticated', `client certificate not verified${sock.authorizationError ? `: ${String(sock.authorizationError)}` : ''}`);
      const id = identityFromCertificate(cert);
      if (!id.ok) throw httpError('forbidden', `client certificate refused: ${id.reason}`);
      req.principal = { ...id.identity, actor: identityUri(id.identity) };
    } else {
      const h = req.headers.authorization;
      if (h === undefined) throw httpError('unauthenticated', 'no credentials: present a dne client certificate or an Authorization: Bearer token');
      const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(h);
      if (!m) throw httpError('unauthenticated', 'the Authorization header must be "Bearer <token>"');
      const digest = createHash('sha256').update(m[1]!, 'utf8').digest();
      // Compare against every configured token, in constant time each.
      let found: string | undefined;
      for (const t of tokens) if (t.digest.length === digest.length && timingSafeEqual(t.digest, digest)) found = t.name;
      if (found === undefined) throw httpError('unauthenticated', 'the bearer token is not valid');
      req.principal = { role: 'admin', name: found, actor: `token:${found}` };
    }
    const p = req.principal;
    const ok =
      access === 'admin'
        ? p.role === 'admin'
        : access === 'admin-or-controller'
          ? p.role === 'admin' || p.role === 'controller'
          : access === 'controller'
            ? p.role === 'controller'
            : p.role === 'host';
    if (!ok) {
      const need = { admin: 'an admin', 'admin-or-controller': 'an admin or a controller', controller: 'a controller', host: 'a host (its own agent routes)' }[access];
      throw httpError('forbidden', `${p.actor} (role ${p.role}) may not ${req.method} ${path}: it needs ${need}`);
    }
    if (access === 'host') {
      const hostId = (req.params as { hostId?: string }).hostId;
      if (hostId !== p.name) throw httpError('forbidden', `${p.actor} may only report for host "${p.name}", not "${hostId}"`);
    }
  });

  app.addHook('preValidation', async (req) => {
    if (req.method === 'POST' && req.body === undefined) req.body = {};
  });

  app.addHook('onSend', async (_req, reply) => {
    reply.header('cache-control', 'no-store');
  });

  app.setErrorHandler(async (error: FastifyError | Error, req: FastifyRequest, reply: FastifyReply) => {
    let err: Error = error;
    if (!(err instanceof DneError)) err = fastifyErrorToHttp(error as FastifyError, { bodyTooLarge: `body is larger than ${bodyLimit} bytes (the manager's bodyLimitBytes)` }) ?? err;
    const status = statusOf(err);
    const refused = status < 500;
    const code = err instanceof DneError && refused ? err.code : ErrorCodes.internal;
    const message = refused ? err.message : 'internal error';
    if (!refused) req.log.error({ err: error, actor: req.principal?.actor, url: req.url }, 'request failed');
    else req.log.info({ status, code, actor: req.principal?.actor, url: req.url.split('?')[0], message }, 'request refused');
    const body: Record<string, unknown> = { ...errorBody(status, code, message) };
    const problems = err instanceof HttpError ? err.detail?.problems : undefined;
    if (problems) body.problems = problems;
    if (status === 401) reply.header('www-authenticate', 'Bearer realm="dne manager"');
    return reply.status(status).send(body);
  });

  app.setNotFoundHandler(async (req) => {
    throw httpError('notFound', `no route ${req.method} ${req.url.split('?')[0]}`);
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'dne manager',
        description:
          'Policy API of dne (distributed network encryption), following NSX-T network-encryption resources and field names. ' +
          'Authenticate with a dne admin client certificate or an Authorization: Bearer token.',
        version: '1',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });

  app.get('/healthz', { config: { auth: 'public' }, schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/openapi.json', { config: { auth: 'public' }, schema: { hide: true } }, async () => app.swagger());

  await app.register(
    async (api) => {
      registerPolicyRoutes(api, service);
      registerInventoryRoutes(api, service);
      registerPublishRoutes(api, service);
      registerAgentRoutes(api, service);
    },
    { prefix: MANAGER_API },
  );

  app.addHook('onClose', async () => {
    service.events.emit('feed'); // long-polls answer now instead of holding the close
    await service.close(); // publishes a pending (paced) inventory change while the store is open
    if (opts.ownResources ?? true) await opts.store.close();
  });

  await app.ready();
  await service.start(); // an inventory change a previous process left pending
  return app;
}

export type ManagerApp = Awaited<ReturnType<typeof buildManagerApp>>;
