/**
 * The local endpoint and `dne ctl` on an agent with a fake dataplane:
 * routes, bad input, Prometheus text, tables and --json; and acceptance 7:
 * nothing the endpoint, the metrics, ctl or the log print contains key bytes
 * (searched as hex, base64 and base64url, and as raw bytes).
 */
import { Command } from 'commander';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { registerCtlCommand } from '../../ts/agent/ctl';
import { buildDnectl } from '../../ts/agent/dnectl';
import { AgentApi, buildAgentApi } from '../../ts/agent/local-api';
import { createAgentMetrics } from '../../ts/agent/metrics';
import { loadAddon } from '../../ts/native/loader';
import { hostConfig, K1, K2, makeAgent, response, SPI } from './helpers';

const portCounterNames = (loadAddon() as unknown as { portCounterNames: string[] }).portCounterNames;
let dir: string;
let api: AgentApi;
let t: ReturnType<typeof makeAgent>;
let base: string;
let sockApi: AgentApi;
let sock: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dne-agent-api-'));
  t = makeAgent();
  const reg = createAgentMetrics(t.agent, portCounterNames);
  api = await buildAgentApi(t.agent, reg);
  await api.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(api.server.address() as { port: number }).port}`;
  sock = path.join(dir, 'agent.sock');
  sockApi = await buildAgentApi(t.agent, reg);
  await sockApi.listen({ path: sock });
});
afterAll(async () => {
  await api?.close();
  await sockApi?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A real HTTP GET on the listening endpoint (light-my-request's inject does not load under this jest setup). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Reply = { statusCode: number; body: string; json: () => any; headers: Record<string, string> };
async function get(url: string): Promise<Reply> {
  const r = await new Promise<{ status: number; body: string; type: string }>((resolve, reject) => {
    http.get(base + url, (res) => {
      let b = '';
      res.on('data', (d: Buffer) => (b += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b, type: String(res.headers['content-type']) }));
    }).on('error', reject);
  });
  return { statusCode: r.status, body: r.body, json: () => JSON.parse(r.body), headers: { 'content-type': r.type } };
}

/** `dne ctl ARGS` as ts/cli/main.ts wires it (positional options: options after a command belong to it). */
async function ctl(args: string[]): Promise<string> {
  const out: string[] = [];
  const p = new Command().enablePositionalOptions().exitOverride();
  registerCtlCommand(p, (s) => out.push(s));
  await p.parseAsync(['node', 'dne', 'ctl', ...args]);
  return out.join('\n');
}

/** `dnectl ARGS`. */
async function dnectl(args: string[]): Promise<string> {
  const out: string[] = [];
  const p = buildDnectl((s) => out.push(s)).exitOverride();
  await p.parseAsync(['node', 'dnectl', ...args]);
  return out.join('\n');
}

test('before the first config: healthy, not ready, status says why', async () => {
  expect((await get('/healthz')).json()).toEqual({ status: 'ok', boot_id: t.agent.bootId });
  const r = await get('/readyz');
  expect(r.statusCode).toBe(503);
  expect(r.json()).toEqual({ ready: false, reason: 'no host config applied yet' });
  const s = (await get('/status')).json();
  expect(s.config.version).toBe(0);
  expect(s.controller).toEqual({ url: 'https://controller.test:8445', reachable: false, last_error: null });
});

test('after a config: status with ports and MTU, SAs, rules, stats, explain, metrics', async () => {
  await t.agent.handleResponse(response(7, hostConfig([[K1, 'active'], [K2, 'receive']])));
  const webId = t.agent.state.config!.rules.find((r) => r.id === 'web')!.ruleId;
  t.dp.ruleCounters.set(webId, { outPackets: 11n, outBytes: 1100n, inPackets: 9n, inBytes: 900n });
  t.dp.saCounters.set(SPI[K1]!, { sealedPackets: 11n, sealedBytes: 1500n, openedPackets: 9n, openedBytes: 1200n });
  t.dp.portCounters.set('vm1-nic0', { from_workload_packets: 20n, sealed_packets: 11n });
  t.dp.hostDrops.replay = 3n;

  expect((await get('/readyz')).json()).toEqual({ ready: true, config_version: 7 });
  const s = (await get('/status')).json();
  expect(s.config.version).toBe(7);
  expect(s.ports).toEqual([
    { name: 'vm1-nic0', workload_id: 'vm1', vnic_id: 'vm1-nic0', workload_if: 'tap-vm1', network_if: 'veth-vm1', workload_netns: null, network_netns: 'hostnet', addresses: ['10.0.0.1', 'fd00::1'], rules: 2, mtu: 1500, protected_mtu: 1463 },
  ]);
  const sas = (await get('/sas')).json().sas;
  expect(sas.map((x: { key_id: string; state: string; spi_hex: string }) => [x.key_id, x.state, x.spi_hex])).toEqual([
    [K1, 'active', '0x00001100'],
    [K2, 'receive', '0x00002200'],
  ]);
  expect(sas[0]).toMatchObject({ packets_out: 11, packets_in: 9, bytes_out: 1500, key_policy: 'kp-enc', mode: 'gcm', expired: false });
  const rules = (await get('/rules')).json();
  expect(rules.rules.find((r: { rule_id: string }) => r.rule_id === 'web')).toMatchObject({ action: 'encrypt', key_policy: 'kp-enc', tx_spi: SPI[K1], packets_out: 11, packets_in: 9, ports: ['vm1-nic0'] });
  const stats = (await get('/stats')).json();
  expect(stats.ports['vm1-nic0'].counters.from_workload_packets).toBe(20);
  expect(stats.drops).toEqual({ replay: 3 });

  const e = await get('/explain?src=10.0.0.1&dst=10.0.0.2&protocol=tcp&dport=443');
  expect(e.json().results[0]).toMatchObject({ action: 'encrypt', rule_id: 'web', key_id: K1 });

  const m = await get('/metrics');
  expect(m.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = m.body;
  expect(text).toContain('# TYPE dne_rule_packets_total counter');
  expect(text).toContain('dne_rule_packets_total{rule_id="web",direction="out"} 11');
  expect(text).toContain('dne_rule_packets_total{rule_id="web",direction="in"} 9');
  expect(text).toContain(`dne_sa_packets_total{spi="${SPI[K1]}",key_policy="kp-enc",direction="out"} 11`);
  expect(text).toContain(`dne_sa_state{spi="${SPI[K2]}",key_policy="kp-enc",state="receive"} 1`);
  expect(text).toContain('dne_port_packets_total{port="vm1-nic0",direction="from_workload"} 20');
  expect(text).toContain('dne_port_sealed_packets_total{port="vm1-nic0"} 11');
  expect(text).toContain('dne_port_mtu{port="vm1-nic0"} 1500');
  expect(text).toContain('dne_port_protected_mtu{port="vm1-nic0"} 1463');
  expect(text).toContain('dne_drops_total{reason="replay"} 3');
  expect(text).toContain('dne_config_version 7');
  expect(text).toContain('dne_key_expired_in_use{key_policy="kp-enc"} 0');
  expect(text).toContain('dne_controller_reachable 0');
  // Values are read at scrape time: a new count shows at the next scrape.
  t.dp.hostDrops.replay = 5n;
  expect((await get('/metrics')).body).toContain('dne_drops_total{reason="replay"} 5');
  // Every metric follows the conventions: dne_ prefix, counters end in _total.
  for (const line of text.split('\n').filter((l) => l.startsWith('# TYPE'))) {
    const [, , name, type] = line.split(' ');
    expect(name).toMatch(/^dne_/);
    if (type === 'counter') expect(name).toMatch(/_total$/);
  }
});

test.each([
  ['/explain?src=10.0.0.1&protocol=tcp', 400, "querystring must have required field 'dst'"],
  ['/explain?src=10.0.0.1&dst=10.0.0.2&protocol=tcp&dport=http', 400, 'querystring/dport must be a port number (0-65535)'],
  ['/explain?src=10.0.0.1&dst=10.0.0.2&protocol=tcp&dport=99999', 400, 'querystring/dport must be a port number (0-65535)'],
  ['/explain?src=10.0.0.1&dst=10.0.0.2&protocol=udp&sport=65536', 400, 'querystring/sport must be a port number (0-65535)'],
  ['/explain?src=10.0.0.1&dst=10.0.0.2&protocol=icmp&dport=80', 400, 'querystring/dport applies only to protocols tcp, udp and sctp, not icmp'],
  ['/explain?src=10.0.0.1&dst=10.0.0.2&protocol=1&sport=80', 400, 'querystring/sport applies only to protocols tcp, udp and sctp, not 1'],
  ['/explain?src=10.0.0.1&dst=10.0.0.2&protocol=bogus', 400, 'querystring/protocol must be a number 0-255 or one of icmp, tcp, udp, ipv6_icmp, icmpv6, sctp'],
  ['/explain?src=10.0.0.1&dst=10.0.0.2&protocol=tcp&colour=red', 400, "querystring has unknown field 'colour'"],
  ['/explain?src=10.0.0.1&dst=fd00::2&protocol=tcp', 400, 'src and dst must be IP addresses of the same family'],
  ['/explain?src=10.0.0.1&dst=10.0.0.2&protocol=tcp&port=nope', 400, 'this host has no port named nope'],
  ['/keys', 404, 'no route GET /keys'],
])('%s -> %i', async (url, status, msg) => {
  const r = await get(url);
  expect(r.statusCode).toBe(status);
  expect(r.json().message).toBe(msg);
});

test('dne ctl: tables for people, --json for scripts, over TCP and over the unix socket', async () => {
  const status = await ctl(['--endpoint', base, 'status']);
  expect(status).toMatch(/^config\s+version 7, revision 1/m);
  expect(status).toMatch(/^controller\s+https:\/\/controller\.test:8445\s+UNREACHABLE/m);
  expect(status).toMatch(/^PORT\s+WORKLOAD\s+WORKLOAD IF\s+NETWORK IF\s+NETNS\s+MTU/m);
  expect(status).toMatch(/^vm1-nic0\s+vm1\s+tap-vm1\s+veth-vm1\s+hostnet\s+1500\s+1463\s+2\s+10\.0\.0\.1 fd00::1$/m);
  const sas = await ctl(['--socket', sock, 'sas']);
  expect(sas).toMatch(new RegExp(`^0x00001100\\s+${K1}\\s+kp-enc\\s+gcm\\s+active\\s`, 'm'));
  expect(sas).toMatch(new RegExp(`^0x00002200\\s+${K2}\\s+kp-enc\\s+gcm\\s+receive\\s`, 'm'));
  const rules = await ctl(['--endpoint', base, 'rules']);
  expect(rules).toMatch(/^web\s+web\s+s1\s+encrypt\s+kp-enc\s+0x1100\s+vm1-nic0\s+11\s+9\s+1100\s+900$/m);
  const stats = await ctl(['--endpoint', base, 'stats']);
  expect(stats).toMatch(/^kp-enc\s+11\s+9\s+0\s+-$/m);
  expect(stats).toMatch(/^host drops: replay=5$/m);
  const explain = await ctl(['--endpoint', base, 'explain', '--src', '10.0.0.1', '--dst', '10.0.0.2', '--protocol', 'tcp', '--dport', '443']);
  expect(explain).toMatch(new RegExp(`^vm1-nic0\\s+vm1\\s+out\\s+encrypt\\s+web\\s+web\\s+kp-enc\\s+0x1100\\s+${K1}\\s+active$`, 'm'));
  const json = JSON.parse(await ctl(['--json', '--socket', sock, 'sas']));
  expect(json.sas.map((x: { key_id: string }) => x.key_id)).toEqual([K1, K2]);
  await expect(ctl(['--endpoint', base, 'explain', '--src', '10.0.0.1', '--dst', 'fd00::2'])).rejects.toThrow(/agent: src and dst must be IP addresses of the same family/);
  await expect(ctl(['--endpoint', 'http://127.0.0.1:1', 'status'])).rejects.toThrow(/cannot reach the agent at http:\/\/127\.0\.0\.1:1/);
});

test('dne ctl: options after the command (status --json), and the same refusals as the endpoint before anything is sent', async () => {
  const json = JSON.parse(await ctl(['status', '--json', '--endpoint', base]));
  expect(json.config.version).toBe(7);
  expect(JSON.parse(await ctl(['--endpoint', base, 'sas', '--json'])).sas.map((x: { key_id: string }) => x.key_id)).toEqual([K1, K2]);
  expect(JSON.parse(await ctl(['--socket', sock, 'explain', '--json', '--src', '10.0.0.1', '--dst', '10.0.0.2', '--dport', '443'])).results[0].rule_id).toBe('web');
  await expect(ctl(['--endpoint', 'notaurl', 'status'])).rejects.toThrow('--endpoint "notaurl" is not a URL: give http://HOST:PORT, e.g. http://127.0.0.1:9477 (or --socket PATH)');
  await expect(ctl(['status', '--endpoint', 'https://127.0.0.1:9477'])).rejects.toThrow('--endpoint must be an http:// URL such as http://127.0.0.1:9477');
  // An endpoint that would answer: the refusal comes from ctl itself, with the flag's name.
  await expect(ctl(['--endpoint', base, 'explain', '--src', '10.0.0.1', '--dst', '10.0.0.2', '--dport', '99999'])).rejects.toThrow(/^--dport must be a port number \(0-65535\)$/);
  await expect(ctl(['--endpoint', base, 'explain', '--src', '10.0.0.1', '--dst', '10.0.0.2', '--protocol', 'icmp', '--sport', '1'])).rejects.toThrow(/^--sport applies only to protocols tcp, udp and sctp, not icmp$/);
});

test('dnectl: its own usage line, the same commands and options as dne ctl', async () => {
  const p = buildDnectl();
  expect(p.helpInformation()).toMatch(/^Usage: dnectl \[options\] \[command\]$/m);
  expect(p.commands.map((c) => c.name())).toEqual(['status', 'sas', 'rules', 'stats', 'explain']);
  expect(p.commands[0]!.helpInformation()).toMatch(/^Usage: dnectl status \[options\]$/m);
  expect(JSON.parse(await dnectl(['--endpoint', base, 'sas', '--json'])).sas.length).toBe(2);
  expect(await dnectl(['--socket', sock, 'status'])).toMatch(/^config\s+version 7, revision 1/m);
  // Installed by npm as a command: package.json names the built file, which keeps the shebang.
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '../../package.json'), 'utf8'));
  expect(pkg.bin.dnectl).toBe('dist/ts/agent/dnectl.js');
  expect(fs.readFileSync(path.join(__dirname, '../../ts/agent/dnectl.ts'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
});

test('acceptance 7: no endpoint answer, metric, ctl output or log line contains key bytes', async () => {
  expect(t.keys.keyBytes.size).toBe(2);
  const outputs: string[] = [];
  for (const url of ['/healthz', '/readyz', '/status', '/sas', '/rules', '/stats', '/metrics', '/explain?src=10.0.0.1&dst=10.0.0.2&protocol=tcp&dport=443']) {
    outputs.push((await get(url)).body);
  }
  for (const cmd of ['status', 'sas', 'rules', 'stats']) {
    outputs.push(await ctl(['--endpoint', base, cmd]));
    outputs.push(await ctl(['--json', '--endpoint', base, cmd]));
  }
  outputs.push(JSON.stringify(t.agent.statsReport()));
  outputs.push(...t.lines);
  const all = outputs.join('\n');
  const raw = Buffer.from(all, 'utf8');
  let searched = 0;
  for (const { key, salt } of t.keys.keyBytes.values()) {
    for (const b of [key, salt, Buffer.concat([key, salt])]) {
      for (const enc of ['hex', 'base64', 'base64url'] as const) {
        const needle = b.toString(enc).replace(/=+$/, '');
        expect(all.toLowerCase()).not.toContain(needle.toLowerCase());
        searched++;
      }
      if (b.length >= 16) expect(raw.includes(b)).toBe(false);
    }
    // Sanity: the search would find them if they were there.
    expect(`x${key.toString('hex')}x`.toLowerCase()).toContain(key.toString('hex'));
  }
  expect(searched).toBe(18);
  expect(all.length).toBeGreaterThan(5000);
});

/** A GET with an explicit Host header, over TCP (the endpoint's port) or the unix socket. */
function getWithHost(host: string, via: 'tcp' | 'unix'): Promise<{ status: number; body: string }> {
  const target = via === 'tcp' ? { host: '127.0.0.1', port: Number(new URL(base).port) } : { socketPath: sock };
  return new Promise((resolve, reject) => {
    http
      .get({ ...target, path: '/status', headers: { host } }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
      })
      .on('error', reject);
  });
}

test('DNS rebinding: a Host that is not a loopback name with the endpoint\'s port is refused with 403 (TCP only)', async () => {
  const port = Number(new URL(base).port);
  for (const ok of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `127.1.2.3:${port}`, `[::1]:${port}`]) {
    const r = await getWithHost(ok, 'tcp');
    expect([ok, r.status]).toEqual([ok, 200]);
  }
  for (const bad of [`attacker.example:${port}`, `localhost.attacker.example:${port}`, `127.0.0.1.nip.io:${port}`, `127.0.0.1:${port + 1}`, 'localhost', `10.0.0.1:${port}`, `127.0.0.256:${port}`, `[::2]:${port}`]) {
    const r = await getWithHost(bad, 'tcp');
    expect([bad, r.status]).toEqual([bad, 403]);
    expect(JSON.parse(r.body)).toEqual({
      statusCode: 403,
      code: 'ERR_DNE_FORBIDDEN',
      error: 'Forbidden',
      message: `the Host header must be localhost, 127.x.x.x or [::1] with port ${port}: the endpoint answers local clients only`,
    });
    expect(r.body).not.toContain('"config"');
  }
  // The unix socket has no port and no browser reaches it: any Host is fine there.
  expect((await getWithHost('attacker.example', 'unix')).status).toBe(200);
});
