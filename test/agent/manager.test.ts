/**
 * The agent against the real manager app over mutual TLS: it registers its
 * host's workloads (PUT .../agent/hosts/{hostId}/inventory) at start and
 * reports its counters (POST .../stats: cumulative, one boot_id per process)
 * in the StatsReport shape the manager validates. The dataplane is the fake
 * (the counts are set by the test), the controller is absent.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { parseAgentConfig } from '../../ts/agent/config';
import { RunningAgent, startAgent } from '../../ts/agent/server';
import { MANAGER_API } from '../../ts/common/contracts';
import { loggerOptions } from '../../ts/common/logging';
import { MtlsClient } from '../../ts/common/mtls-client';
import { buildManagerApp, hashToken, ManagerApp } from '../../ts/manager/app';
import { SqliteManagerStore } from '../../ts/manager/sqlite-store';
import { makePki, Pki, tmpDir } from '../controller/harness';
import { FakeDataplane, FakeKeySource, memoryLogger } from './fakes';
import { hostConfig, K1, REV, response, SPI } from './helpers';

jest.setTimeout(60_000);

const created: string[] = [];
let dir: string;
let pki: Pki;
let mgr: ManagerApp;
let mgrUrl: string;
let admin: MtlsClient;
let run: RunningAgent;
let dp: FakeDataplane;

const until = async (cond: () => boolean | Promise<boolean>, what: string, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

beforeAll(async () => {
  dir = tmpDir('agent-mgr', created);
  pki = await makePki(path.join(dir, 'pki'), ['h1']);
  const m = pki.creds.get('manager/m1')!;
  mgr = await buildManagerApp({
    store: new SqliteManagerStore(path.join(dir, 'manager.db')),
    settings: { autoPublishInventory: false },
    adminTokens: [{ name: 'ops', sha256: hashToken('unused-token-0123456789abcdef') }],
    logger: pino(loggerOptions('manager', 'silent'), new Writable({ write: (_c, _e, cb) => cb() })),
    tls: { cert: m.cert, key: m.key, ca: pki.ca },
  });
  await mgr.listen({ host: '127.0.0.1', port: 0 });
  mgrUrl = `https://localhost:${(mgr.server.address() as { port: number }).port}`;
  const a = pki.creds.get('admin/ops')!;
  admin = new MtlsClient(mgrUrl, { cert: a.cert, key: a.key, ca: pki.ca });

  const h = pki.creds.get('host/h1')!;
  fs.writeFileSync(path.join(dir, 'h1.crt'), h.cert);
  fs.writeFileSync(path.join(dir, 'h1.key'), h.key, { mode: 0o600 });
  const cfg = parseAgentConfig(
    {
      hostId: 'h1',
      displayName: 'rack 4 host 1',
      controller: 'https://localhost:1',
      manager: mgrUrl,
      tls: { cert: 'h1.crt', key: 'h1.key', ca: path.join(pki.dir, 'ca.crt') },
      endpoint: { host: '127.0.0.1', port: 0 },
      syslog: { target: 'off' },
      controllerPoll: { waitSeconds: 1, backoffMinMs: 200, backoffMaxMs: 1000 },
      statsIntervalSeconds: 3600,
      workloads: [
        {
          id: 'vm1',
          display_name: 'web one',
          tags: [{ scope: 'app', tag: 'web' }],
          vnics: [{ id: 'vm1-nic0', mac: '02:00:00:00:00:01', ipv4: ['10.0.0.1'], ipv6: ['fd00::1'], workload_if: 'tap-vm1', network_if: 'veth-vm1' }],
        },
      ],
    },
    dir,
  );
  dp = new FakeDataplane(2);
  run = await startAgent(cfg, { dataplane: dp, keys: new FakeKeySource(2), logger: memoryLogger().log });
});

afterAll(async () => {
  await run?.close();
  admin?.close();
  await mgr?.close();
  for (const d of created) fs.rmSync(d, { recursive: true, force: true });
});

test('at start the agent registers its host and workloads with the manager', async () => {
  await until(() => run.agent.reachable.manager, 'inventory accepted');
  const r = await admin.get<{ results: Array<Record<string, unknown>> }>(`${MANAGER_API}/workloads`);
  const vm1 = r.body.results.find((w) => w.id === 'vm1');
  expect(vm1).toMatchObject({ display_name: 'web one', host_id: 'h1' });
  expect(JSON.stringify(vm1)).toContain('"scope":"app"');
  expect(JSON.stringify(vm1)).toContain('tap-vm1');
  const hosts = await admin.get<{ results: Array<Record<string, unknown>> }>(`${MANAGER_API}/hosts`);
  expect(hosts.body.results.find((h) => h.id === 'h1')).toMatchObject({ display_name: 'rack 4 host 1' });
});

test('the stats report the manager stores is cumulative, per rule and key policy, under this process boot_id', async () => {
  // A config as the controller would send it (the controller is absent here),
  // translated from a revision the manager published: the manager takes
  // counters only for rules and key policies it has published.
  await mgr.managerService.store.write((tx) => tx.insertRevision({ number: REV.revision, published_at: REV.published_at, published_by: 'test', origin: 'publish', source: null, body: JSON.stringify(REV) }));
  const cfg = hostConfig([[K1, 'active']]);
  await run.agent.handleResponse(response(1, { ...cfg, hostId: 'h1' }));
  const web = cfg.rules.find((x) => x.id === 'web')!.ruleId;
  dp.ruleCounters.set(web, { outPackets: 7n, outBytes: 700n, inPackets: 6n, inBytes: 600n });
  dp.saCounters.set(SPI[K1]!, { sealedPackets: 7n, sealedBytes: 900n, openedPackets: 6n, openedBytes: 780n });
  expect(await run.agent.reportStats()).toBe(true);
  const reports = await mgr.managerService.statsReports();
  expect(reports).toHaveLength(1);
  const r = reports[0]!;
  expect(r.host_id).toBe('h1');
  expect(r.report.boot_id).toBe(run.agent.bootId);
  expect(r.report.rules.find((x) => x.rule_id === 'web')).toEqual({ rule_id: 'web', packets_out: 7, bytes_out: 700, packets_in: 6, bytes_in: 600 });
  expect(r.report.key_policies).toEqual([
    { key_policy_id: 'kp-enc', packets_encrypted: 7, bytes_encrypted: 900, packets_decrypted: 6, bytes_decrypted: 780, packets_dropped: 0, dropped_by_reason: {} },
  ]);
});
