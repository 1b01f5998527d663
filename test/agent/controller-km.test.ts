/**
 * The agent against the real controller service and the real key manager
 * (issue #7 "ready for the end-to-end suite"), over mutual TLS with a test
 * PKI: the agent process wiring (startAgent: long-poll, grant, release, ack,
 * local endpoint) with a fake dataplane in place of the filter, so no root
 * is needed. The manager's controller feed is the harness's contract-speaking
 * feed server. Covers: first config and keys, the rollover barrier driven by
 * the agents' acks, revocation, the controller stopped (last good config
 * kept) and restarted (the agent catches up), and a restarted agent getting
 * fresh sender IDs from the key manager.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAgentConfig } from '../../ts/agent/config';
import { RunningAgent, startAgent } from '../../ts/agent/server';
import type { KeyManagerApp } from '../../ts/keymanager/app';
import { buildControllerApp } from '../../ts/controller/app';
import { ControllerService, DEFAULT_SETTINGS } from '../../ts/controller/service';
import { ControllerStore } from '../../ts/controller/store';
import { HttpsFeedSource, HttpsKeyAuthority } from '../../ts/controller/upstream';
import { FeedServer, makePki, NewFeedEvent, Pki, RunningController, silentLogger, startKm, tmpDir } from '../controller/harness';
import { fleetRevision, hostName } from '../controller/fleet';
import { FakeDataplane, memoryLogger } from './fakes';

jest.setTimeout(90_000);

const N = 2;
const created: string[] = [];
let dir: string;
let pki: Pki;
let km: { app: KeyManagerApp; url: string };
let feed: FeedServer;
let ctl: RunningController;
const agents: Array<{ run: RunningAgent; dp: FakeDataplane; lines: string[] }> = [];
let revNo = 0;

const until = async (cond: () => boolean, what: string, ms = 20_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};
const publish = async (ev: NewFeedEvent) => {
  const e = feed.push(ev);
  await until(() => ctl.service.status().feed_cursor >= e.seq, `feed event ${e.seq}`);
};
const keysOf = (policy: string) => ctl.service.keyRecords().filter((k) => k.policyId === policy);
/** Every agent runs the controller's latest version for its host (so every ack is in). */
const settled = () => until(() => agents.every((a) => a.run.agent.version > 0 && a.run.agent.version === ctl.service.latestVersion(a.run.agent.cfg.hostId)), 'agents on the latest versions');
const txSpis = (dp: FakeDataplane) => [...new Set([...dp.tables.values()].flatMap((t) => t.rules.filter((r) => r.action === 'encrypt').map((r) => r.txSpi)))].sort();

/** The controller as the harness starts it, but on a port of our choosing, so a restart comes back where the agents look. */
async function startCtl(port = 0): Promise<void> {
  const c = pki.creds.get('controller/c1')!;
  const tls = { cert: c.cert, key: c.key, ca: pki.ca };
  const store = new ControllerStore(path.join(dir, 'c.db'));
  const logger = silentLogger();
  const service = new ControllerService({
    store,
    keys: new HttpsKeyAuthority([km.url], tls),
    feed: new HttpsFeedSource(feed.url, tls),
    grantKey: pki.grantKey,
    settings: { ...DEFAULT_SETTINGS, instanceId: 'c1', ackTimeoutSeconds: 60 },
    logger,
    tickMs: 0,
    feedWaitSeconds: 1,
  });
  await service.start();
  const app = await buildControllerApp({ tls, service, logger });
  await app.listen({ host: '127.0.0.1', port });
  const a = app.server.address();
  const p = typeof a === 'object' && a ? a.port : 0;
  ctl = {
    service,
    app,
    store,
    port: p,
    url: `https://localhost:${p}`,
    close: async () => {
      await service.close();
      await app.close();
      store.close();
    },
  };
}

async function startHostAgent(i: number, controllerUrl = ctl.url): Promise<{ run: RunningAgent; dp: FakeDataplane; lines: string[] }> {
  const host = hostName(i);
  const creds = pki.creds.get(`host/${host}`)!;
  const cert = path.join(dir, `host-${host}.crt`);
  const key = path.join(dir, `host-${host}.key`);
  fs.writeFileSync(cert, creds.cert);
  fs.writeFileSync(key, creds.key, { mode: 0o600 });
  const cfg = parseAgentConfig(
    {
      hostId: host,
      controller: controllerUrl,
      // No manager in this test: inventory and stats are retried in the background.
      manager: 'https://localhost:1',
      tls: { cert, key, ca: path.join(pki.dir, 'ca.crt') },
      endpoint: { host: '127.0.0.1', port: 0 },
      syslog: { target: 'off' },
      controllerPoll: { waitSeconds: 2, backoffMinMs: 50, backoffMaxMs: 300 },
      keyCheckSeconds: 1,
      workloads: [],
    },
    dir,
  );
  const dp = new FakeDataplane(2);
  const { log, lines } = memoryLogger();
  const run = await startAgent(cfg, { dataplane: dp, logger: log });
  return { run, dp, lines };
}

beforeAll(async () => {
  dir = tmpDir('agent-ctl', created);
  pki = await makePki(path.join(dir, 'pki'), Array.from({ length: N }, (_, i) => hostName(i)));
  km = await startKm(pki, path.join(dir, 'km.db'));
  feed = await FeedServer.start(pki);
  await startCtl();
  for (let i = 0; i < N; i++) agents.push(await startHostAgent(i));
});

afterAll(async () => {
  for (const a of agents) await a.run.close().catch(() => {});
  await ctl?.close().catch(() => {});
  await feed?.close();
  await km?.app.close();
  for (const d of created) fs.rmSync(d, { recursive: true, force: true });
});

test('first publish: both agents apply their config, fetch the same keys with their grant (distinct sender IDs), and ack', async () => {
  await publish({ type: 'revision', revision: fleetRevision(N, ++revNo, { small: N, rekeyMargin: 300 }) });
  await until(() => ['kp-enc', 'kp-small'].every((p) => keysOf(p).some((k) => k.phase === 'active')), 'first keys activated by the agents\' acks');
  await settled();
  // Acks reached the controller: the first keys of each policy are active and every table sends with them.
  const active = ['kp-enc', 'kp-small'].map((p) => keysOf(p).find((k) => k.phase === 'active')!);
  expect(active.every(Boolean)).toBe(true);
  for (const a of agents) {
    expect(a.dp.sas.size).toBe(2);
    expect([...a.dp.sas.keys()].sort()).toEqual(txSpis(a.dp));
    expect(a.run.agent.reachable.controller).toBe(true);
    expect(a.run.agent.reachable.keymanager).toBe(true);
  }
  // Same key bytes on both hosts (the first byte, recorded by the fake before wiping), different sender IDs.
  for (const spi of agents[0]!.dp.sas.keys()) {
    const [x, y] = agents.map((a) => a.dp.sas.get(spi)!);
    expect(x!.keyFirstByte).toBe(y!.keyFirstByte);
    expect(x!.senderIds.some((id) => y!.senderIds.includes(id))).toBe(false);
  }
  // Key copies handed to the dataplane were wiped.
  for (const a of agents) for (const b of a.dp.keyBuffersSeen) expect(b.every((v) => v === 0)).toBe(true);
  // The local endpoint says so too.
  const st = await (await fetch(`${agents[0]!.run.endpoint}/status`)).json();
  expect(st).toMatchObject({ ready: true, controller: { reachable: true }, key_managers: { urls: [km.url], reachable: true } });
});

test('rotation: the agents install the new key receive-only, their acks activate it, the senders switch, the old key stays for the margin', async () => {
  const [old] = keysOf('kp-small').filter((k) => k.phase === 'active');
  const oldSpi = agents[0]!.run.agent.state.config!.keys.find((k) => k.keyId === old!.keyId)!.spi;
  await publish({ type: 'rotate', key_policy_id: 'kp-small', requested_by: 'dne://admin/ops' });
  await until(() => keysOf('kp-small').some((k) => k.phase === 'active' && k.keyId !== old!.keyId), 'activation by the agents\' acks');
  const next = keysOf('kp-small').find((k) => k.phase === 'active')!;
  await settled();
  for (const a of agents) {
    const newSpi = a.run.agent.state.config!.keys.find((k) => k.keyId === next.keyId)!.spi;
    expect(txSpis(a.dp)).toContain(newSpi);
    expect(txSpis(a.dp)).not.toContain(oldSpi);
    expect(a.dp.sas.has(oldSpi)).toBe(true); // receive-only during the rekey margin
    // The new SA went in before any table sent with it.
    const install = a.dp.ops.findIndex((o) => o.op === 'installSa' && o.spi === newSpi);
    const firstSend = a.dp.ops.findIndex((o) => o.op === 'setTables' && Object.values(o.ports).some((t) => t.rules.some((r) => r.txSpi === newSpi)));
    expect(install).toBeGreaterThanOrEqual(0);
    expect(install).toBeLessThan(firstSend);
  }
});

test('revocation: the revoked keys leave both dataplanes; the event is a security event', async () => {
  const before = keysOf('kp-enc').filter((k) => k.phase === 'active' || k.phase === 'retiring' || k.phase === 'receive').map((k) => k.keyId);
  const spis = before.map((id) => agents[0]!.run.agent.state.config!.keys.find((k) => k.keyId === id)!.spi);
  await publish({ type: 'revoke', key_policy_id: 'kp-enc', requested_by: 'dne://admin/ops', reason: 'test' });
  await until(() => agents.every((a) => spis.every((s) => !a.dp.sas.has(s))), 'revoked SAs removed');
  await settled();
  for (const a of agents) {
    expect(a.run.agent.syslog.stats.sent['key-revoked']).toBeGreaterThanOrEqual(1);
    for (const s of spis) expect(txSpis(a.dp)).not.toContain(s);
  }
});

test('controller stopped: the last good config and keys stay; restarted: the agents catch up with what was published meanwhile', async () => {
  const a = agents[0]!;
  const version = a.run.agent.version;
  const sas = [...a.dp.sas.keys()].sort();
  await ctl.close();
  await until(() => agents.every((x) => !x.run.agent.reachable.controller), 'agents notice the controller is gone');
  await new Promise((r) => setTimeout(r, 500));
  expect(a.run.agent.version).toBe(version);
  expect([...a.dp.sas.keys()].sort()).toEqual(sas);
  const st = (await (await fetch(`${a.run.endpoint}/status`)).json()) as { controller: { reachable: boolean }; config: { version: number } };
  expect(st.controller.reachable).toBe(false);
  expect(st.config.version).toBe(version);

  // Published while the controller is down; the restarted controller (same store, same port) reads it from the feed.
  feed.push({ type: 'revision', revision: fleetRevision(N, ++revNo, { small: N, rekeyMargin: 300, ports: ['443', '8443'] }) });
  await startCtl(ctl.port);
  await until(() => agents.every((x) => x.run.agent.reachable.controller && x.run.agent.version > version), 'agents catch up', 30_000);
  for (const x of agents) {
    const web = x.run.agent.state.config!.ports.flatMap((p) => p.table.rules).find((r) => r.ports.some(([lo]) => lo === 8443));
    expect(web).toBeDefined();
  }
});

test('agent restart: fresh sender IDs from the key manager for the same keys, never the ones used before', async () => {
  const a = agents[1]!;
  const used = new Map([...a.dp.sas].map(([spi, s]) => [spi, s.senderIds]));
  await a.run.close();
  const b = await startHostAgent(1);
  agents[1] = b;
  await until(() => b.run.agent.version === ctl.service.latestVersion(b.run.agent.cfg.hostId), 'restarted agent on the latest version');
  expect(b.dp.sas.size).toBe(used.size);
  for (const [spi, s] of b.dp.sas) {
    const before = used.get(spi);
    expect(before).toBeDefined();
    expect(s.senderIds.some((id) => before!.includes(id))).toBe(false);
  }
  expect(b.run.agent.bootId).not.toBe(a.run.agent.bootId);
});
