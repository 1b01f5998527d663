/**
 * The agent's YAML: a full example parses with defaults filled in; unknown
 * settings and bad values are refused with a message naming the setting.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadAgentConfig, parseAgentConfig } from '../../ts/agent/config';

let dir: string;
beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dne-agent-config-'))));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const YAML = `
hostId: h1
controller: https://10.1.0.5:8445
manager: https://10.1.0.4:8444
tls: { cert: pki/host-h1.crt, key: pki/host-h1.key, ca: pki/ca.crt }
filter: { workers: 2 }
workloads:
  - id: vm-web-1
    display_name: web 1
    tags: [{ scope: app, tag: web }]
    vnics:
      - id: vm-web-1-nic0
        mac: "02:00:00:00:00:01"
        ipv4: [10.0.0.1]
        ipv6: ["fd00::1"]
        workload_if: tap0
        network_if: veth-n0
        netns: host1
syslog: { target: "udp://127.0.0.1:5514" }
`;

function write(name: string, text: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

test('a YAML file with relative paths and defaults', () => {
  const c = loadAgentConfig({ config: write('agent.yaml', YAML) });
  expect(c.tls).toEqual({ cert: path.join(dir, 'pki/host-h1.crt'), key: path.join(dir, 'pki/host-h1.key'), ca: path.join(dir, 'pki/ca.crt') });
  expect(c.endpoint).toEqual({ host: '127.0.0.1', port: 9477 });
  expect(c.filter).toEqual({ workers: 2, defaultAction: 'allow', senderLowWater: 0 });
  expect(c.syslog).toEqual({ target: 'udp://127.0.0.1:5514', appName: 'dne-agent', facility: 'authpriv', perMinute: 10 });
  expect(c.controllerPoll).toEqual({ waitSeconds: 25, backoffMinMs: 500, backoffMaxMs: 30000 });
  expect(c.displayName).toBe('h1');
  expect(c.keyManagers).toEqual([]);
  expect(c.workloads[0]!.vnics[0]!.netns).toBe('host1');
});

test('flags override the endpoint', () => {
  const c = loadAgentConfig({ config: write('agent2.yaml', YAML), endpoint: '127.0.0.1:9999' });
  expect(c.endpoint).toEqual({ host: '127.0.0.1', port: 9999 });
  const s = loadAgentConfig({ config: write('agent3.yaml', YAML), socket: 'run/agent.sock' });
  expect(s.endpoint.socket).toBe(path.resolve('run/agent.sock'));
  expect(() => loadAgentConfig({ config: write('agent4.yaml', YAML), endpoint: '0.0.0.0:9477' })).toThrow(/local only/);
  // An out-of-range port is blamed on the flag, not on config/endpoint/port.
  expect(() => loadAgentConfig({ config: write('agent5.yaml', YAML), endpoint: '127.0.0.1:99999' })).toThrow(/^--endpoint port must be 0-65535 \(got 99999\); give 127\.0\.0\.1:PORT$/);
});

const base = () => ({ hostId: 'h1', controller: 'https://c:8445', manager: 'https://m:8444', tls: { cert: 'a', key: 'b', ca: 'c' } });
const vnic = { id: 'n0', mac: '02:00:00:00:00:01', ipv4: ['10.0.0.1'], workload_if: 'tap0', network_if: 'veth0' };

test.each([
  [{ ...base(), colour: 'blue' }, "config/colour is not a known setting"],
  [{ ...base(), filter: { workers: 2, turbo: true } }, 'config/filter/turbo is not a known setting'],
  [{ ...base(), controller: 'http://c:8445' }, 'config/controller has the wrong form (an https:// URL)'],
  [{ ...base(), tls: undefined }, 'config/tls is required'],
  [{ ...base(), filter: { workers: 0 } }, 'config/filter/workers must be'],
  [{ ...base(), filter: { defaultAction: 'reject' } }, 'config/filter/defaultAction must be one of allow, drop'],
  [{ ...base(), endpoint: { host: '10.0.0.1' } }, 'config/endpoint/host has the wrong form (a loopback address'],
  [{ ...base(), syslog: { target: 'tcp://x:514' } }, 'config/syslog/target has the wrong form (off, unix:/PATH or udp://HOST:PORT)'],
  [{ ...base(), syslog: { facility: 'security' } }, 'config/syslog/facility must be one of kern'],
  [{ ...base(), workloads: [{ id: 'w', vnics: [{ ...vnic, ipv4: ['10.0.0.300'] }] }] }, 'config/workloads/0/vnics/0/ipv4/0 must be an IPv4 address'],
  [{ ...base(), workloads: [{ id: 'w', vnics: [{ ...vnic, mac: 'zz' }] }] }, 'config/workloads/0/vnics/0/mac has the wrong form (a MAC address'],
  [{ ...base(), workloads: [{ id: 'w', vnics: [{ ...vnic, ipv4: [] }] }] }, 'needs at least one address'],
  [{ ...base(), workloads: [{ id: 'w', vnics: [vnic] }, { id: 'w', vnics: [{ ...vnic, id: 'n1' }] }] }, 'workload "w" is listed twice'],
  [{ ...base(), workloads: [{ id: 'w', vnics: [vnic, { ...vnic, id: 'n1', workload_if: 'tap1' }] }] }, 'interface veth0 already belongs to another protected port'],
  [{ ...base(), workloads: [{ id: 'w', vnics: [{ ...vnic, network_if: 'tap0' }] }] }, 'workload_if and network_if are the same interface'],
  [{ ...base(), controllerPoll: { backoffMinMs: 5000, backoffMaxMs: 1000 } }, 'backoffMinMs must not exceed backoffMaxMs'],
  [{ ...base(), hostId: 'bad host' }, 'config/hostId has the wrong form (a dne name)'],
])('refused #%#', (file, msg) => {
  expect(() => parseAgentConfig(file as Record<string, unknown>, dir)).toThrow(msg);
});

test('the same interface name in two different namespaces is two interfaces', () => {
  const c = parseAgentConfig(
    { ...base(), workloads: [{ id: 'w', vnics: [{ ...vnic, netns: 'a' }, { ...vnic, id: 'n1', netns: 'b' }] }] },
    dir,
  );
  expect(c.workloads[0]!.vnics.length).toBe(2);
});

test('unreadable and malformed files', () => {
  expect(() => loadAgentConfig({})).toThrow(/--config is required/);
  expect(() => loadAgentConfig({ config: path.join(dir, 'nope.yaml') })).toThrow(/cannot read config .*ENOENT/);
  expect(() => loadAgentConfig({ config: write('bad.yaml', 'hostId: [unclosed') })).toThrow(/is not valid YAML/);
  expect(() => loadAgentConfig({ config: write('list.yaml', '- a\n- b\n') })).toThrow(/must be a mapping/);
});
