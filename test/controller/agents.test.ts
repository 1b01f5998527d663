/**
 * Issue #6 acceptance 3, with 100 simulated agents in-process over real
 * mutual TLS (controller, key manager and a manager feed that speaks the
 * contracts.ts protocol): a publish reaches every agent; an agent that
 * reconnects gets exactly the versions it missed, in order, without
 * duplicates; acknowledgements gate activation, and an agent that withholds
 * its ack delays activation until the ack timeout, which is counted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FeedServer, makePki, ManualClock, Pki, RunningController, SimAgent, startController, startKm, tmpDir } from './harness';
import { fleetRevision, hostName } from './fleet';
import type { KeyManagerApp } from '../../ts/keymanager/app';

const N = 100;
const ACK_TIMEOUT = 60;
const created: string[] = [];
let pki: Pki;
let km: { app: KeyManagerApp; url: string };
let feed: FeedServer;
let ctl: RunningController;
const clock = new ManualClock();
let agents: SimAgent[];

beforeAll(async () => {
  const dir = tmpDir('ctl-agents', created);
  pki = await makePki(path.join(dir, 'pki'), Array.from({ length: N }, (_, i) => hostName(i)));
  km = await startKm(pki, path.join(dir, 'km.db'));
  feed = await FeedServer.start(pki);
  ctl = await startController(pki, { dbFile: path.join(dir, 'c.db'), kmUrl: km.url, feedUrl: feed.url, clock, settings: { ackTimeoutSeconds: ACK_TIMEOUT } });
  agents = Array.from({ length: N }, (_, i) => new SimAgent(hostName(i), pki, ctl.port, 20));
  for (const a of agents) a.start();
}, 60_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await ctl.close();
  await feed.close();
  await km.app.close();
  for (const d of created) fs.rmSync(d, { recursive: true, force: true });
});

const allAt = (version: number, who = agents) => Promise.all(who.map((a) => a.waitFor((x) => x.after >= version, 20_000)));
const allAcked = (version: number, who = agents) => Promise.all(who.map((a) => a.waitFor((x) => x.timing.get(version)?.acked !== undefined, 20_000)));
const policyKeys = (id: string) => ctl.service.keyRecords().filter((k) => k.policyId === id);
/** The SPI senders of kp-enc use in a config ('r-all' entries), 0 when none. */
const txSpi = (a: SimAgent, version: number) => {
  const v = a.received.find((x) => x.version === version)!;
  const r = v.config.ports[0]!.table.rules.find((x) => x.ruleId === v.config.rules.find((n) => n.id === 'r-all')!.ruleId)!;
  return r.txSpi;
};

test('a publish reaches all 100 agents; the first key is receive-only until every agent acked it, then active', async () => {
  feed.push({ type: 'revision', revision: fleetRevision(N, 1, { small: 0 }) });
  // v1: rules + kp-enc's first key, receive-only (no sender uses it yet).
  await allAt(1);
  for (const a of agents) {
    const v1 = a.received[0]!;
    expect(v1.version).toBe(1);
    expect(v1.revision).toBe(1);
    const keys = v1.config.keys.filter((k) => k.keyPolicyId === 'kp-enc');
    expect(keys.map((k) => k.state)).toEqual(['receive']);
    expect(txSpi(a, 1)).toBe(0);
    expect(a.lastGrant).toBeDefined();
    expect(a.keyManagers).toEqual([km.url]);
  }
  // v2: every agent acked v1, so the key is active for senders.
  await allAt(2);
  const [k1] = policyKeys('kp-enc');
  expect(k1!.phase).toBe('active');
  expect(k1!.activatedBy).toBe('acks');
  for (const a of agents) {
    expect(a.received.map((v) => v.version)).toEqual([1, 2]);
    expect(txSpi(a, 2)).toBe(k1!.spiGcm);
  }
  await allAcked(2);
});

test('a reconnecting agent gets the versions it missed, in order, and no duplicates', async () => {
  const gone = agents[5]!;
  await gone.disconnect();
  const others = agents.filter((a) => a !== gone);
  feed.push({ type: 'revision', revision: fleetRevision(N, 2, { small: 0, ports: ['443', '8443'] }) });
  await allAt(3, others);
  feed.push({ type: 'revision', revision: fleetRevision(N, 3, { small: 0, ports: ['443', '8443', '9443'] }) });
  await allAt(4, others);
  await allAcked(4, others);
  expect(gone.after).toBe(2);
  gone.start();
  await gone.waitFor((a) => a.after === 4);
  expect(gone.received.map((v) => [v.version, v.revision])).toEqual([
    [1, 1],
    [2, 1],
    [3, 2],
    [4, 3],
  ]);
  expect(gone.duplicates).toBe(0);
  expect(gone.resets).toBe(0);
  await allAcked(4);
  // A publish that changes nothing for anyone sends nothing.
  feed.push({ type: 'revision', revision: fleetRevision(N, 4, { small: 0, ports: ['443', '8443', '9443'] }) });
  await new Promise((r) => setTimeout(r, 1500));
  expect(ctl.service.status().revision).toBe(4);
  for (const a of agents) {
    expect(a.after).toBe(4);
    expect(a.duplicates).toBe(0);
  }
});

test('an agent that withholds its ack delays activation until the ack timeout, which is logged and counted', async () => {
  const holdout = agents[7]!;
  holdout.withholdAck = true;
  const [k1] = policyKeys('kp-enc');
  feed.push({ type: 'rotate', key_policy_id: 'kp-enc', requested_by: 'dne://admin/ops' });
  await allAt(5);
  const k2 = policyKeys('kp-enc').find((k) => k.phase === 'receive')!;
  expect(k2).toBeDefined();
  for (const a of agents) {
    const keys = a.received[a.received.length - 1]!.config.keys.filter((k) => k.keyPolicyId === 'kp-enc');
    expect(keys.map((k) => [k.keyId, k.state])).toEqual([
      [k1!.keyId, 'active'],
      [k2.keyId, 'receive'],
    ]);
    expect(txSpi(a, 5)).toBe(k1!.spiGcm);
  }
  await allAcked(5, agents.filter((a) => a !== holdout));
  await ctl.service.tick();
  clock.advance(ACK_TIMEOUT - 1);
  await ctl.service.tick();
  // 99 of 100 acked, the 100th is up (it polls) but silent: still receive-only.
  expect(policyKeys('kp-enc').find((k) => k.keyId === k2.keyId)!.phase).toBe('receive');
  const st = ctl.service.status().key_policies.find((p) => p.id === 'kp-enc')!;
  expect(st.barrier).toMatchObject({ key_id: k2.keyId, hosts_needing: N, hosts_acked: N - 1, waiting_for: [holdout.hostId] });
  expect(agents.every((a) => a.after === 5)).toBe(true);

  clock.advance(1);
  await ctl.service.tick();
  const after = policyKeys('kp-enc');
  expect(after.find((k) => k.keyId === k2.keyId)).toMatchObject({ phase: 'active', activatedBy: 'timeout', timedOutHosts: [holdout.hostId] });
  expect(after.find((k) => k.keyId === k1!.keyId)!.phase).toBe('retiring');
  expect(ctl.service.status().counters).toMatchObject({ ack_timeouts: 1, hosts_timed_out: 1 });
  await allAt(6);
  for (const a of agents) expect(txSpi(a, 6)).toBe(k2.spiGcm);
});

test('when every agent acks, activation needs no timeout', async () => {
  const holdout = agents[7]!;
  holdout.withholdAck = false;
  await holdout.ack(6);
  feed.push({ type: 'rotate', key_policy_id: 'kp-enc', requested_by: 'dne://admin/ops' });
  await allAt(7);
  const k3 = policyKeys('kp-enc').find((k) => k.phase === 'receive' || k.activatedBy === 'acks' && k.phase === 'active')!;
  await allAt(8);
  expect(policyKeys('kp-enc').find((k) => k.keyId === k3.keyId)).toMatchObject({ phase: 'active', activatedBy: 'acks' });
  // Every agent's v7 still sent with the previous key; v8 with the new one.
  const k2 = policyKeys('kp-enc').find((k) => k.activatedBy === 'timeout')!;
  for (const a of agents) {
    expect(txSpi(a, 7)).toBe(k2.spiGcm);
    expect(txSpi(a, 8)).toBe(k3.spiGcm);
    expect(a.duplicates).toBe(0);
    expect(a.received.map((v) => v.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  }
  expect(ctl.service.status().counters.ack_timeouts).toBe(1);
});
