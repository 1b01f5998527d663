/**
 * Acceptance 3 of issue #7, on the real dataplane: two hosts in network
 * namespaces, each with an agent driving a real native Filter (the real
 * adapter), a host config from the controller's translate(), keys installed
 * through the agent. Known UDP traffic goes through; a real Prometheus
 * (/usr/bin/prometheus) scrapes both agents' /metrics every second, and
 * PromQL over its HTTP API returns exactly the counts of that traffic.
 * Also acceptance 7 on the real dataplane (no key bytes in what it serves)
 * and the dataplane + syslog part of acceptance 4 (a key past its lifetime,
 * key manager down: traffic keeps flowing, socat on a unix datagram socket
 * receives the RFC 5424 message, Prometheus sees the metric), and the
 * sender-ID renewal path on the real filter (fresh sender IDs swapped in
 * place mid-stream: no packet lost, counters kept, captured IVs switch to the
 * new ID from counter 1, and host 1's replay windows survive).
 *
 * Root only (network namespaces, AF_PACKET); CI runs as root.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Agent } from '../../ts/agent/agent';
import { parseAgentConfig } from '../../ts/agent/config';
import { createFilterDataplane, Dataplane } from '../../ts/agent/dataplane';
import { AgentApi, buildAgentApi } from '../../ts/agent/local-api';
import { createAgentMetrics } from '../../ts/agent/metrics';
import { SecurityLog } from '../../ts/agent/syslog';
import type { Workload as PolicyWorkload } from '../../ts/common/policy-model';
import { translate } from '../../ts/controller/translate';
import { loadAddon } from '../../ts/native/loader';
import { keyPolicy, ref, revision, rule, section } from '../controller/model-builders';
import { nsExec, Topology, waitFor, Workload } from '../integration/netns';
import { FakeKeySource, memoryLogger } from './fakes';
import { K1, K2, response } from './helpers';
import { Capture, senderIdOf, summarizeCapture } from '../../ts/demo/capture';
import { ipView, readPcap } from '../../ts/demo/pcap';

jest.setTimeout(120000);

const N = 50;
const SPI_K1 = 0x1100;
let topo: Topology;
let dir: string;
let prom: ChildProcess | null = null;
let promUrl: string;
const agents: Array<{ agent: Agent; api: AgentApi; dp: Dataplane; port: number }> = [];
const keys = new FakeKeySource(1);
const logLines: string[][] = [];
let syslogRx: ChildProcess | null = null;
let syslogText = '';
let syslogSock: string;
let rev: ReturnType<typeof revision>;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

function getJson(url: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => {
          try {
            resolve(JSON.parse(b));
          } catch {
            resolve(b);
          }
        });
      })
      .on('error', reject);
  });
}

function getText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let b = '';
      res.on('data', (d: Buffer) => (b += d.toString()));
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });
}

/** One PromQL instant query; the numeric value of each series by its `instance` label. */
async function promQuery(q: string): Promise<Record<string, number>> {
  const r = await getJson(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
  if (r?.status !== 'success') return {};
  const out: Record<string, number> = {};
  for (const s of r.data.result as Array<{ metric: Record<string, string>; value: [number, string] }>) out[s.metric.instance ?? ''] = Number(s.value[1]);
  return out;
}

function policyWorkload(w: Workload): PolicyWorkload {
  return {
    id: w.name,
    display_name: w.name,
    host_id: w.host.name,
    tags: [],
    vnics: [{ id: w.name, mac: w.mac, ipv4: [w.ipv4], ipv6: [w.ipv6], workload_if: w.workloadIf, network_if: w.networkIf, netns: w.host.ns }],
  };
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dne-agent-prom-'));
  topo = new Topology([1, 1]);
  const [w1, w2] = topo.workloads as [Workload, Workload];
  // A real syslog listener on a unix datagram socket, as /dev/log is.
  syslogSock = path.join(dir, 'log.sock');
  syslogRx = spawn('socat', ['-u', `UNIX-RECV:${syslogSock}`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'ignore'] });
  syslogRx.stdout!.on('data', (d: Buffer) => (syslogText += d.toString()));
  expect(await waitFor(() => fs.existsSync(syslogSock), 5000)).toBe(true);
  rev = revision({
    workloads: [policyWorkload(w1), policyWorkload(w2)],
    key_policies: [keyPolicy('kp-enc', { is_default: true })],
    sections: [
      section('s1', [
        rule('udp-5300', { sources: [ref.workload(w1.name)], destinations: [ref.workload(w2.name)], services: [{ protocol: 'UDP', destination_ports: ['5300'] }], key_policy_identifier: 'kp-enc', action: 'ENCRYPT' }),
      ]),
    ],
  });
  const configs = translate(rev, [
    { keyPolicyId: 'kp-enc', keys: [{ keyId: K1, spiGcm: SPI_K1, spiGmac: SPI_K1 + 1, state: 'active', notBefore: '2026-01-01T00:00:00Z', notAfter: '2099-01-01T00:00:00Z' }] },
  ]);
  const portCounterNames = (loadAddon() as unknown as { portCounterNames: string[] }).portCounterNames;
  for (const w of [w1, w2]) {
    const cfg = parseAgentConfig(
      {
        hostId: w.host.name,
        controller: 'https://127.0.0.1:1',
        manager: 'https://127.0.0.1:1',
        tls: { cert: 'x', key: 'x', ca: 'x' },
        syslog: { target: `unix:${syslogSock}` },
        workloads: [{ id: w.name, vnics: [{ id: w.name, mac: w.mac, ipv4: [w.ipv4], ipv6: [w.ipv6], workload_if: w.workloadIf, network_if: w.networkIf, netns: w.host.ns }] }],
      },
      dir,
    );
    const dp = createFilterDataplane({ workers: 1, defaultAction: 'allow' });
    const { log, lines } = memoryLogger();
    lines.length = 0;
    const agent = new Agent(cfg, { dataplane: dp, keys, controller: null, manager: null, syslog: new SecurityLog(cfg.syslog), log });
    dp.start();
    await agent.handleResponse(response(1, configs.get(w.host.name)!));
    const api = await buildAgentApi(agent, createAgentMetrics(agent, portCounterNames));
    await api.listen({ host: '127.0.0.1', port: 0 });
    agents.push({ agent, api, dp, port: (api.server.address() as net.AddressInfo).port });
    logLines.push(lines);
  }
  // The topology forwards once the bridges are up (ICMP: no rule, default allow).
  expect(await waitFor(() => nsExec(w1.ns, ['ping', '-n', '-c', '1', '-W', '1', w2.ipv4]).status === 0, 15000, 200)).toBe(true);

  const promPort = await freePort();
  promUrl = `http://127.0.0.1:${promPort}`;
  const cfgFile = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(
    cfgFile,
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      'scrape_configs:',
      '  - job_name: dne-agent',
      '    static_configs:',
      `      - targets: ["127.0.0.1:${agents[0]!.port}"]`,
      '        labels: { host: h1 }',
      `      - targets: ["127.0.0.1:${agents[1]!.port}"]`,
      '        labels: { host: h2 }',
      '',
    ].join('\n'),
  );
  prom = spawn('/usr/bin/prometheus', [`--config.file=${cfgFile}`, `--storage.tsdb.path=${path.join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let promLog = '';
  prom.stderr!.on('data', (d: Buffer) => (promLog = (promLog + d.toString()).slice(-4000)));
  const up = async () => Object.keys(await promQuery('up == 1').catch(() => ({}))).length === 2;
  let ok = false;
  for (let i = 0; i < 150 && !ok; i++) {
    ok = await up();
    if (!ok) await new Promise((r) => setTimeout(r, 200));
  }
  if (!ok) throw new Error(`Prometheus never scraped both agents:\n${promLog}`);
});

afterAll(async () => {
  if (syslogRx?.pid && syslogRx.exitCode === null) process.kill(syslogRx.pid, 'SIGTERM');
  if (prom?.pid && prom.exitCode === null) {
    process.kill(prom.pid, 'SIGTERM');
    await new Promise<void>((r) => (prom!.exitCode !== null ? r() : prom!.once('exit', () => r())));
  }
  for (const a of agents) {
    await a.api.close();
    a.dp.close();
  }
  topo?.destroy();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test(`${N} UDP datagrams: PromQL over the Prometheus HTTP API returns exactly ${N} on the rule and on both ends' SA counters`, async () => {
  const [w1, w2] = topo.workloads as [Workload, Workload];
  const h1 = `127.0.0.1:${agents[0]!.port}`;
  const h2 = `127.0.0.1:${agents[1]!.port}`;
  // A receiver in w2 counts what arrives (and keeps the kernel from answering with ICMP port-unreachable).
  const rx = topo.spawnIn(w2.ns, ['socat', '-u', 'UDP4-RECV:5300', 'STDOUT']);
  let received = '';
  rx.stdout!.on('data', (d: Buffer) => (received += d.toString()));
  expect(await waitFor(() => nsExec(w2.ns, ['ss', '-Hnul', 'sport = :5300']).stdout.includes('5300'), 5000, 100)).toBe(true);
  const send = `import socket,time\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range(${N}):\n  s.sendto(b'dne-prom-%03d;' % i, ('${w2.ipv4}', 5300))\n  time.sleep(0.002)\n`;
  expect(nsExec(w1.ns, ['/usr/bin/python3', '-c', send]).status).toBe(0);
  const arrived = await waitFor(() => (received.match(/dne-prom-\d{3};/g) ?? []).length === N, 10000);
  if (!arrived) process.stdout.write(JSON.stringify({ received, a: agents[0]!.agent.stats(), b: agents[1]!.agent.stats(), sas: agents.map((a) => a.agent.sas()) }, null, 1) + '\n');
  expect(arrived).toBe(true);
  topo.kill(rx.pid);

  // Wait until Prometheus has scraped the final counts (scrape every 1 s), then query.
  const want = async () => (await promQuery(`dne_sa_packets_total{direction="in"}`))[h2] === N;
  expect(await (async () => {
    for (let i = 0; i < 100; i++) {
      if (await want()) return true;
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  })()).toBe(true);
  await new Promise((r) => setTimeout(r, 1500));

  expect(await promQuery(`dne_rule_packets_total{rule_id="udp-5300",direction="out"}`)).toEqual({ [h1]: N, [h2]: 0 });
  expect(await promQuery(`dne_rule_packets_total{rule_id="udp-5300",direction="in"}`)).toEqual({ [h1]: 0, [h2]: N });
  expect(await promQuery(`dne_sa_packets_total{spi="${SPI_K1}",key_policy="kp-enc",direction="out"}`)).toEqual({ [h1]: N, [h2]: 0 });
  expect(await promQuery(`dne_sa_packets_total{spi="${SPI_K1}",direction="in"}`)).toEqual({ [h1]: 0, [h2]: N });
  expect(await promQuery(`dne_port_sealed_packets_total{port="${w1.name}"}`)).toEqual({ [h1]: N });
  expect(await promQuery(`dne_port_opened_packets_total{port="${w2.name}"}`)).toEqual({ [h2]: N });
  expect(await promQuery('sum by (instance) (dne_sa_drops_total)')).toEqual({ [h1]: 0, [h2]: 0 });
  expect(await promQuery('dne_config_version')).toEqual({ [h1]: 1, [h2]: 1 });
  // The ESP bytes: each datagram is 13 bytes of payload + 8 UDP + 20 IPv4 = 41 bytes sealed.
  expect(await promQuery(`dne_sa_bytes_total{direction="out"} > 0`)).toEqual({ [h1]: N * 41 });
  // The MTU the agent reports is the network side's.
  expect((await promQuery('dne_port_mtu'))[h1]).toBeGreaterThanOrEqual(1500);
});

test('acceptance 7 on the real dataplane: metrics, endpoint answers and logs hold no key bytes', async () => {
  const outputs: string[] = [];
  for (const a of agents) for (const u of ['/metrics', '/sas', '/status', '/rules', '/stats']) outputs.push(await getText(`http://127.0.0.1:${a.port}${u}`));
  outputs.push(JSON.stringify(await getJson(`${promUrl}/api/v1/query?query=${encodeURIComponent('{__name__=~"dne_.+"}')}`)));
  outputs.push(...logLines.flat());
  const all = outputs.join('\n').toLowerCase();
  const k = keys.keyBytes.get(K1)!;
  for (const b of [k.key, k.salt]) for (const enc of ['hex', 'base64', 'base64url'] as const) expect(all).not.toContain(b.toString(enc).replace(/=+$/, '').toLowerCase());
  expect(all).toContain(K1); // the KeyID is shown; the key is not
});

test('acceptance 4 (dataplane and syslog part): key past its lifetime with the key manager down keeps carrying traffic; syslog and the metric say so', async () => {
  const [w1, w2] = topo.workloads as [Workload, Workload];
  const h1 = `127.0.0.1:${agents[0]!.port}`;
  const h2 = `127.0.0.1:${agents[1]!.port}`;
  // A short lifetime: the same key, now expiring in 2 s (a new version of each host's config).
  const notAfter = new Date(Date.now() + 2000).toISOString();
  const configs = translate(rev, [{ keyPolicyId: 'kp-enc', keys: [{ keyId: K1, spiGcm: SPI_K1, spiGmac: SPI_K1 + 1, state: 'active', notBefore: '2026-01-01T00:00:00Z', notAfter }] }]);
  for (const a of agents) await a.agent.handleResponse(response(2, configs.get(a.agent.cfg.hostId)!));
  keys.unreachable = true; // the key manager is gone: nothing can replace the key
  await new Promise((r) => setTimeout(r, 2500));
  const sealedBefore = agents[0]!.dp.saStats(SPI_K1)!.sealedPackets;

  const rx = topo.spawnIn(w2.ns, ['socat', '-u', 'UDP4-RECV:5300', 'STDOUT']);
  let received = '';
  rx.stdout!.on('data', (d: Buffer) => (received += d.toString()));
  expect(await waitFor(() => nsExec(w2.ns, ['ss', '-Hnul', 'sport = :5300']).stdout.includes('5300'), 5000, 100)).toBe(true);
  const send = `import socket,time\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range(20):\n  s.sendto(b'dne-expired-%03d;' % i, ('${w2.ipv4}', 5300))\n  time.sleep(0.002)\n`;
  expect(nsExec(w1.ns, ['/usr/bin/python3', '-c', send]).status).toBe(0);
  expect(await waitFor(() => (received.match(/dne-expired-\d{3};/g) ?? []).length === 20, 10000)).toBe(true);
  topo.kill(rx.pid);
  // Still encrypted with the expired key: the SA sealed every one of them.
  expect(agents[0]!.dp.saStats(SPI_K1)!.sealedPackets - sealedBefore).toBe(20n);

  for (const a of agents) {
    await a.agent.checkKeys();
    await a.agent.syslog.flush();
  }
  expect(await waitFor(() => (syslogText.match(/ key-expired-in-use /g) ?? []).length >= 2, 5000)).toBe(true);
  const line = syslogText.split('\n').find((l) => l.includes(' key-expired-in-use '))!;
  expect(line).toMatch(/^<84>1 \S+ \S+ dne-agent \d+ key-expired-in-use \[dne@32473 [^\]]*key_policy="kp-enc"/);
  expect(line).toContain(`key ${K1} of key policy kp-enc (SPI ${SPI_K1}) expired at ${notAfter} and is still in use`);
  // Prometheus sees it too.
  let seen: Record<string, number> = {};
  for (let i = 0; i < 50; i++) {
    seen = await promQuery('dne_key_expired_in_use{key_policy="kp-enc"}');
    if (seen[h1] === 1 && seen[h2] === 1) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(seen).toEqual({ [h1]: 1, [h2]: 1 });
  keys.unreachable = false;
});

test('sender-ID renewal on the real filter: fresh sender IDs are swapped in while traffic flows; no packet lost, counters go on, the wire switches to the new IDs from counter 1, and old packets replayed afterwards are still refused', async () => {
  const [w1, w2] = topo.workloads as [Workload, Workload];
  const SPI_K2 = 0x2200;
  // A low-water mark above the whole counter space: every sender of a new SA is "low" at once.
  for (const a of agents) a.agent.cfg.filter.senderLowWater = 2 ** 41;
  const configs = translate(rev, [
    {
      keyPolicyId: 'kp-enc',
      keys: [
        { keyId: K1, spiGcm: SPI_K1, spiGmac: SPI_K1 + 1, state: 'retiring', notBefore: '2026-01-01T00:00:00Z', notAfter: '2099-01-01T00:00:00Z' },
        { keyId: K2, spiGcm: SPI_K2, spiGmac: SPI_K2 + 1, state: 'active', notBefore: '2026-01-01T00:00:00Z', notAfter: '2099-01-01T00:00:00Z' },
      ],
    },
  ]);
  for (const a of agents) await a.agent.handleResponse(response(3, configs.get(a.agent.cfg.hostId)!));
  const [a, b] = agents as [(typeof agents)[0], (typeof agents)[0]];
  const py = (tag: string, n: number, dst: string, dport: number, sport: number, gapS: number) => [
    '/usr/bin/python3',
    '-c',
    `import socket,time\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n${sport ? `s.bind(('', ${sport}))\n` : ''}for i in range(${n}):\n  s.sendto(b'${tag}-%03d;' % i, ('${dst}', ${dport}))\n  time.sleep(${gapS})\n`,
  ];
  const listening = (ns: string, port: number) => waitFor(() => nsExec(ns, ['ss', '-Hnul', `sport = :${port}`]).stdout.includes(String(port)), 5000, 100);
  const countIn = (text: string, tag: string) => (text.match(new RegExp(`${tag}-\\d{3};`, 'g')) ?? []).length;

  // Replies w2:5300 -> w1 are protected by the same rule: host 1 opens them
  // under SPI_K2 and its replay windows learn them. Captured whole, to be
  // replayed at host 1 after its renewal.
  const back = topo.spawnIn(w1.ns, ['socat', '-u', 'UDP4-RECV:5301', 'STDOUT']);
  let backText = '';
  back.stdout!.on('data', (d: Buffer) => (backText += d.toString()));
  expect(await listening(w1.ns, 5301)).toBe(true);
  const capBack = new Capture(w1.host.ns, 'ul', path.join(dir, 'renewal-back.pcap'), 'esp', 0);
  await capBack.start();
  expect(nsExec(w2.ns, py('dne-back', 5, w1.ipv4, 5301, 5300, 0.002)).status).toBe(0);
  expect(await waitFor(() => countIn(backText, 'dne-back') === 5, 10000)).toBe(true);
  const replayable = readPcap(await capBack.stop()).frames.filter((f) => {
    const v = ipView(f.data);
    return v !== null && v.proto === 50 && v.src === w2.ipv4 && f.data.readUInt32BE(v.l4) === SPI_K2;
  });
  expect(replayable).toHaveLength(5);

  const rx = topo.spawnIn(w2.ns, ['socat', '-u', 'UDP4-RECV:5300', 'STDOUT']);
  let received = '';
  rx.stdout!.on('data', (d: Buffer) => (received += d.toString()));
  expect(await listening(w2.ns, 5300)).toBe(true);
  // The filter flags a low sender when it seals with it.
  expect(nsExec(w1.ns, py('dne-before', 5, w2.ipv4, 5300, 0, 0.002)).status).toBe(0);
  expect(await waitFor(() => countIn(received, 'dne-before') === 5, 10000)).toBe(true);
  expect(a.dp.saStats(SPI_K2)!.sendersLow).toBe(1n);
  const oldIds = [...a.agent.state.sas.get(SPI_K2)!.senderIds];
  const sealedBefore = a.dp.saStats(SPI_K2)!.sealedPackets;
  const openedAtB = b.dp.saStats(SPI_K2)!.openedPackets;

  // A steady stream; the renewal lands in the middle of it.
  const N_FLOW = 200;
  const cap = new Capture(w1.host.ns, 'ul', path.join(dir, 'renewal.pcap'), 'esp', 128);
  await cap.start();
  const flow = topo.spawnIn(w1.ns, py('dne-flow', N_FLOW, w2.ipv4, 5300, 0, 0.003));
  const flowDone = new Promise<number | null>((r) => flow.once('exit', (code) => r(code)));
  expect(await waitFor(() => countIn(received, 'dne-flow') >= 30, 10000, 5)).toBe(true);
  await a.agent.checkKeys();
  expect(await flowDone).toBe(0);
  expect(await waitFor(() => countIn(received, 'dne-flow') === N_FLOW, 10000)).toBe(true);
  topo.kill(rx.pid);

  const sa = a.agent.state.sas.get(SPI_K2)!;
  expect(sa.senderRenewals).toBe(1);
  expect(sa.senderIds.some((id) => oldIds.includes(id))).toBe(false);
  expect(keys.issuedSenderIds.filter((id) => id === sa.senderIds[0])).toHaveLength(1); // never handed out before
  expect(a.agent.syslog.stats.sent['sender-ids-renewed']).toBe(1);
  // Every packet crossed, sealed once, opened once: nothing of the SPI was dropped for the switch.
  const esp = summarizeCapture(await cap.stop()).esp.filter((r) => r.spi === SPI_K2 && r.src === w1.ipv4);
  expect(esp).toHaveLength(N_FLOW);
  const ids = esp.map((r) => senderIdOf(r.iv, 24));
  const switchAt = ids.findIndex((id) => id !== oldIds[0]);
  expect(switchAt).toBeGreaterThan(0); // renewed mid-stream
  expect(ids.slice(0, switchAt).every((id) => id === oldIds[0])).toBe(true);
  expect(ids.slice(switchAt).every((id) => id === sa.senderIds[0])).toBe(true);
  // The new sender ID's counter space starts at 1 and is used in order.
  const counters = esp.slice(switchAt).map((r) => Number(BigInt('0x' + r.iv) & ((1n << 40n) - 1n)));
  expect(counters).toEqual(counters.map((_, k) => k + 1));
  // The SA's counters were not reset by the renewal (a re-install would have).
  expect(a.dp.saStats(SPI_K2)!.sealedPackets - sealedBefore).toBe(BigInt(N_FLOW));
  expect(b.dp.saStats(SPI_K2)!.openedPackets - openedAtB).toBe(BigInt(N_FLOW));
  for (const dp of [a.dp, b.dp]) {
    const d = dp.saStats(SPI_K2)!.drops;
    expect([d.no_sa, d.unknown_spi, d.replay, d.icv_failure]).toEqual([0n, 0n, 0n, 0n]);
  }

  // Host 1's replay windows survived its renewal: the replies it opened
  // before, put on its port's wire again, are refused as replays and never
  // reach w1 a second time.
  for (const f of replayable) {
    const inject = `import socket,sys\ns=socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\ns.bind(('${w1.name}-br', 0))\ns.send(bytes.fromhex(sys.argv[1]))\n`;
    expect(nsExec(w1.host.ns, ['/usr/bin/python3', '-c', inject, f.data.toString('hex')]).status).toBe(0);
  }
  expect(await waitFor(() => a.dp.saStats(SPI_K2)!.drops.replay === 5n, 5000)).toBe(true);
  await new Promise((r) => setTimeout(r, 200));
  topo.kill(back.pid);
  expect(countIn(backText, 'dne-back')).toBe(5);
});
