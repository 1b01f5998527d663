/**
 * What a host's agent can and cannot do to the policy through its inventory
 * report (security review, DESIGN §2 "agents report the workloads of their
 * host; the administrator tags them"):
 *  - reported tags do not make group members, unless the operator trusts
 *    their scope (trustedReportedTagScopes);
 *  - an address belongs to one workload: a host cannot claim a neighbour's IP;
 *  - a host cannot take over a workload the administrator created on another host.
 * Admin calls go through app.inject (bearer token); host calls need a host
 * certificate, so the app also listens on HTTPS for them.
 */
import type { InventoryReport } from '../../ts/common/contracts';
import { MANAGER_API } from '../../ts/common/contracts';
import type { Revision } from '../../ts/common/policy-model';
import { client, closeAgents, makePki, TestPki } from '../keymanager/helpers';
import { harness, Harness, HarnessOptions, ok, ref, seed, storeDigest, vnic } from './helpers';

const A = MANAGER_API;
let pki: TestPki;
const open: Harness[] = [];

beforeAll(async () => {
  pki = await makePki();
}, 60_000);
afterAll(async () => {
  closeAgents();
  for (const h of open) await h.close();
});

/** A seeded manager with rule web -> db (ENCRYPT) published, listening on HTTPS for agents. */
async function estate(o: HarnessOptions = {}) {
  const h = await harness({ ...o, tls: { cert: pki.creds['manager/m1']!.cert, key: pki.creds['manager/m1']!.key, ca: pki.ca } });
  open.push(h);
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = h.app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  await seed(h);
  ok(await h.req('POST', '/sections', { id: 's', display_name: 's' }), 201);
  ok(await h.req('POST', '/sections/s/rules', { id: 'web-db', display_name: 'web to db', sources: [ref('NSGroup', 'web')], destinations: [ref('NSGroup', 'db')], action: 'ENCRYPT' }), 201);
  ok(await h.req('POST', '/publish', {}), 201);
  const h1 = client(port, pki, 'host/h1');
  /** Host h1's agent: reports its seeded workload web1 and whatever else it is given. */
  const report = (workloads: InventoryReport['workloads']) => h1('PUT', `${A}/agent/hosts/h1/inventory`, { display_name: 'host 1', workloads: [web1, ...workloads] });
  return { h, report };
}

const dbTag = [{ scope: 'tier', tag: 'db' }];
const web1 = { id: 'web1', display_name: 'web 1', vnics: [vnic('web1-n0', ['10.0.0.1'])], tags: [] };

test('a host cannot join a tag-based group by reporting the tag itself', async () => {
  const { h, report } = await estate();
  const rep = ok(await report([{ id: 'evil-1', display_name: 'evil', vnics: [vnic('evil-1-n0', ['10.0.9.9'])], tags: dbTag }]));
  // Stored and shown, but not a membership tag.
  const w = ok(await h.req('GET', '/workloads/evil-1'));
  expect(w).toMatchObject({ tags: [], reported_tags: dbTag });
  const rev = ok<Revision>(await h.req('GET', `/revisions/${rep.auto_published_revision}`));
  expect(rev.workloads.find((x) => x.id === 'evil-1')!.tags).toEqual([]);
  // No rule applies at the workload: it is in no group, so no host gets a key for it.
  const v = ok(await h.req('POST', '/explain', { workload_id: 'evil-1', source_ip: '10.0.0.1', destination_ip: '10.0.9.9', protocol: 'TCP', destination_port: 443, revision: rep.auto_published_revision }));
  expect(v).toMatchObject({ matched: false, rule_id: null, action: 'ALLOW_IN_CLEAR' });

  // The administrator's tag does make it a member.
  ok(await h.req('PUT', '/workloads/evil-1', { display_name: 'evil', host_id: 'h1', vnics: w.vnics, tags: dbTag, _revision: w._revision }));
  const st = ok(await h.req('GET', '/status'));
  const v2 = ok(await h.req('POST', '/explain', { workload_id: 'evil-1', source_ip: '10.0.0.1', destination_ip: '10.0.9.9', protocol: 'TCP', destination_port: 443, revision: st.latest_revision }));
  expect(v2).toMatchObject({ matched: true, rule_id: 'web-db', action: 'ENCRYPT' });
}, 60_000);

test('reported tags of a trusted scope count for membership; other scopes still do not', async () => {
  const { h, report } = await estate({ trustedReportedTagScopes: ['tier'] });
  const rep = ok(await report([
    { id: 'db-7', display_name: 'db 7', vnics: [vnic('db-7-n0', ['10.0.9.7'])], tags: [...dbTag, { scope: 'os', tag: 'linux' }] },
  ]));
  const rev = ok<Revision>(await h.req('GET', `/revisions/${rep.auto_published_revision}`));
  expect(rev.workloads.find((x) => x.id === 'db-7')!.tags).toEqual(dbTag);
  const v = ok(await h.req('POST', '/explain', { workload_id: 'db-7', source_ip: '10.0.0.1', destination_ip: '10.0.9.7', protocol: 'TCP', destination_port: 443, revision: rep.auto_published_revision }));
  expect(v).toMatchObject({ matched: true, rule_id: 'web-db', action: 'ENCRYPT' });
}, 60_000);

test("a host cannot report an address another workload holds (v4, v6 in any spelling); nothing is stored", async () => {
  const { h, report } = await estate();
    const before = await storeDigest(h);
  const stolen = await report([{ id: 'evil-2', display_name: 'evil', vnics: [vnic('evil-2-n0', ['10.0.1.1'])], tags: [] }]);
  expect(stolen.status).toBe(409);
  expect(stolen.body.message).toBe('body/workloads: address 10.0.1.1 of workload "evil-2" already belongs to workload "db1" on host "h2"; an address belongs to one workload');
  const v6 = await report([{ id: 'evil-2', display_name: 'evil', vnics: [vnic('evil-2-n0', [], ['fd00:0:0::0011'])], tags: [] }]);
  expect(v6.status).toBe(409);
  expect(v6.body.message).toMatch(/address fd00:0:0::0011 of workload "evil-2" already belongs to workload "db1"/);
  const mapped = await report([{ id: 'evil-2', display_name: 'evil', vnics: [vnic('evil-2-n0', [], ['::ffff:10.0.0.2'])], tags: [] }]);
  expect(mapped.status).toBe(409);
  expect(mapped.body.message).toMatch(/already belongs to workload "web2"/);
  // Two workloads of one report with one address.
  const twice = await report([
    { id: 'x1', display_name: 'x1', vnics: [vnic('x1-n0', ['10.0.9.1'])], tags: [] },
    { id: 'x2', display_name: 'x2', vnics: [vnic('x2-n0', ['10.0.9.1'])], tags: [] },
  ]);
  expect(twice.status).toBe(409);
  expect(twice.body.message).toBe('body/workloads: address 10.0.9.1 is given to both workload "x1" and workload "x2"');
  expect(await storeDigest(h)).toBe(before);
  // A host re-reporting its own workloads' addresses is fine, also moved to another of its workloads.
  ok(await report([]));
}, 60_000);

test('an administrator cannot give a workload an address another workload holds', async () => {
  const { h } = await estate();
  const before = await storeDigest(h);
  const c = await h.req('POST', '/workloads', { id: 'w9', display_name: 'w9', host_id: 'h1', vnics: [vnic('w9-n0', ['10.0.0.1'])] });
  expect(c.status).toBe(409);
  expect(c.body.message).toBe('body/vnics: address 10.0.0.1 of workload "w9" already belongs to workload "web1" on host "h1"; an address belongs to one workload');
  const web2 = ok(await h.req('GET', '/workloads/web2'));
  const u = await h.req('PUT', '/workloads/web2', { display_name: 'web 2', host_id: 'h2', vnics: [vnic('web2-n0', ['10.0.0.2'], ['FD00::11'])], tags: web2.tags, _revision: web2._revision });
  expect(u.status).toBe(409);
  expect(u.body.message).toMatch(/address FD00::11 of workload "web2" already belongs to workload "db1"/);
  expect(await storeDigest(h)).toBe(before);
  // Keeping its own address on update is fine.
  ok(await h.req('PUT', '/workloads/web2', { display_name: 'web two', host_id: 'h2', vnics: web2.vnics, tags: web2.tags, _revision: web2._revision }));
}, 60_000);

test("a host cannot claim a workload the administrator created for another host", async () => {
  const { h, report } = await estate();
  ok(await h.req('POST', '/workloads', { id: 'adm1', display_name: 'adm1', host_id: 'h2', vnics: [vnic('adm1-n0', ['10.0.7.1'])], tags: dbTag }), 201);
  const before = await storeDigest(h);
  const r = await report([{ id: 'adm1', display_name: 'adm1', vnics: [vnic('adm1-n9', ['10.0.9.1'])], tags: [] }]);
  expect(r.status).toBe(409);
  expect(r.body.message).toBe('body/workloads/1: workload "adm1" belongs to host "h2"; a host reports only its own workloads');
  expect(await storeDigest(h)).toBe(before);
  expect(ok(await h.req('GET', '/workloads/adm1'))).toMatchObject({ host_id: 'h2', tags: dbTag });
}, 60_000);
