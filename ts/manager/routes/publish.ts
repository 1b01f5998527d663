/**
 * Publish, revisions (list, read, diff, rollback), the draft, explain,
 * status and the audit log.
 */
import { Type } from '@sinclair/typebox';
import { httpError } from '../../common/http-errors';
import type { Revision } from '../../common/policy-model';
import { checkExplainInput, explainFlow } from '../explain';
import {
  AuditQuery,
  AuditResponse,
  DiffQuery,
  DiffResponse,
  errorResponses,
  ExplainBody,
  ExplainResponse,
  Problem,
  PublishBody,
  PublishResponse,
  RevisionActionQuery,
  RevisionDocument,
  RevisionList,
  RevisionParams,
  RevisionQuery,
  StatusResponse,
} from '../schemas';
import { ManagerService, PublishRefused, summary } from '../service';
import { Api, typed } from './crud';

function uint(v: string | undefined, def: number, name: string, max: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (n > max) throw httpError('badRequest', `querystring/${name} must be <= ${max}`);
  return n;
}

export function registerPublishRoutes(api: Api, service: ManagerService): void {
  const app = typed(api);
  const tags = ['publish'];

  app.post(
    '/publish',
    {
      schema: {
        tags,
        summary: 'Validate the whole draft and store it as the next immutable revision, or refuse with every problem (409)',
        body: PublishBody,
        response: { 201: PublishResponse, ...errorResponses(400, 409) },
      },
    },
    async (req, reply) => {
      const r = await service.publish(req.principal!.actor, req.body.description);
      return reply.status(201).send({ ...summary(r.rev), published_at: r.row.published_at, published_by: r.row.published_by, origin: r.row.origin, rolled_back_to: null, feed_seq: r.seq });
    },
  );

  // The same, as `POST /revisions?action=publish` (a revision is what a publish creates).
  app.post(
    '/revisions',
    {
      schema: {
        tags,
        summary: 'action=publish: the same as POST /publish',
        querystring: Type.Object({ action: Type.Unsafe<'publish'>({ type: 'string', enum: ['publish'] }) }, { additionalProperties: false }),
        body: PublishBody,
        response: { 201: PublishResponse, ...errorResponses(400, 409) },
      },
    },
    async (req, reply) => {
      const r = await service.publish(req.principal!.actor, req.body.description);
      return reply.status(201).send({ ...summary(r.rev), published_at: r.row.published_at, published_by: r.row.published_by, origin: r.row.origin, rolled_back_to: null, feed_seq: r.seq });
    },
  );

  app.get('/draft', { schema: { tags, summary: 'The draft as a revision would hold it, and the problems a publish would report', response: { 200: Type.Object({ draft: RevisionDocument, problems: Type.Array(Problem) }) } } }, async () => {
    const { rev, problems } = await service.draftRevision(true);
    return { draft: rev, problems };
  });

  app.get('/revisions', { schema: { tags, summary: 'Published revisions, newest first', querystring: RevisionQuery, response: { 200: RevisionList } } }, async (req) => {
    const limit = uint(req.query.limit, 100, 'limit', 1000);
    const before = req.query.before === undefined ? undefined : Number(req.query.before);
    const { rows, total } = await service.listRevisions(limit, before);
    return {
      results: rows.map((r) => ({ revision: r.number, published_at: r.published_at, published_by: r.published_by, origin: r.origin, rolled_back_to: r.source })),
      result_count: total,
    };
  });

  app.get('/revisions/:n', { schema: { tags, summary: 'One published revision, as the controllers receive it', params: RevisionParams, response: { 200: RevisionDocument, ...errorResponses(404) } } }, async (req) =>
    JSON.parse((await service.revision(Number(req.params.n))).body) as Revision,
  );

  app.get(
    '/revisions/:n/diff',
    { schema: { tags, summary: 'What changed from revision n to ?to=M (or to=draft)', params: RevisionParams, querystring: DiffQuery, response: { 200: DiffResponse, ...errorResponses(404) } } },
    async (req) => service.diff(Number(req.params.n), req.query.to === 'draft' ? 'draft' : Number(req.query.to)),
  );

  app.post(
    '/revisions/:n',
    {
      schema: {
        tags,
        summary: 'action=rollback: publish revision n\'s policy (with the current inventory) as a new revision; the draft becomes that policy',
        params: RevisionParams,
        querystring: RevisionActionQuery,
        response: { 201: PublishResponse, ...errorResponses(400, 404, 409) },
      },
    },
    async (req, reply) => {
      const r = await service.rollback(req.principal!.actor, Number(req.params.n));
      return reply.status(201).send({ ...summary(r.rev), published_at: r.row.published_at, published_by: r.row.published_by, origin: r.row.origin, rolled_back_to: r.row.source, feed_seq: r.seq });
    },
  );

  app.post(
    '/explain',
    {
      schema: {
        tags: ['explain'],
        summary: 'Which section, rule, action and key policy apply to a flow at a workload (or host and port), in the draft or a revision',
        body: ExplainBody,
        response: { 200: ExplainResponse, ...errorResponses(400, 404, 409) },
      },
    },
    async (req) => {
      const b = req.body;
      checkExplainInput(b);
      const which = b.revision ?? 'draft';
      let rev: Revision;
      if (which === 'draft') {
        const d = await service.draftRevision(true);
        if (d.problems.length) throw new PublishRefused(d.problems, 'explain on the draft');
        rev = d.rev;
      } else {
        rev = JSON.parse((await service.revision(which)).body) as Revision;
      }
      return explainFlow(rev, which, b);
    },
  );

  app.get('/status', { config: { auth: 'admin-or-controller' }, schema: { tags: ['status'], response: { 200: StatusResponse } } }, async () => service.status());

  app.get('/audit', { schema: { tags: ['audit'], summary: 'Every change: who, what, before/after (oldest first from ?since)', querystring: AuditQuery, response: { 200: AuditResponse } } }, async (req) => {
    const since = req.query.since === undefined ? 0 : Number(req.query.since);
    const limit = uint(req.query.limit, 100, 'limit', 1000);
    if (limit < 1) throw httpError('badRequest', 'querystring/limit must be >= 1');
    const results = await service.audit(since, limit);
    return { results, next: results.length ? results[results.length - 1]!.id : since };
  });
}
