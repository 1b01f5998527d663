/**
 * Inventory auto-publish is paced (security review: 100 alternating agent
 * reports made 100 revisions in 0.5 s): at most one auto-publish per
 * autoPublishMinIntervalSeconds, changes in between coalesced into the next
 * one, the last state winning; `status` shows the pending one. Host reports
 * need a host certificate, so the app listens on HTTPS for them; admin calls
 * go through app.inject.
 */
import type { InventoryReport } from '../../ts/common/contracts';
import { MANAGER_API } from '../../ts/common/contracts';
import type { Revision } from '../../ts/common/policy-model';
import { SqliteManagerStore } from '../../ts/manager/sqlite-store';
import { client, closeAgents, makePki, TestPki } from '../keymanager/helpers';
import { harness, Harness, HarnessOptions, ok, tmpDir, vnic } from './helpers';
import * as path from 'node:path';

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

async function manager(o: HarnessOptions) {
  const h = await harness({ ...o, tls: { cert: pki.creds['manager/m1']!.cert, key: pki.creds['manager/m1']!.key, ca: pki.ca } });
  open.push(h);
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = h.app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const h1 = client(port, pki, 'host/h1');
  /** h1's agent reporting one workload a1 at `ip`. */
  const report = async (ip: string) => {
    const workloads: InventoryReport['workloads'] = [{ id: 'a1', display_name: 'a1', vnics: [vnic('a1-n0', [ip])], tags: [] }];
    return ok(await h1('PUT', `${A}/agent/hosts/h1/inventory`, { display_name: 'host 1', workloads }));
  };
  return { h, report };
}

async function publishFirstPolicy(h: Harness) {
  ok(await h.req('POST', '/key-policies', { id: 'kp', display_name: 'kp', is_default: true }), 201);
  ok(await h.req('POST', '/groups', { id: 'g', display_name: 'g', workload_ids: ['a1'] }), 201);
  ok(await h.req('POST', '/sections', { id: 's', display_name: 's' }), 201);
  ok(await h.req('POST', '/sections/s/rules', { id: 'r', display_name: 'r', sources: [{ target_type: 'NSGroup', target_id: 'g' }], action: 'ENCRYPT' }), 201);
  return ok(await h.req('POST', '/publish', {}), 201).revision as number;
}

const a1Address = (rev: Revision) => rev.workloads.find((w) => w.id === 'a1')!.vnics[0]!.ipv4[0];

test('100 alternating reports make one immediate auto-publish and one coalesced one with the last state (injected clock)', async () => {
  let clock = Date.parse('2030-01-01T00:00:00Z');
  const { h, report } = await manager({ autoPublishMinIntervalSeconds: 60, now: () => new Date(clock) });
  // Agents report before anything is published: nothing is pending, the first publish takes the inventory.
  await report('10.0.5.1');
  expect(ok(await h.req('GET', '/status')).auto_publish_pending).toBeNull();
  const first = await publishFirstPolicy(h);
  expect(a1Address(ok(await h.req('GET', `/revisions/${first}`)))).toBe('10.0.5.1');

  const answers: Array<number | null> = [];
  for (let i = 0; i < 100; i++) answers.push((await report(i % 2 ? '10.0.5.1' : '10.0.5.2')).auto_published_revision);
  // The first change after a quiet interval publishes at once; the other 99 wait.
  expect(answers[0]).toBe(first + 1);
  expect(answers.slice(1).every((a) => a === null)).toBe(true);
  let st = ok(await h.req('GET', '/status'));
  expect(st).toMatchObject({ latest_revision: first + 1, auto_publish_min_interval_seconds: 60 });
  expect(st.auto_publish_pending).toEqual({ since: '2030-01-01T00:00:00.000Z', due_at: '2030-01-01T00:01:00.000Z' });
  expect(ok(await h.req('GET', '/revisions')).result_count).toBe(first + 1);

  // The timer's work, run now: one revision, the last reported state (i = 99: 10.0.5.1).
  clock += 60_000;
  const coalesced = await h.app.managerService.runPendingAutoPublish();
  expect(coalesced).toBe(first + 2);
  expect(a1Address(ok(await h.req('GET', `/revisions/${first + 2}`)))).toBe('10.0.5.1');
  st = ok(await h.req('GET', '/status'));
  expect(st).toMatchObject({ latest_revision: first + 2, auto_publish_pending: null, last_auto_publish: { outcome: 'published', revision: first + 2 } });
  const audit = ok(await h.req('GET', '/audit?limit=1000')).results;
  expect(audit[audit.length - 1]).toMatchObject({ action: 'auto-publish', object_id: String(first + 2), actor: 'dne://host/h1', detail: { changes_by: ['dne://host/h1'] } });
  // A report that changes nothing marks nothing.
  await report('10.0.5.1');
  expect(ok(await h.req('GET', '/status')).auto_publish_pending).toBeNull();
}, 60_000);

test('the timer publishes the pending change by itself', async () => {
  const { h, report } = await manager({ autoPublishMinIntervalSeconds: 0.3 });
  await report('10.0.6.1');
  const first = await publishFirstPolicy(h);
  expect((await report('10.0.6.2')).auto_published_revision).toBe(first + 1);
  expect((await report('10.0.6.3')).auto_published_revision).toBeNull();
  const end = Date.now() + 10_000;
  let st = ok(await h.req('GET', '/status'));
  while (st.auto_publish_pending !== null && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    st = ok(await h.req('GET', '/status'));
  }
  expect(st).toMatchObject({ auto_publish_pending: null, latest_revision: first + 2 });
  expect(a1Address(ok(await h.req('GET', `/revisions/${first + 2}`)))).toBe('10.0.6.3');
}, 60_000);

test('an administrator publish takes the pending inventory; a graceful close publishes what is still pending', async () => {
  const dbFile = path.join(tmpDir('pacing'), 'manager.db');
  const clock = Date.parse('2030-01-01T00:00:00Z');
  const { h, report } = await manager({ dbFile, autoPublishMinIntervalSeconds: 60, now: () => new Date(clock) });
  await report('10.0.7.1');
  const first = await publishFirstPolicy(h);
  await report('10.0.7.2'); // published at once
  await report('10.0.7.3'); // pending
  const pub = ok(await h.req('POST', '/publish', {}), 201);
  expect(a1Address(ok(await h.req('GET', `/revisions/${pub.revision}`)))).toBe('10.0.7.3');
  expect(ok(await h.req('GET', '/status')).auto_publish_pending).toBeNull();
  expect(await h.app.managerService.runPendingAutoPublish()).toBeNull(); // nothing left to do

  await report('10.0.7.4'); // pending (inside the interval)
  expect(ok(await h.req('GET', '/status')).latest_revision).toBe(pub.revision);
  await h.close();
  open.splice(open.indexOf(h), 1);
  const store = new SqliteManagerStore(dbFile);
  const last = await store.read((tx) => tx.latestRevision());
  await store.close();
  expect(last!.number).toBe(pub.revision + 1);
  expect(last!.origin).toBe('auto');
  expect(a1Address(JSON.parse(last!.body) as Revision)).toBe('10.0.7.4');
  expect(first).toBe(1);
}, 60_000);
