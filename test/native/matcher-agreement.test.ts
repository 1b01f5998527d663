/**
 * The native classifier agrees with the plain TypeScript reference over many
 * random rule sets and packets, both directions, IPv4 and IPv6.
 */
import { ethFrame, ipPacket } from '../../ts/common/ip-packet';
import { ACTIONS, classifyNative, PortTableSpec, RuleSpec } from '../../ts/native/filter';
import { RefFlow, refClassify } from '../../ts/native/reference-matcher';
import { rng } from '../fixtures/prng';


const V4 = ['10.0.0.1', '10.0.0.2', '10.0.1.7', '10.1.2.3', '192.168.5.9', '172.16.0.1'];
const V6 = ['fd00::1', 'fd00::2', 'fd00:0:0:1::7', 'fd01::3', '2001:db8::9'];
const PREFIX4 = ['10.0.0.0/8', '10.0.0.0/24', '10.0.0.1/32', '10.0.1.0/24', '192.168.0.0/16', '0.0.0.0/0', '10.1.2.3'];
const PREFIX6 = ['fd00::/16', 'fd00::/64', 'fd00::1/128', 'fd00:0:0:1::/64', '2001:db8::/32', '::/0', 'fd01::3'];
const PORTS = [22, 53, 80, 443, 5201, 8080, 40000, 65535];

function pick<T>(r: () => number, a: readonly T[]): T {
  return a[Math.floor(r() * a.length)]!;
}

function randomRule(r: () => number, id: number): RuleSpec {
  const v = r();
  const pfx = v < 0.4 ? PREFIX4 : v < 0.8 ? PREFIX6 : [...PREFIX4, ...PREFIX6];
  const set = () => (r() < 0.25 ? [] : Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick(r, pfx)));
  const ports: Array<[number, number]> = [];
  if (r() < 0.6) {
    for (let i = 0; i < 1 + Math.floor(r() * 2); i++) {
      const lo = pick(r, PORTS);
      ports.push([lo, r() < 0.5 ? lo : Math.min(65535, lo + Math.floor(r() * 3000))]);
    }
  }
  return {
    ruleId: id,
    role: r() < 0.5 ? 'source' : 'destination',
    ipVersion: pick(r, [null, null, 4, 6] as const),
    protocol: pick(r, [null, 6, 17, 1, 58] as const),
    local: set(),
    remote: set(),
    ports,
    action: pick(r, ACTIONS),
    keyPolicy: 1 + Math.floor(r() * 4),
    txSpi: 0,
  };
}

function randomFlow(r: () => number): RefFlow {
  const six = r() < 0.45;
  const protocol = pick(r, six ? [6, 17, 58] : [6, 17, 1]);
  const f: RefFlow = { family: six ? 6 : 4, protocol, src: pick(r, six ? V6 : V4), dst: pick(r, six ? V6 : V4) };
  if (protocol === 6 || protocol === 17) {
    f.sport = r() < 0.5 ? pick(r, PORTS) : Math.floor(r() * 65536);
    f.dport = r() < 0.5 ? pick(r, PORTS) : Math.floor(r() * 65536);
  }
  return f;
}

test('native and reference classifiers agree on 300 random tables x 100 packets x 2 directions', () => {
  const r = rng(20261203);
  let compared = 0;
  const seen = new Set<string>();
  for (let t = 0; t < 300; t++) {
    const table: PortTableSpec = {
      addresses: [],
      defaultAction: pick(r, ['allow', 'drop'] as const),
      rules: Array.from({ length: 1 + Math.floor(r() * 12) }, (_, i) => randomRule(r, t * 100 + i)),
    };
    for (let p = 0; p < 100; p++) {
      const f = randomFlow(r);
      const frame = ethFrame(
        ipPacket({ src: f.src, dst: f.dst, protocol: f.protocol, srcPort: f.sport, dstPort: f.dport }),
      );
      for (const dir of ['out', 'in'] as const) {
        const want = refClassify(table, f, dir);
        const got = classifyNative(table, frame, dir);
        if (!got || got.action !== want.action || got.ruleId !== want.ruleId) {
          throw new Error(
            `disagreement at table ${t} packet ${p} ${dir}: native ${JSON.stringify(got)} reference ${JSON.stringify(want)}\n` +
              `flow ${JSON.stringify(f)}\ntable ${JSON.stringify(table, null, 1)}`,
          );
        }
        seen.add(`${want.action}:${want.ruleId === null ? 'default' : 'rule'}`);
        compared++;
      }
    }
  }
  expect(compared).toBe(60000);
  // The random space exercises every action, both through rules and defaults.
  for (const a of ['allow', 'encrypt', 'integrity', 'drop']) expect(seen.has(`${a}:rule`)).toBe(true);
  expect(seen.has('allow:default') && seen.has('drop:default')).toBe(true);
});

test('classifyNative rejects malformed tables with the field named', () => {
  const base: PortTableSpec = { addresses: [], defaultAction: 'allow', rules: [] };
  const rule = randomRule(rng(1), 1);
  const frame = ethFrame(ipPacket({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 17, srcPort: 1, dstPort: 2 }));
  expect(() => classifyNative({ ...base, rules: [{ ...rule, remote: ['10.0.0.0/33'] }] }, frame, 'out')).toThrow(
    /rules\[0\]\.remote\[0\] is not an IPv4\/IPv6 address or prefix/,
  );
  expect(() => classifyNative({ ...base, rules: [{ ...rule, ports: [[80, 20]] }] }, frame, 'out')).toThrow(/ports\[0\]/);
  expect(() => classifyNative({ ...base, rules: [{ ...rule, action: 'maybe' as never }] }, frame, 'out')).toThrow(
    /action must be one of/,
  );
  expect(() => classifyNative({ ...base, defaultAction: 'x' as never }, frame, 'out')).toThrow(/defaultAction/);
  expect(classifyNative(base, Buffer.alloc(10), 'out')).toBeNull();
});
