/**
 * Create/read/update/delete/list for one object kind, NSX style:
 * `GET /things` → {results, result_count}, `POST /things` → 201,
 * `GET|PUT|DELETE /things/{id}`; a PUT carries the `_revision` it read and a
 * stale one is 409.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { TObject } from '@sinclair/typebox';
import { errorResponses, IdParams } from '../schemas';
import type { Obj, Wire } from '../service';
import { ManagerService, toResponse } from '../service';
import type { ObjectKind, StoredObject } from '../store';

export type Api = FastifyInstance;

export function typed(api: FastifyInstance) {
  return api.withTypeProvider<TypeBoxTypeProvider>();
}

export interface CrudSpec {
  path: string;
  kind: Exclude<ObjectKind, 'config' | 'rule' | 'section'>;
  tag: string;
  create: TObject;
  update: TObject;
  response: TObject;
  list: TObject;
  out?: (o: StoredObject) => Wire;
}

export function registerCrud(api: Api, service: ManagerService, s: CrudSpec): void {
  const app = typed(api);
  const out = s.out ?? toResponse;
  const tags = [s.tag];
  app.get(s.path, { schema: { tags, summary: `List ${s.tag}`, response: { 200: s.list } } }, async () => {
    const results = (await service.list(s.kind)).map(out);
    return { results, result_count: results.length };
  });
  app.post(s.path, { schema: { tags, summary: `Create a ${s.tag} object`, body: s.create, response: { 201: s.response, ...errorResponses(400, 409) } } }, async (req, reply) => {
    const o = await service.create(req.principal!.actor, s.kind, req.body as Obj);
    return reply.status(201).send(out(o));
  });
  app.get(`${s.path}/:id`, { schema: { tags, summary: `Read a ${s.tag} object`, params: IdParams, response: { 200: s.response, ...errorResponses(404) } } }, async (req) =>
    out(await service.get(s.kind, req.params.id)),
  );
  app.put(
    `${s.path}/:id`,
    { schema: { tags, summary: `Replace a ${s.tag} object (send the _revision you read)`, params: IdParams, body: s.update, response: { 200: s.response, ...errorResponses(400, 404, 409) } } },
    async (req) => out(await service.update(req.principal!.actor, s.kind, req.params.id, req.body as Obj)),
  );
  app.delete(`${s.path}/:id`, { schema: { tags, summary: `Delete a ${s.tag} object`, params: IdParams, response: { 204: { type: 'null' }, ...errorResponses(404, 409) } } }, async (req, reply) => {
    await service.remove(req.principal!.actor, s.kind, req.params.id);
    return reply.status(204).send();
  });
}
