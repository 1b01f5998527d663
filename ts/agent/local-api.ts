/**
 * The agent's local endpoint (DESIGN §6): plain HTTP on 127.0.0.1 (default
 * port 9477) or a unix socket, for the operator on this host, `dne ctl` and
 * Prometheus. Read-only; nothing here can change the dataplane, and no
 * response or metric carries key bytes (SAs are shown by SPI and KeyID).
 * Over TCP only requests whose Host is a loopback name with this port are
 * answered (DNS rebinding from a browser on the host); the socket is not
 * reachable from a browser.
 *
 *   GET /healthz  the process answers
 *   GET /readyz   200 once the first host config is in the dataplane, else 503
 *   GET /status   config version, controller / key manager / manager reachability, ports with MTU
 *   GET /sas      installed SAs: SPI, KeyID, state, ages, counters
 *   GET /rules    the rules in this host's tables with their counters
 *   GET /stats    port, rule, key-policy and drop counters
 *   GET /explain?src=&dst=&protocol=[&sport=&dport=&port=]
 *   GET /metrics  Prometheus text format
 */
import Fastify from 'fastify';
import { Static, Type } from '@sinclair/typebox';
import type { Registry } from 'prom-client';
import type { Logger } from 'pino';
import { errorBody } from '../common/http-errors';
import { schemaErrorFormatter } from '../common/validation';
import type { Agent } from './agent';
import { explainQueryProblem } from './explain-query';

const Port = Type.String({ pattern: '^[0-9]{1,5}$' });
export const ExplainQuerySchema = Type.Object(
  {
    src: Type.String({ minLength: 2, maxLength: 45 }),
    dst: Type.String({ minLength: 2, maxLength: 45 }),
    protocol: Type.String({ pattern: '^([0-9]{1,3}|[A-Za-z0-9_-]{1,16})$' }),
    sport: Type.Optional(Port),
    dport: Type.Optional(Port),
    port: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$' })),
  },
  { additionalProperties: false },
);
type ExplainQueryT = Static<typeof ExplainQuerySchema>;

const PATTERNS: Record<string, string> = {
  '^[0-9]{1,5}$': 'a port number (0-65535)',
  '^([0-9]{1,3}|[A-Za-z0-9_-]{1,16})$': 'a protocol number or name (tcp, udp, icmp, icmpv6, sctp)',
  '^[A-Za-z0-9_.:-]{1,64}$': 'a port name',
};

/**
 * Whether a Host header names this endpoint by a loopback name or address
 * with the port it listens on (no port: 80). A web page the operator's
 * browser loads can point its own DNS name at 127.0.0.1 (DNS rebinding) and
 * then read this endpoint as same-origin; its requests carry that name in
 * Host, so anything but a loopback name is refused.
 */
export function isLoopbackHost(host: string | undefined, port: number): boolean {
  if (host === undefined) return false;
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::([0-9]{1,5}))?$/.exec(host);
  if (!m) return false;
  if ((m[2] === undefined ? 80 : Number(m[2])) !== port) return false;
  const name = m[1]!.toLowerCase();
  if (name === 'localhost' || name === '[::1]') return true;
  const v4 = /^127\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$/.exec(name);
  return v4 !== null && v4.slice(1).every((o) => Number(o) <= 255);
}

export async function buildAgentApi(agent: Agent, registry: Registry, opts: { logger?: Logger } = {}) {
  const app = Fastify({
    // Request lines would log every scrape; the endpoint logs only its errors.
    loggerInstance: opts.logger?.child({ component: 'agent-endpoint' }, { level: 'warn' }),
    schemaErrorFormatter: schemaErrorFormatter(PATTERNS),
    // No coercion: query strings stay strings and are parsed here.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  });
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err: err.message }, 'local endpoint error');
    void reply.code(status).send(errorBody(status, err.code ?? 'ERR_DNE_INTERNAL', status === 500 ? 'internal error (see the agent log)' : err.message));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(errorBody(404, 'ERR_DNE_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
  });

  app.addHook('onRequest', async (req, reply) => {
    // A unix socket has no port and no browser can reach it: only TCP requests are checked.
    const port = req.raw.socket.localPort;
    if (typeof port !== 'number' || isLoopbackHost(req.headers.host, port)) return;
    return reply
      .code(403)
      .send(errorBody(403, 'ERR_DNE_FORBIDDEN', `the Host header must be localhost, 127.x.x.x or [::1] with port ${port}: the endpoint answers local clients only`));
  });

  app.get('/healthz', async () => ({ status: 'ok', boot_id: agent.bootId }));
  app.get('/readyz', async (_req, reply) => {
    if (!agent.ready) return reply.code(503).send({ ready: false, reason: 'no host config applied yet' });
    return { ready: true, config_version: agent.version };
  });
  app.get('/status', async () => agent.status());
  app.get('/sas', async () => ({ sas: agent.sas() }));
  app.get('/rules', async () => ({ config_version: agent.version, rules: agent.rules() }));
  app.get('/stats', async () => agent.stats());
  app.get<{ Querystring: ExplainQueryT }>('/explain', { schema: { querystring: ExplainQuerySchema } }, async (req, reply) => {
    const q = req.query;
    // Range and protocol/port consistency, in the same words as `dne ctl explain` (explain-query.ts).
    const problem = explainQueryProblem(q);
    if (problem) return reply.code(400).send(errorBody(400, 'ERR_DNE_BAD_REQUEST', `querystring/${problem.field} ${problem.message}`));
    try {
      return agent.explain({
        src: q.src,
        dst: q.dst,
        protocol: q.protocol,
        sport: q.sport === undefined ? undefined : Number(q.sport),
        dport: q.dport === undefined ? undefined : Number(q.dport),
        port: q.port,
      });
    } catch (err) {
      if (err instanceof RangeError) return reply.code(400).send(errorBody(400, 'ERR_DNE_BAD_REQUEST', err.message));
      throw err;
    }
  });
  app.get('/metrics', async (_req, reply) => {
    const text = await registry.metrics();
    return reply.type(registry.contentType).send(text);
  });
  return app;
}

export type AgentApi = Awaited<ReturnType<typeof buildAgentApi>>;
