/**
 * The controller service end to end over mutual TLS (real key manager, a
 * manager feed speaking the contracts.ts protocol, simulated agents):
 * issue #6 acceptance 2 on the served config and grant (checked against the
 * key manager's release), 4 (revocation in one version) and 5 (restart
 * during a rollover), plus access control, bad input, per-host versioning,
 * automatic rotation by frequency and lifetime, and removal after the rekey
 * margin.
 */
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import type { GrantPayload } from '../../ts/common/grant';
import type { KeyManagerApp } from '../../ts/keymanager/app';
import {
  agentFor,
  FeedServer,
  makePki,
  ManualClock,
  NewFeedEvent,
  Pki,
  request,
  RunningController,
  SimAgent,
  silentLogger,
  startController,
  startKm,
  tmpDir,
} from './harness';
import { fleetRevision, hostName } from './fleet';

const N = 6;
const SMALL = 2;
const ACK_TIMEOUT = 60;
const MARGIN = 300;
const created: string[] = [];
let dir: string;
let pki: Pki;
let km: { app: KeyManagerApp; url: string };
let feed: FeedServer;
let ctl: RunningController;
const clock = new ManualClock();
let agents: SimAgent[];
const logLines: string[] = [];
let revNo = 0;
const clients = new Map<string, https.Agent>();

const as = (who: string) => {
  let a = clients.get(who);
  if (!a) clients.set(who, (a = agentFor(pki, who)));
  return a;
};
const kmPort = () => Number(new URL(km.url).port);
const until = async (cond: () => boolean, what: string, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};
/** Pushes an event and waits until the controller has handled it. */
const publish = async (ev: NewFeedEvent) => {
  const e = feed.push(ev);
  await until(() => ctl.service.status().feed_cursor >= e.seq, `feed event ${e.seq}`);
};
const revision = (o: Parameters<typeof fleetRevision>[2] = {}) => fleetRevision(N, ++revNo, { small: SMALL, rekeyMargin: MARGIN, ...o });
const keysOf = (policy: string) => ctl.service.keyRecords().filter((k) => k.policyId === policy);
const settled = () => Promise.all(agents.map((a) => a.waitFor((x) => x.after === ctl.service.latestVersion(x.hostId) && x.timing.get(x.after)?.acked !== undefined)));
const grantPayload = (g: string): GrantPayload => JSON.parse(Buffer.from(g.split('.')[0]!, 'base64url').toString('utf8')) as GrantPayload;

async function startCtl(): Promise<void> {
  ctl = await startController(pki, {
    dbFile: path.join(dir, 'c.db'),
    kmUrl: km.url,
    feedUrl: feed.url,
    clock,
    settings: { ackTimeoutSeconds: ACK_TIMEOUT },
    logger: silentLogger('info', logLines),
  });
}

beforeAll(async () => {
  dir = tmpDir('ctl-svc', created);
  pki = await makePki(path.join(dir, 'pki'), Array.from({ length: N }, (_, i) => hostName(i)));
  km = await startKm(pki, path.join(dir, 'km.db'));
  feed = await FeedServer.start(pki);
  await startCtl();
  agents = Array.from({ length: N }, (_, i) => new SimAgent(hostName(i), pki, ctl.port, 20));
  for (const a of agents) a.start();
  await publish({ type: 'revision', revision: revision() });
  await until(() => keysOf('kp-enc').some((k) => k.phase === 'active') && keysOf('kp-small').some((k) => k.phase === 'active'), 'first keys active');
  await settled();
}, 60_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  for (const a of clients.values()) a.destroy();
  await ctl.close();
  await feed.close();
  await km.app.close();
  for (const d of created) fs.rmSync(d, { recursive: true, force: true });
});

describe('scoping (acceptance 2, served config and grant)', () => {
  test('a host outside a rule\'s scope gets neither the rule, nor its key IDs, nor a grant the key manager honours for them', async () => {
    const [smallKey] = keysOf('kp-small').filter((k) => k.phase === 'active');
    const inside = agents[0]!;
    const outside = agents[N - 1]!;
    const cfgIn = inside.latest!.config;
    const cfgOut = outside.latest!.config;
    expect(cfgIn.rules.map((r) => r.id)).toEqual(['r-small', 'r-all']);
    expect(cfgOut.rules.map((r) => r.id)).toEqual(['r-all']);
    expect(cfgIn.keys.map((k) => k.keyId)).toContain(smallKey!.keyId);
    expect(cfgOut.keys.map((k) => k.keyPolicyId)).toEqual(['kp-enc']);
    expect(JSON.stringify(cfgOut)).not.toContain(smallKey!.keyId);
    for (const a of agents) {
      // The grant names exactly the latest config's keys, for this host.
      const g = grantPayload(a.lastGrant!);
      expect(g.host).toBe(a.hostId);
      expect([...g.keyIds].sort()).toEqual(a.latest!.config.keys.map((k) => k.keyId).sort());
      const r = await request(as(`host/${a.hostId}`), ctl.port, 'GET', `/v1/hosts/${a.hostId}/grant`);
      expect(r.status).toBe(200);
      expect([...r.body.key_ids].sort()).toEqual([...g.keyIds].sort());
      expect(grantPayload(r.body.grant).keyIds.sort()).toEqual([...g.keyIds].sort());
    }
    // The key manager agrees: the inside host gets kp-small's key with its grant, the outside host cannot.
    const okRel = await request(as(`host/${inside.hostId}`), kmPort(), 'POST', '/v1/release', { grant: inside.lastGrant, keyIds: [smallKey!.keyId], count: 1 });
    expect(okRel.status).toBe(200);
    expect(okRel.body.keys[0].keyId).toBe(smallKey!.keyId);
    const noRel = await request(as(`host/${outside.hostId}`), kmPort(), 'POST', '/v1/release', { grant: outside.lastGrant, keyIds: [smallKey!.keyId], count: 1 });
    expect(noRel.status).toBe(403);
    expect(noRel.body.message).toContain(`does not name key ${smallKey!.keyId}`);
    // Nor can it borrow the inside host's grant.
    const stolen = await request(as(`host/${outside.hostId}`), kmPort(), 'POST', '/v1/release', { grant: inside.lastGrant, count: 1 });
    expect(stolen.status).toBe(403);
  });

  test('SPIs are 256 or more and unique per (key, mode)', () => {
    const all = ctl.service.keyRecords().flatMap((k) => [k.spiGcm, k.spiGmac]);
    expect(new Set(all).size).toBe(all.length);
    expect(Math.min(...all)).toBeGreaterThanOrEqual(256);
  });
});

describe('access and input', () => {
  test('a host reads and acks only its own config; only admin and manager read the status', async () => {
    const other = await request(as('host/h0001'), ctl.port, 'GET', '/v1/hosts/h0000/config?wait=0');
    expect(other.status).toBe(403);
    expect(other.body.message).toBe('dne://host/h0001 may only use /v1/hosts/h0001, not /v1/hosts/h0000');
    expect((await request(as('host/h0001'), ctl.port, 'POST', '/v1/hosts/h0000/ack', { version: 1, installed_key_ids: [] })).status).toBe(403);
    expect((await request(as('host/h0001'), ctl.port, 'GET', '/v1/hosts/h0000/grant')).status).toBe(403);
    const admin = await request(as('admin/ops'), ctl.port, 'GET', '/v1/hosts/h0000/config?wait=0');
    expect(admin.status).toBe(403);
    expect(admin.body.message).toContain('needs the role host');
    expect((await request(as('host/h0000'), ctl.port, 'GET', '/v1/status')).status).toBe(403);
    const st = await request(as('admin/ops'), ctl.port, 'GET', '/v1/status');
    expect(st.status).toBe(200);
    expect(st.body.hosts).toHaveLength(N);
    expect((await request(as('manager/m1'), ctl.port, 'GET', '/v1/status')).status).toBe(200);
    // Status never carries key bytes: only ids, SPIs, phases and times.
    expect(Object.keys(st.body.key_policies[0].keys[0]).sort()).toEqual(
      ['activated_at', 'activated_by', 'created_at', 'key_id', 'not_after', 'not_before', 'phase', 'phase_since', 'remove_at', 'spi_gcm', 'spi_gmac', 'timed_out_hosts'].sort(),
    );
  });

  test.each([
    ['GET', '/v1/hosts/h0000/config?wait=61', undefined, 400, 'querystring/wait must be from 0 to 60'],
    ['GET', '/v1/hosts/h0000/config?after=x', undefined, 400, 'querystring/after must be a non-negative integer'],
    ['GET', '/v1/hosts/h0000/config?since=1', undefined, 400, "querystring has unknown field 'since'"],
    ['POST', '/v1/hosts/h0000/ack', { version: 99999, installed_key_ids: [] }, 409, 'host h0000 was never sent version 99999'],
    ['POST', '/v1/hosts/h0000/ack', { version: 0, installed_key_ids: [] }, 400, 'body/version must be >= 1'],
    ['POST', '/v1/hosts/h0000/ack', { version: 1, installed_key_ids: ['nope'] }, 400, 'body/installed_key_ids/0 must be a UUID (8-4-4-4-12 hex digits)'],
    ['POST', '/v1/hosts/h0000/ack', { version: 1, installed_key_ids: [], extra: 1 }, 400, "body has unknown field 'extra'"],
    ['POST', '/v1/hosts/h0000/ack', '{"version": 1,', 400, 'body is not valid JSON'],
  ])('%s %s %j -> %d', async (method, url, body, status, message) => {
    const before = JSON.stringify(ctl.service.status().hosts.find((h) => h.id === 'h0000'));
    const r = await request(as('host/h0000'), ctl.port, method, url, body);
    expect(r.status).toBe(status);
    expect(r.body.message).toContain(message);
    expect(JSON.stringify(ctl.service.status().hosts.find((h) => h.id === 'h0000'))).toBe(before);
  });
});

describe('versions', () => {
  test('a publish that changes only some hosts\' configs gives only those hosts a new version', async () => {
    const before = agents.map((a) => a.after);
    await publish({ type: 'revision', revision: revision({ smallPolicy: {} , ports: ['443'] }) });
    // Nothing changed for anyone: same versions (revision numbers alone are not a change).
    await new Promise((r) => setTimeout(r, 300));
    expect(agents.map((a) => a.after)).toEqual(before);
    // Only the small group's rule changes: only its hosts get a version.
    const rev = revision();
    rev.sections[0]!.rules[0]!.services = [{ protocol: 'TCP', destination_ports: ['5432', '5433'] }];
    await publish({ type: 'revision', revision: rev });
    await Promise.all(agents.slice(0, SMALL).map((a) => a.waitFor((x) => x.after === before[agents.indexOf(x)]! + 1)));
    await new Promise((r) => setTimeout(r, 300));
    expect(agents.map((a) => a.after)).toEqual(before.map((v, i) => (i < SMALL ? v + 1 : v)));
    expect(agents[0]!.latest!.revision).toBe(rev.revision);
    // A poll with after = latest and wait=1 answers with no versions.
    const r = await request(as(`host/${agents[N - 1]!.hostId}`), ctl.port, 'GET', `/v1/hosts/${agents[N - 1]!.hostId}/config?after=${agents[N - 1]!.after}&wait=1`);
    expect(r.body.versions).toEqual([]);
    expect(r.body.reset).toBeUndefined();
    await settled();
  });

  test('an agent ahead of the controller, or behind what is held, gets the latest version with reset', async () => {
    const a = agents[1]!;
    const ahead = await request(as(`host/${a.hostId}`), ctl.port, 'GET', `/v1/hosts/${a.hostId}/config?after=${a.after + 50}&wait=0`);
    expect(ahead.body.reset).toBe(true);
    expect(ahead.body.versions.map((v: { version: number }) => v.version)).toEqual([a.after]);
    const fresh = await request(as(`host/${a.hostId}`), ctl.port, 'GET', `/v1/hosts/${a.hostId}/config?after=0&wait=0`);
    // Everything is still held (fewer than 64 versions): all of them, no reset.
    expect(fresh.body.reset).toBeUndefined();
    expect(fresh.body.versions.map((v: { version: number }) => v.version)).toEqual(a.received.map((v) => v.version));
  });
});

describe('rotation', () => {
  test('by rekey frequency: new key receive-only, active after acks, old key receive-only for the rekey margin, then removed', async () => {
    await publish({ type: 'revision', revision: revision({ smallPolicy: { rekey_frequency: 3600 } }) });
    const [old] = keysOf('kp-small').filter((k) => k.phase === 'active');
    clock.advance(3600 - (clock.now() - old!.activatedAt!) / 1000 - 1);
    await ctl.service.tick();
    expect(keysOf('kp-small').filter((k) => k.phase === 'receive')).toHaveLength(0);
    clock.advance(1);
    await ctl.service.tick();
    const [next] = keysOf('kp-small').filter((k) => k.phase === 'receive');
    expect(next).toBeDefined();
    expect(logLines.some((l) => l.includes('"reason":"rekey frequency"') && l.includes(next!.keyId))).toBe(true);
    await until(() => keysOf('kp-small').find((k) => k.keyId === next!.keyId)!.phase === 'active', 'activation by acks');
    const retiring = keysOf('kp-small').find((k) => k.keyId === old!.keyId)!;
    expect(retiring).toMatchObject({ phase: 'retiring', removeAt: clock.now() + MARGIN * 1000 });
    await settled();
    for (const a of agents.slice(0, SMALL)) {
      expect(a.latest!.config.keys.filter((k) => k.keyPolicyId === 'kp-small').map((k) => [k.keyId, k.state])).toEqual([
        [old!.keyId, 'retiring'],
        [next!.keyId, 'active'],
      ]);
    }
    clock.advance(MARGIN - 1);
    await ctl.service.tick();
    expect(keysOf('kp-small').find((k) => k.keyId === old!.keyId)!.phase).toBe('retiring');
    clock.advance(1);
    await ctl.service.tick();
    expect(keysOf('kp-small').find((k) => k.keyId === old!.keyId)!.phase).toBe('removed');
    await settled();
    for (const a of agents.slice(0, SMALL)) expect(a.latest!.config.keys.map((k) => k.keyId)).not.toContain(old!.keyId);
    // The hosts outside the small group never heard of any of this.
    for (const a of agents.slice(SMALL)) expect(a.received.flatMap((v) => v.config.keys.map((k) => k.keyId))).not.toContain(next!.keyId);
  });

  test('by key lifetime: the rollover starts early enough to finish before notAfter', async () => {
    const lifetime = 3600;
    const lead = ACK_TIMEOUT + MARGIN + 60;
    await publish({ type: 'revision', revision: revision({ smallPolicy: { rekey_frequency: 0, lifetime } }) });
    // Make a key with the new lifetime (manual rotation), then let time run.
    await publish({ type: 'rotate', key_policy_id: 'kp-small', requested_by: 'dne://admin/ops' });
    await until(() => keysOf('kp-small').some((k) => k.phase === 'active' && k.notAfter === k.notBefore + lifetime * 1000), 'key with the short lifetime');
    const k = keysOf('kp-small').find((x) => x.phase === 'active')!;
    await settled();
    clock.t = k.notAfter! - lead * 1000 - 1000;
    await ctl.service.tick();
    expect(keysOf('kp-small').filter((x) => x.phase === 'receive')).toHaveLength(0);
    clock.t = k.notAfter! - lead * 1000;
    await ctl.service.tick();
    const next = keysOf('kp-small').find((x) => x.phase === 'receive')!;
    expect(next).toBeDefined();
    expect(logLines.some((l) => l.includes('"reason":"key lifetime"') && l.includes(next.keyId))).toBe(true);
    await until(() => keysOf('kp-small').find((x) => x.keyId === next.keyId)!.phase === 'active', 'activation');
    const old = keysOf('kp-small').find((x) => x.keyId === k.keyId)!;
    // The old key's receive-only margin ends before it expires.
    expect(old.removeAt!).toBeLessThanOrEqual(k.notAfter!);
    await settled();
  });
});

describe('revocation (acceptance 4)', () => {
  test('a revoked policy\'s keys leave every host config in one version; the replacement is active at once', async () => {
    // Mid-rollover, so the policy has an active and a receive-only key.
    agents[3]!.withholdAck = true;
    await publish({ type: 'rotate', key_policy_id: 'kp-enc', requested_by: 'dne://admin/ops' });
    const victims = keysOf('kp-enc').filter((k) => k.phase === 'active' || k.phase === 'receive' || k.phase === 'retiring');
    expect(victims.map((k) => k.phase).sort()).toEqual(['active', 'receive']);
    await Promise.all(agents.map((a) => a.waitFor((x) => x.after === ctl.service.latestVersion(x.hostId))));
    const before = new Map(agents.map((a) => [a.hostId, a.after]));
    for (const a of agents) for (const v of victims) expect(a.latest!.config.keys.map((k) => k.keyId)).toContain(v.keyId);

    await publish({ type: 'revoke', key_policy_id: 'kp-enc', requested_by: 'dne://admin/ops', reason: 'test compromise' });
    const replacement = keysOf('kp-enc').find((k) => k.phase === 'active')!;
    expect(replacement).toMatchObject({ activatedBy: 'replacement' });
    expect(victims.map((v) => v.keyId)).not.toContain(replacement.keyId);
    await Promise.all(agents.map((a) => a.waitFor((x) => x.latest!.config.keys.some((k) => k.keyId === replacement.keyId))));
    const victimIds = victims.map((v) => v.keyId);
    for (const a of agents) {
      const after = a.received.filter((v) => v.version > before.get(a.hostId)!);
      // The very next version has none of the revoked keys, send or receive, and neither has any later one.
      expect(after[0]!.version).toBe(before.get(a.hostId)! + 1);
      for (const v of after) expect(v.config.keys.map((k) => k.keyId).filter((id) => victimIds.includes(id))).toEqual([]);
      const latest = a.latest!.config.keys.filter((k) => k.keyPolicyId === 'kp-enc');
      expect(latest.map((k) => [k.keyId, k.state])).toEqual([[replacement.keyId, 'active']]);
      expect(grantPayload(a.lastGrant!).keyIds).not.toEqual(expect.arrayContaining([victimIds[0]]));
    }
    // The key manager has them revoked: never released again.
    for (const id of victimIds) {
      const r = await request(as('admin/ops'), kmPort(), 'GET', `/v1/keys/${id}`);
      expect(r.body.state).toBe('revoked');
    }
    expect(ctl.service.status().counters.revocations).toBe(1);
    agents[3]!.withholdAck = false;
    await agents[3]!.ack(agents[3]!.after);
    await settled();
  });
});

describe('restart (acceptance 5)', () => {
  test('a controller restarted during a rollover resumes it without activating early', async () => {
    const holdout = agents[2]!;
    holdout.withholdAck = true;
    await publish({ type: 'rotate', key_policy_id: 'kp-enc', requested_by: 'dne://admin/ops' });
    const pending = keysOf('kp-enc').find((k) => k.phase === 'receive')!;
    await Promise.all(agents.filter((a) => a !== holdout).map((a) => a.waitFor((x) => x.timing.get(ctl.service.latestVersion(x.hostId))?.acked !== undefined)));
    await holdout.waitFor((x) => x.after === ctl.service.latestVersion(x.hostId));
    const versions = new Map(agents.map((a) => [a.hostId, a.after]));
    const keyCount = ctl.service.keyRecords().length;
    clock.advance(ACK_TIMEOUT / 2);
    await ctl.service.tick();
    expect(keysOf('kp-enc').find((k) => k.keyId === pending.keyId)!.phase).toBe('receive');

    // Stop everything the controller has in memory; agents lose their connection.
    await Promise.all(agents.map((a) => a.disconnect()));
    await ctl.close();
    await startCtl();
    // Before any agent is back, nothing may conclude the hosts are gone.
    await ctl.service.tick();
    expect(keysOf('kp-enc').find((k) => k.keyId === pending.keyId)).toMatchObject({ phase: 'receive', spiGcm: pending.spiGcm, phaseSince: pending.phaseSince });
    expect(ctl.service.keyRecords()).toHaveLength(keyCount); // the rotate event was not handled twice
    for (const a of agents) a.start(ctl.port);
    await new Promise((r) => setTimeout(r, 500));
    await ctl.service.tick();
    expect(keysOf('kp-enc').find((k) => k.keyId === pending.keyId)!.phase).toBe('receive');
    const b = ctl.service.status().key_policies.find((p) => p.id === 'kp-enc')!.barrier!;
    expect(b).toMatchObject({ key_id: pending.keyId, hosts_acked: N - 1, waiting_for: [holdout.hostId] });
    // Same version numbers as before the restart: nothing new was sent, nothing twice.
    for (const a of agents) {
      expect(a.after).toBe(versions.get(a.hostId));
      expect(ctl.service.latestVersion(a.hostId)).toBe(versions.get(a.hostId));
      expect(a.duplicates).toBe(0);
      expect(a.resets).toBe(0);
    }
    // The timeout runs from when the key was published, not from the restart.
    clock.advance(ACK_TIMEOUT / 2 - 1);
    await ctl.service.tick();
    expect(keysOf('kp-enc').find((k) => k.keyId === pending.keyId)!.phase).toBe('receive');
    holdout.withholdAck = false;
    await holdout.ack(holdout.after);
    await until(() => keysOf('kp-enc').find((k) => k.keyId === pending.keyId)!.phase === 'active', 'activation after the last ack');
    expect(keysOf('kp-enc').find((k) => k.keyId === pending.keyId)!.activatedBy).toBe('acks');
    await settled();
  });
});


describe('hosts that are down', () => {
  test('a host that never polls holds up no rollover once the start-up grace has passed; it is recorded and counted', async () => {
    // A seventh host joins the group but its agent never connects.
    const rev = fleetRevision(N + 1, ++revNo, { small: SMALL, rekeyMargin: MARGIN, smallPolicy: { rekey_frequency: 0, lifetime: 3600 } });
    await publish({ type: 'revision', revision: rev });
    await settled();
    const ghost = hostName(N);
    clock.advance(90); // livenessSeconds: the grace after the restart above is over
    await ctl.service.tick();
    expect(ctl.service.status().hosts.find((h) => h.id === ghost)).toMatchObject({ up: false, polling: false, version: 1 });
    const before = new Set(keysOf('kp-enc').map((k) => k.keyId));
    await publish({ type: 'rotate', key_policy_id: 'kp-enc', requested_by: 'dne://admin/ops' });
    // The agents that are up may ack the new key before this line runs: find
    // it as the key that was not there before, whatever its phase by now.
    await until(() => keysOf('kp-enc').some((k) => !before.has(k.keyId)), 'the rotation created a key');
    const next = keysOf('kp-enc').find((k) => !before.has(k.keyId))!;
    await until(() => keysOf('kp-enc').find((k) => k.keyId === next.keyId)!.phase === 'active', 'activation without the host that is down');
    expect(keysOf('kp-enc').find((k) => k.keyId === next.keyId)).toMatchObject({ activatedBy: 'acks', timedOutHosts: [ghost] });
    expect(ctl.service.status().counters.hosts_down_skipped).toBe(1);
    expect(logLines.some((l) => l.includes('hosts that are down did not acknowledge') && l.includes(ghost))).toBe(true);
    await settled();
  });
});

describe('long-poll cap', () => {
  test('a host holds at most 4 open long-polls: each further one answers the oldest at once with no versions', async () => {
    // A host no revision names (yet): its polls wait the full 60 s unless displaced.
    const host = 'h-poll-cap';
    const answered: number[] = [];
    const closers: (() => void)[] = [];
    const polls = Array.from({ length: 7 }, (_, i) =>
      ctl.service.poll(host, 0, 60, (f) => closers.push(f)).then((r) => {
        answered.push(i);
        return r;
      }),
    );
    await until(() => answered.length === 3, 'the three oldest polls answered');
    await new Promise((r) => setTimeout(r, 200));
    // The oldest three made room for polls 4, 5 and 6; the newest four still wait.
    expect(answered).toEqual([0, 1, 2]);
    for (const p of polls.slice(0, 3)) {
      const r = JSON.parse((await p).json);
      expect(r).toMatchObject({ host_id: host, versions: [] });
      expect(r.reset).toBeUndefined();
    }
    expect(ctl.service.status().hosts.find((h) => h.id === host)).toMatchObject({ polling: true });
    for (const f of closers) f(); // the clients go away
    await Promise.all(polls);
    expect(answered).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });
});

describe('encrypt_type change', () => {
  test('a key policy whose type changes rolls over to a new key through the barrier; no key is ever used in both modes', async () => {
    const base = { small: SMALL, rekeyMargin: MARGIN, smallPolicy: { rekey_frequency: 0, lifetime: 0 } };
    await publish({ type: 'revision', revision: fleetRevision(N + 1, ++revNo, base) });
    await settled();
    const [old] = keysOf('kp-small').filter((k) => k.phase === 'active');
    expect(old!.mode).toBe('gcm');
    const small = agents.slice(0, SMALL);
    const seenBefore = small.map((a) => a.received.length);

    // The manager changes kp-small to INTEGRITY_ONLY (its rule's action with it).
    const rev = fleetRevision(N + 1, ++revNo, { ...base, smallPolicy: { ...base.smallPolicy, encrypt_type: 'INTEGRITY_ONLY' } });
    rev.sections[0]!.rules[0]!.action = 'INTEGRITY_ONLY';
    await publish({ type: 'revision', revision: rev });
    await ctl.service.tick();
    const next = keysOf('kp-small').find((k) => k.phase === 'receive')!;
    expect(next).toMatchObject({ mode: 'gmac' });
    expect(logLines.some((l) => l.includes('"reason":"encrypt_type changed to INTEGRITY_ONLY"') && l.includes(next.keyId))).toBe(true);
    await until(() => keysOf('kp-small').find((k) => k.keyId === next.keyId)!.phase === 'active', 'activation by acks');
    expect(keysOf('kp-small').find((k) => k.keyId === old!.keyId)!.phase).toBe('retiring');
    await settled();

    for (const [i, a] of small.entries()) {
      const versions = a.received.slice(seenBefore[i]);
      // Every version since the change: the old key only ever in GCM under its GCM SPI, the new one only in GMAC.
      for (const v of versions) {
        for (const k of v.config.keys) {
          if (k.keyId === old!.keyId) expect([k.mode, k.spi]).toEqual(['gcm', old!.spiGcm]);
          if (k.keyId === next.keyId) expect([k.mode, k.spi]).toEqual(['gmac', next.spiGmac]);
        }
        // The rule's action always matches the mode of the key it sends with (the filter drops otherwise).
        for (const p of v.config.ports) {
          for (const e of p.table.rules.filter((x) => x.keyPolicy !== 0 && x.txSpi !== 0)) {
            const sender = v.config.keys.find((k) => k.spi === e.txSpi)!;
            expect([e.txSpi, e.action]).toEqual([e.txSpi, sender.mode === 'gcm' ? 'encrypt' : 'integrity']);
          }
        }
      }
      // The first version after the change still sends with the old key, in GCM (receivers install the new one first) ...
      const first = versions[0]!.config;
      expect(first.keys.find((k) => k.keyId === old!.keyId)).toMatchObject({ state: 'active', mode: 'gcm' });
      expect(first.keys.find((k) => k.keyId === next.keyId)?.state ?? 'receive').toBe('receive');
      expect(first.ports.flatMap((p) => p.table.rules).filter((e) => e.txSpi === old!.spiGcm).length).toBeGreaterThan(0);
      // ... and the last sends with the new key in GMAC, the old one receive-only in GCM.
      const last = a.latest!.config;
      expect(last.keys.filter((k) => k.keyId === old!.keyId || k.keyId === next.keyId).map((k) => [k.keyId, k.state, k.mode])).toEqual([
        [old!.keyId, 'retiring', 'gcm'],
        [next.keyId, 'active', 'gmac'],
      ]);
      expect(last.ports.flatMap((p) => p.table.rules).filter((e) => e.txSpi === next.spiGmac).every((e) => e.action === 'integrity')).toBe(true);
    }
  });
});
