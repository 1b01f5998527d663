/**
 * The manager over real HTTPS: who may call what (admin certificate or
 * token, host, controller), the agent routes (inventory, stats) and the
 * controller feed (long-poll, revision/rotate/revoke events), statistics
 * aggregated per key policy and per rule across hosts and agent restarts.
 */
import type { FeedResponse, InventoryReport, StatsReport } from '../../ts/common/contracts';
import { MANAGER_API } from '../../ts/common/contracts';
import type { ManagerApp } from '../../ts/manager/app';
import { client, closeAgents, makePki, TestPki } from '../keymanager/helpers';
import { harness, Harness, ok, ref, seed, TOKEN, vnic } from './helpers';

let pki: TestPki;
let h: Harness;
let app: ManagerApp;
let port: number;
const A = MANAGER_API;

beforeAll(async () => {
  pki = await makePki();
  h = await harness({ tls: { cert: pki.creds['manager/m1']!.cert, key: pki.creds['manager/m1']!.key, ca: pki.ca } });
  app = h.app;
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  port = typeof addr === 'object' && addr ? addr.port : 0;
}, 60_000);
afterAll(async () => {
  closeAgents();
  await h.close();
});

const as = (who: string | null) => client(port, pki, who);
const bearer = { authorization: `Bearer ${TOKEN}` };

const inventory = (workloads: InventoryReport['workloads']): InventoryReport => ({ display_name: 'host one', workloads });

test('role matrix', async () => {
  const admin = as('admin/ops');
  const host = as('host/h1');
  const ctl = as('controller/c1');
  const anon = as(null);
  expect((await admin('GET', `${A}/sections`)).status).toBe(200);
  expect((await anon('GET', `${A}/sections`, undefined, bearer)).status).toBe(200);

  const r1 = await host('GET', `${A}/sections`);
  expect(r1.status).toBe(403);
  expect(r1.body.message).toBe(`dne://host/h1 (role host) may not GET ${A}/sections: it needs an admin`);
  const r2 = await ctl('POST', `${A}/publish`, {});
  expect(r2.status).toBe(403);
  expect(r2.body.message).toBe(`dne://controller/c1 (role controller) may not POST ${A}/publish: it needs an admin`);
  expect((await ctl('GET', `${A}/status`)).status).toBe(200);
  expect((await host('GET', `${A}/status`)).status).toBe(403);
  expect((await ctl('GET', `${A}/internal/controller-feed?wait=0`)).status).toBe(200);
  const r3 = await admin('GET', `${A}/internal/controller-feed?wait=0`);
  expect(r3.status).toBe(403);
  expect(r3.body.message).toMatch(/it needs a controller$/);
  const r4 = await host('PUT', `${A}/agent/hosts/h2/inventory`, inventory([]));
  expect(r4.status).toBe(403);
  expect(r4.body.message).toBe('dne://host/h1 may only report for host "h1", not "h2"');
  expect((await admin('PUT', `${A}/agent/hosts/h1/inventory`, inventory([]))).status).toBe(403);

  const foreign = await as('foreign/h1')('GET', `${A}/sections`);
  expect(foreign.status).toBe(401);
  expect(foreign.body.message).toMatch(/^client certificate not verified/);
  const noid = await as('noid/x')('GET', `${A}/sections`);
  expect(noid.status).toBe(403);
  expect(noid.body.message).toBe('client certificate refused: the certificate carries no dne:// URI SAN');
  const none = await anon('GET', `${A}/sections`);
  expect(none.status).toBe(401);
  // A certificate that does not verify is refused even with a valid token.
  expect((await as('foreign/h1')('GET', `${A}/sections`, undefined, bearer)).status).toBe(401);
  // The audit log names certificate admins by their identity.
  ok(await admin('POST', `${A}/ip-sets`, { id: 'by-cert', display_name: 'x', ip_addresses: [] }), 201);
  const audit = ok(await admin('GET', `${A}/audit?limit=1000`)).results;
  expect(audit.find((e: { object_id: string }) => e.object_id === 'by-cert').actor).toBe('dne://admin/ops');
});

test('agents report inventory; only admin tags count for membership; changes reach controllers through the feed', async () => {
  const admin = as('admin/ops');
  const h1 = as('host/h1');
  const h2 = as('host/h2');
  const ctl = as('controller/c1');
  await seed(h);
  ok(await h.req('POST', '/sections', { id: 'agents', display_name: 'agents' }), 201);
  ok(await h.req('POST', '/sections/agents/rules', { id: 'web-db', display_name: 'web to db', sources: [ref('NSGroup', 'web')], destinations: [ref('NSGroup', 'db')], action: 'ENCRYPT' }), 201);

  const rep = ok(await h1('PUT', `${A}/agent/hosts/h1/inventory`, inventory([{ id: 'a1', display_name: 'a1', vnics: [vnic('a1-n0', ['10.0.5.1'])], tags: [{ scope: 'os', tag: 'linux' }] }, ...existing('h1')])));
  expect(rep).toMatchObject({ id: 'h1', display_name: 'host one', auto_published_revision: null });
  expect(rep.workload_ids).toContain('a1');
  // A host may not report another host's workload.
  const stolen = await h2('PUT', `${A}/agent/hosts/h2/inventory`, inventory([{ id: 'a1', display_name: 'a1', vnics: [], tags: [] }]));
  expect(stolen.status).toBe(409);
  expect(stolen.body.message).toBe('body/workloads/0: workload "a1" belongs to host "h1"; a host reports only its own workloads');

  // The administrator tags a1 into the web tier; the agent's tags stay apart.
  const a1 = ok(await admin('GET', `${A}/workloads/a1`));
  expect(a1.reported_tags).toEqual([{ scope: 'os', tag: 'linux' }]);
  const tagged = ok(await admin('PUT', `${A}/workloads/a1`, { display_name: 'a1', host_id: 'h1', vnics: a1.vnics, tags: [{ scope: 'tier', tag: 'web' }], _revision: a1._revision }));
  expect(tagged).toMatchObject({ tags: [{ scope: 'tier', tag: 'web' }], reported_tags: [{ scope: 'os', tag: 'linux' }] });

  const pub = ok(await admin('POST', `${A}/publish`, {}), 201);
  const rev = ok(await admin('GET', `${A}/revisions/${pub.revision}`));
  // Membership takes the administrator's tags only (reported ones: trustedReportedTagScopes).
  expect(rev.workloads.find((w: { id: string }) => w.id === 'a1').tags).toEqual([{ scope: 'tier', tag: 'web' }]);
  const first: FeedResponse = ok(await ctl('GET', `${A}/internal/controller-feed?after=0&wait=0`));
  const seq = first.latest_seq;
  expect(first.events[first.events.length - 1]).toMatchObject({ type: 'revision', revision: { revision: pub.revision } });

  // A long-poll waiting for the next event is answered by an agent's inventory change.
  const started = Date.now();
  const poll = ctl('GET', `${A}/internal/controller-feed?after=${seq}&wait=20`);
  await new Promise((r) => setTimeout(r, 300));
  // The same report again changes nothing and publishes nothing.
  const again = ok(await h1('PUT', `${A}/agent/hosts/h1/inventory`, inventory([{ id: 'a1', display_name: 'a1', vnics: [vnic('a1-n0', ['10.0.5.1'])], tags: [{ scope: 'os', tag: 'linux' }] }, ...existing('h1')])));
  expect(again.auto_published_revision).toBeNull();
  const moved = ok(await h1('PUT', `${A}/agent/hosts/h1/inventory`, inventory([{ id: 'a1', display_name: 'a1', vnics: [vnic('a1-n0', ['10.0.5.9'])], tags: [{ scope: 'os', tag: 'linux' }] }, ...existing('h1')])));
  expect(moved.auto_published_revision).toBe(pub.revision + 1);
  const got = await poll;
  expect(Date.now() - started).toBeLessThan(15_000);
  expect(got.body.events).toHaveLength(1);
  expect(got.body.events[0]).toMatchObject({ seq: seq + 1, type: 'revision', revision: { revision: pub.revision + 1 } });
  const a1v = got.body.events[0].revision.workloads.find((w: { id: string }) => w.id === 'a1');
  expect(a1v.vnics[0].ipv4).toEqual(['10.0.5.9']);

  // Key policy actions: 202, a feed event, an audit entry; no key material anywhere.
  const rot = await admin('POST', `${A}/key-policies/kp-enc?action=rotate`);
  expect(rot.status).toBe(202);
  expect(rot.body).toMatchObject({ key_policy_id: 'kp-enc', action: 'rotate', status: 'accepted' });
  const rev2 = await admin('POST', `${A}/key-policies/kp-enc?action=revoke`, { reason: 'laptop stolen' });
  expect(rev2.status).toBe(202);
  const events: FeedResponse = ok(await ctl('GET', `${A}/internal/controller-feed?after=${seq + 1}&wait=0`));
  expect(events.events).toEqual([
    expect.objectContaining({ type: 'rotate', key_policy_id: 'kp-enc', requested_by: 'dne://admin/ops' }),
    expect.objectContaining({ type: 'revoke', key_policy_id: 'kp-enc', requested_by: 'dne://admin/ops', reason: 'laptop stolen' }),
  ]);
  // limit cuts the list; latest_seq says more exist.
  const one: FeedResponse = ok(await ctl('GET', `${A}/internal/controller-feed?after=0&wait=0&limit=1`));
  expect(one.events).toHaveLength(1);
  expect(one.latest_seq).toBe(seq + 3);
  const bad = await ctl('GET', `${A}/internal/controller-feed?wait=61`);
  expect(bad.status).toBe(400);
  expect(bad.body.message).toBe('querystring/wait must be <= 60');
}, 60_000);

/** What the seed created on a host, as its agent would report it (so a report does not delete them). */
function existing(host: string): InventoryReport['workloads'] {
  const all: Record<string, InventoryReport['workloads']> = {
    h1: [{ id: 'web1', display_name: 'web 1', vnics: [vnic('web1-n0', ['10.0.0.1'])], tags: [] }],
  };
  return all[host] ?? [];
}

test('statistics are summed per key policy and per rule across hosts and agent restarts', async () => {
  const h1 = as('host/h1');
  const h2 = as('host/h2');
  const admin = as('admin/ops');
  const kp = (n: number, reasons: Record<string, number>) => ({
    key_policy_id: 'kp-enc',
    packets_encrypted: n,
    bytes_encrypted: n * 100,
    packets_decrypted: n * 2,
    bytes_decrypted: n * 200,
    packets_dropped: Object.values(reasons).reduce((a, b) => a + b, 0),
    dropped_by_reason: reasons,
  });
  const report = (boot: string, at: string, n: number, reasons: Record<string, number>): StatsReport => ({
    boot_id: boot,
    at,
    config_version: 3,
    revision: 1,
    rules: [{ rule_id: 'web-db', packets_in: n, bytes_in: n * 10, packets_out: n * 3, bytes_out: n * 30 }],
    key_policies: [kp(n, reasons)],
    drops: { no_sa: 1 },
  });
  expect((await h1('POST', `${A}/agent/hosts/h1/stats`, report('boot-a', '2030-01-01T00:00:00Z', 5, { replay: 1 }))).status).toBe(204);
  // A later report of the same boot replaces the earlier one (counters are cumulative).
  expect((await h1('POST', `${A}/agent/hosts/h1/stats`, report('boot-a', '2030-01-01T00:01:00Z', 10, { replay: 2 }))).status).toBe(204);
  // After a restart (new boot id) both boots count.
  expect((await h1('POST', `${A}/agent/hosts/h1/stats`, report('boot-b', '2030-01-01T00:02:00Z', 1, { icv_failure: 1 }))).status).toBe(204);
  expect((await h2('POST', `${A}/agent/hosts/h2/stats`, report('boot-c', '2030-01-01T00:00:30Z', 100, {}))).status).toBe(204);
  const wrong = await h2('POST', `${A}/agent/hosts/h1/stats`, report('boot-x', '2030-01-01T00:00:00Z', 1, {}));
  expect(wrong.status).toBe(403);

  const s = ok(await admin('GET', `${A}/key-policies/kp-enc/stats`));
  expect(s).toMatchObject({ key_policy_id: 'kp-enc', packets_encrypted: 111, bytes_encrypted: 11100, packets_decrypted: 222, packets_dropped: 3, dropped_by_reason: { replay: 2, icv_failure: 1 } });
  expect(s.per_host).toEqual([
    expect.objectContaining({ host_id: 'h1', packets_encrypted: 11, last_report: '2030-01-01T00:02:00Z', dropped_by_reason: { replay: 2, icv_failure: 1 } }),
    expect.objectContaining({ host_id: 'h2', packets_encrypted: 100, dropped_by_reason: {} }),
  ]);
  const r = ok(await admin('GET', `${A}/sections/agents/rules/web-db/stats`));
  expect(r).toMatchObject({ rule_id: 'web-db', section_id: 'agents', packets_in: 111, bytes_in: 1110, packets_out: 333, bytes_out: 3330 });
  expect(r.per_host.map((x: { host_id: string; packets_in: number }) => [x.host_id, x.packets_in])).toEqual([
    ['h1', 11],
    ['h2', 100],
  ]);
  const sec = ok(await admin('GET', `${A}/sections/agents/stats`));
  expect(sec).toMatchObject({ section_id: 'agents', packets_in: 111, rules: [expect.objectContaining({ rule_id: 'web-db' })] });
  expect((await admin('GET', `${A}/key-policies/nope/stats`)).status).toBe(404);
  expect(ok(await admin('GET', `${A}/status`)).hosts_reporting_stats).toBe(2);
  const badAt = await h1('POST', `${A}/agent/hosts/h1/stats`, { ...report('boot-a', '2030-01-01T00:00:00Z', 1, {}), at: 'yesterday' });
  expect(badAt.status).toBe(400);
  expect(badAt.body.message).toBe('body/at must be an RFC 3339 date-time with time zone (e.g. 2030-01-01T00:00:00Z)');
});
