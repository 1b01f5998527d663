/**
 * Routes for other components (ts/common/contracts.ts): agents report their
 * host's inventory and counters (role host, own host only); controllers
 * follow the feed of published revisions and key actions (role controller).
 */
import { httpError } from '../../common/http-errors';
import type { InventoryReport, StatsReport } from '../../common/contracts';
import { errorResponses, FeedQuery, FeedResponse, HostIdParams, InventoryBody, InventoryResponse, StatsBody } from '../schemas';
import { ManagerService } from '../service';
import { Api, typed } from './crud';

export const FEED_DEFAULT_WAIT_S = 25;
export const FEED_MAX_WAIT_S = 60;
export const FEED_DEFAULT_LIMIT = 16;
export const FEED_MAX_LIMIT = 256;

export function registerAgentRoutes(api: Api, service: ManagerService): void {
  const app = typed(api);

  app.put(
    '/agent/hosts/:hostId/inventory',
    {
      config: { auth: 'host' },
      schema: {
        tags: ['agent'],
        summary: "The host's workloads as its agent sees them (replaces the previous report)",
        params: HostIdParams,
        body: InventoryBody,
        response: { 200: InventoryResponse, ...errorResponses(400, 403, 409) },
      },
    },
    async (req) => {
      const r = await service.reportInventory(req.params.hostId, req.body as InventoryReport, req.principal!.actor);
      return { id: r.host.id, display_name: r.host.body.display_name as string, _revision: r.host.revision, workload_ids: r.workloadIds, auto_published_revision: r.autoPublished };
    },
  );

  app.post(
    '/agent/hosts/:hostId/stats',
    {
      config: { auth: 'host' },
      schema: { tags: ['agent'], summary: 'Cumulative counters since the agent started (boot_id)', params: HostIdParams, body: StatsBody, response: { 204: { type: 'null' }, ...errorResponses(400, 403) } },
    },
    async (req, reply) => {
      if (!Number.isFinite(Date.parse(req.body.at))) throw httpError('badRequest', 'body/at is not a valid instant: use RFC 3339, e.g. 2030-01-31T12:00:00Z');
      await service.putStats(req.params.hostId, req.body as StatsReport);
      return reply.status(204).send();
    },
  );

  app.get(
    '/internal/controller-feed',
    {
      config: { auth: 'controller' },
      schema: {
        tags: ['controller'],
        summary: 'Events after ?after=SEQ (revision, rotate, revoke), oldest first; long-polls up to ?wait seconds when there are none',
        querystring: FeedQuery,
        response: { 200: FeedResponse, ...errorResponses(400, 403) },
      },
    },
    async (req) => {
      const after = req.query.after === undefined ? 0 : Number(req.query.after);
      const wait = req.query.wait === undefined ? FEED_DEFAULT_WAIT_S : Number(req.query.wait);
      const limit = req.query.limit === undefined ? FEED_DEFAULT_LIMIT : Number(req.query.limit);
      if (wait > FEED_MAX_WAIT_S) throw httpError('badRequest', `querystring/wait must be <= ${FEED_MAX_WAIT_S}`);
      if (limit < 1 || limit > FEED_MAX_LIMIT) throw httpError('badRequest', `querystring/limit must be from 1 to ${FEED_MAX_LIMIT}`);
      let r = await service.feed(after, limit);
      if (r.events.length === 0 && wait > 0) {
        const ac = new AbortController();
        const onClose = () => ac.abort();
        req.raw.socket.once('close', onClose);
        await service.waitForFeed(wait * 1000, ac.signal);
        req.raw.socket.off('close', onClose);
        r = await service.feed(after, limit);
      }
      return r;
    },
  );
}
