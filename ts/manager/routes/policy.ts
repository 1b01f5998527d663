/**
 * Policy resources (DESIGN §2, NSX-T `/api/v1/network-encryption/`): key
 * managers, key policies (with `?action=rotate|revoke`, `/stats`, `/rules`),
 * ordered sections (`?action=create_with_rules`, `?action=revise`), their
 * ordered rules, and the global config.
 */
import { Type } from '@sinclair/typebox';
import { httpError } from '../../common/http-errors';
import {
  ConfigBody,
  ConfigResponse,
  errorResponses,
  IdParams,
  KeyManagerRes,
  KeyPolicyActionBody,
  KeyPolicyActionQuery,
  KeyPolicyActionResponse,
  KeyPolicyRes,
  KeyPolicyStats,
  OrderQuery,
  RuleList,
  RuleRes,
  RuleResponse,
  RuleStats,
  SectionList,
  SectionParams,
  SectionRes,
  SectionResponse,
  SectionRuleParams,
  SectionStats,
  SectionWithRulesCreate,
  SectionWithRulesResponse,
} from '../schemas';
import { ManagerService, Obj, toResponse, Wire } from '../service';
import { keyPolicyStats, ruleStats, sectionStats } from '../stats';
import type { StoredObject } from '../store';
import { Api, registerCrud, typed } from './crud';

export function registerPolicyRoutes(api: Api, service: ManagerService): void {
  const app = typed(api);
  registerCrud(api, service, { path: '/key-managers', kind: 'key_manager', tag: 'key-managers', ...KeyManagerRes });
  registerCrud(api, service, { path: '/key-policies', kind: 'key_policy', tag: 'key-policies', ...KeyPolicyRes });

  // ---------------------------------------------------------- key policy actions, stats, rules
  app.post(
    '/key-policies/:id',
    {
      schema: {
        tags: ['key-policies'],
        summary: 'rotate: start a key rollover now; revoke: withdraw the current key(s) everywhere now (the controller does the work)',
        params: IdParams,
        querystring: KeyPolicyActionQuery,
        body: KeyPolicyActionBody,
        response: { 202: KeyPolicyActionResponse, ...errorResponses(400, 404, 409) },
      },
    },
    async (req, reply) => {
      const { action } = req.query;
      if (action === 'rotate' && req.body.reason !== undefined) throw httpError('badRequest', 'body/reason is only accepted with action=revoke');
      const seq = await service.keyPolicyAction(req.principal!.actor, req.params.id, action, req.body.reason);
      return reply.status(202).send({ key_policy_id: req.params.id, action, feed_seq: seq, status: 'accepted' as const });
    },
  );
  app.get('/key-policies/:id/stats', { schema: { tags: ['key-policies'], summary: 'Counters summed over hosts, with a per-host breakdown', params: IdParams, response: { 200: KeyPolicyStats, ...errorResponses(404) } } }, async (req) => {
    await service.get('key_policy', req.params.id);
    return keyPolicyStats(await service.statsReports(), req.params.id);
  });
  app.get('/key-policies/:id/rules', { schema: { tags: ['key-policies'], summary: 'Draft rules whose effective key policy is this one (their own, or their section\'s)', params: IdParams, response: { 200: RuleList, ...errorResponses(404) } } }, async (req) => {
    await service.get('key_policy', req.params.id);
    const sections = new Map((await service.list('section')).map((s) => [s.id, s]));
    const results = (await service.list('rule'))
      .filter((r) => {
        const sk = sections.get(r.parent)?.body.key_policy_identifier;
        return r.body.action !== 'ALLOW_IN_CLEAR' && (sk ? sk === req.params.id : r.body.key_policy_identifier === req.params.id);
      })
      .sort((a, b) => (sections.get(a.parent)!.pos - sections.get(b.parent)!.pos) || a.pos - b.pos)
      .map(toResponse);
    return { results, result_count: results.length };
  });

  // ---------------------------------------------------------- sections
  const sectionOut = (o: StoredObject, counts: Map<string, number>): Wire => ({ ...toResponse(o), rule_count: counts.get(o.id) ?? 0 });
  const tags = ['sections'];
  app.get('/sections', { schema: { tags, summary: 'Sections in match order', response: { 200: SectionList } } }, async () => {
    const counts = await service.ruleCounts();
    const results = (await service.list('section')).map((s) => sectionOut(s, counts));
    return { results, result_count: results.length };
  });
  app.post(
    '/sections',
    {
      schema: {
        tags,
        summary: 'Create a section at ?operation=insert_top|insert_bottom|insert_after|insert_before&id=SIBLING; ?action=create_with_rules also creates its rules',
        querystring: OrderQuery,
        body: SectionWithRulesCreate,
        response: { 201: Type.Union([SectionWithRulesResponse, SectionResponse]), ...errorResponses(400, 404, 409) },
      },
    },
    async (req, reply) => {
      const q = req.query;
      if (q.action === 'revise') throw httpError('badRequest', 'querystring/action=revise applies to an existing section: POST /sections/{id}?action=revise');
      const body = req.body as Obj & { rules: Obj[] };
      const place = { operation: q.operation, id: q.id };
      if (q.action === 'create_with_rules') {
        const r = await service.createSectionWithRules(req.principal!.actor, body, place);
        return reply.status(201).send({ ...toResponse(r.section), rule_count: r.rules.length, rules: r.rules.map(toResponse) });
      }
      if (body.rules.length) throw httpError('badRequest', 'body/rules is accepted only with ?action=create_with_rules');
      const { rules: _rules, ...rest } = body;
      const o = await service.create(req.principal!.actor, 'section', rest, { place });
      return reply.status(201).send({ ...toResponse(o), rule_count: 0 });
    },
  );
  app.get('/sections/:sid', { schema: { tags, params: SectionParams, response: { 200: SectionResponse, ...errorResponses(404) } } }, async (req) =>
    sectionOut(await service.get('section', req.params.sid), await service.ruleCounts()),
  );
  app.put(
    '/sections/:sid',
    { schema: { tags, summary: 'Replace a section\'s own fields (enable/disable, key policy, applied_tos); its rules stay', params: SectionParams, body: SectionRes.update, response: { 200: SectionResponse, ...errorResponses(400, 404, 409) } } },
    async (req) => sectionOut(await service.update(req.principal!.actor, 'section', req.params.sid, req.body as Obj), await service.ruleCounts()),
  );
  app.delete('/sections/:sid', { schema: { tags, summary: 'Delete a section and its rules', params: SectionParams, response: { 204: { type: 'null' }, ...errorResponses(404) } } }, async (req, reply) => {
    await service.remove(req.principal!.actor, 'section', req.params.sid);
    return reply.status(204).send();
  });
  app.post(
    '/sections/:sid',
    { schema: { tags, summary: 'action=revise: move the section (operation, id)', params: SectionParams, querystring: OrderQuery, response: { 200: SectionResponse, ...errorResponses(400, 404) } } },
    async (req) => {
      if (req.query.action !== 'revise') throw httpError('badRequest', 'querystring/action must be revise');
      const o = await service.revise(req.principal!.actor, 'section', req.params.sid, { operation: req.query.operation, id: req.query.id });
      return sectionOut(o, await service.ruleCounts());
    },
  );
  app.get('/sections/:sid/stats', { schema: { tags, summary: 'Rule counters of the section, summed over hosts', params: SectionParams, response: { 200: SectionStats, ...errorResponses(404) } } }, async (req) => {
    const rules = await service.list('rule', req.params.sid);
    return sectionStats(await service.statsReports(), req.params.sid, rules.map((r) => r.id));
  });

  // ---------------------------------------------------------- rules
  const rtags = ['rules'];
  app.get('/sections/:sid/rules', { schema: { tags: rtags, summary: 'Rules of a section in match order', params: SectionParams, response: { 200: RuleList, ...errorResponses(404) } } }, async (req) => {
    const results = (await service.list('rule', req.params.sid)).map(toResponse);
    return { results, result_count: results.length };
  });
  app.post(
    '/sections/:sid/rules',
    { schema: { tags: rtags, summary: 'Create a rule at ?operation=...&id=SIBLING (default: bottom)', params: SectionParams, querystring: OrderQuery, body: RuleRes.create, response: { 201: RuleResponse, ...errorResponses(400, 404, 409) } } },
    async (req, reply) => {
      if (req.query.action !== undefined) throw httpError('badRequest', 'querystring/action is not accepted when creating a rule');
      const o = await service.create(req.principal!.actor, 'rule', req.body as Obj, { parent: req.params.sid, place: { operation: req.query.operation, id: req.query.id } });
      return reply.status(201).send(toResponse(o));
    },
  );
  app.get('/sections/:sid/rules/:rid', { schema: { tags: rtags, params: SectionRuleParams, response: { 200: RuleResponse, ...errorResponses(404) } } }, async (req) => {
    const o = await service.get('rule', req.params.rid);
    if (o.parent !== req.params.sid) throw httpError('notFound', `rule "${req.params.rid}" does not exist in section "${req.params.sid}"`);
    return toResponse(o);
  });
  app.put(
    '/sections/:sid/rules/:rid',
    { schema: { tags: rtags, params: SectionRuleParams, body: RuleRes.update, response: { 200: RuleResponse, ...errorResponses(400, 404, 409) } } },
    async (req) => toResponse(await service.update(req.principal!.actor, 'rule', req.params.rid, req.body as Obj, { parent: req.params.sid })),
  );
  app.delete('/sections/:sid/rules/:rid', { schema: { tags: rtags, params: SectionRuleParams, response: { 204: { type: 'null' }, ...errorResponses(404) } } }, async (req, reply) => {
    await service.remove(req.principal!.actor, 'rule', req.params.rid, { parent: req.params.sid });
    return reply.status(204).send();
  });
  app.post(
    '/sections/:sid/rules/:rid',
    { schema: { tags: rtags, summary: 'action=revise: move the rule within its section (operation, id)', params: SectionRuleParams, querystring: OrderQuery, response: { 200: RuleResponse, ...errorResponses(400, 404) } } },
    async (req) => {
      if (req.query.action !== 'revise') throw httpError('badRequest', 'querystring/action must be revise');
      return toResponse(await service.revise(req.principal!.actor, 'rule', req.params.rid, { operation: req.query.operation, id: req.query.id }, req.params.sid));
    },
  );
  app.get('/sections/:sid/rules/:rid/stats', { schema: { tags: rtags, summary: 'Rule counters summed over hosts, with a per-host breakdown', params: SectionRuleParams, response: { 200: RuleStats, ...errorResponses(404) } } }, async (req) => {
    const o = await service.get('rule', req.params.rid);
    if (o.parent !== req.params.sid) throw httpError('notFound', `rule "${req.params.rid}" does not exist in section "${req.params.sid}"`);
    return ruleStats(await service.statsReports(), req.params.sid, req.params.rid);
  });

  // ---------------------------------------------------------- global config
  app.get('/config', { schema: { tags: ['config'], summary: 'Global settings (draft): rekey margin, default action for no match', response: { 200: ConfigResponse } } }, async () => {
    const o = await service.getConfig();
    return { _create_time: '', _create_user: '', _last_modified_time: '', _last_modified_user: '', ...toResponse(o) };
  });
  app.put('/config', { schema: { tags: ['config'], body: ConfigBody, response: { 200: ConfigResponse, ...errorResponses(400, 409) } } }, async (req) =>
    toResponse(await service.update(req.principal!.actor, 'config', 'global', req.body as Obj)),
  );
}
