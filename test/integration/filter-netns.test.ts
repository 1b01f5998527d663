/**
 * The filter on real interfaces: two hosts in network namespaces, one
 * workload each behind a protected port, veth offloads left at their
 * defaults. Real ping (v4/v6), iperf3 (TCP, UDP), tcpdump on the underlay,
 * tshark decrypting what was captured, scapy injecting on the wire.
 * Runs as root (CI does); the topology is removed afterwards, also on failure.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ipPacket } from '../../ts/common/ip-packet';
import { EspEngine } from '../../ts/native/esp-engine';
import { Action, Filter } from '../../ts/native/filter';
import { packageRoot } from '../../ts/native/loader';
import { nsExec, Topology, waitFor, Workload } from './netns';
import { ipView, readPcap } from './pcap';
import { KP_ENC, KP_INT, pairTables, SPI_GCM, SPI_GMAC } from './tables';

jest.setTimeout(180000);

const ROOT = packageRoot();
const PY = '/usr/bin/python3';
const MARKER = 'dne-wire-marker-7f3a';
const MARKER_HEX = Buffer.from(MARKER).toString('hex').slice(0, 32); // ping -p takes up to 16 bytes

let topo: Topology;
let w1: Workload;
let w2: Workload;
const filters: Filter[] = [];
const gcm = { key: randomBytes(16), salt: randomBytes(4) };
const gmac = { key: randomBytes(16), salt: randomBytes(4) };
let tmp: string;

function expand6(a: string): string {
  const [h, t] = a.includes('::') ? a.split('::') : [a, undefined];
  const hs = h ? h.split(':') : [];
  const ts = t ? t.split(':') : [];
  const g = t === undefined ? hs : [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts];
  return g.map((x) => x.padStart(4, '0')).join(':');
}


function apply(action: Action): void {
  filters[0]!.setTables({ ports: { w1: pairTables(action, w1, w2, 'source') } });
  filters[1]!.setTables({ ports: { w2: pairTables(action, w2, w1, 'destination') } });
}

function ping(w: Workload, dst: string, extra: string[] = []) {
  return nsExec(w.ns, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '2', '-p', MARKER_HEX, ...extra, dst], 20000);
}

async function withCapture<T>(name: string, fn: () => Promise<T> | T): Promise<{ result: T; file: string }> {
  const file = path.join(tmp, `${name}.pcap`);
  const cap = topo.spawnIn(w1.host.ns, ['tcpdump', '-i', 'ul', '--immediate-mode', '-U', '-s', '0', '-n', '-w', file]);
  // tcpdump says "listening on" once its socket is capturing.
  let listening = false;
  cap.stderr!.on('data', (d: Buffer) => (listening ||= d.toString().includes('listening on')));
  if (!(await waitFor(() => listening, 10000))) throw new Error('tcpdump did not start');
  const result = await fn();
  await new Promise((r) => setTimeout(r, 500));
  topo.kill(cap.pid);
  await new Promise<void>((r) => (cap.exitCode !== null ? r() : cap.once('exit', () => r())));
  return { result, file };
}

async function iperf(client: Workload, server: Workload, args: string[]): Promise<{ bps: number; bytes: number; lost?: number }> {
  const srv = topo.spawnIn(server.ns, ['iperf3', '-s', '-1', '-p', '5201']);
  await new Promise((r) => setTimeout(r, 300));
  const r = nsExec(client.ns, ['iperf3', '-c', server.ipv4, '-p', '5201', '-J', ...args], 60000);
  topo.kill(srv.pid);
  if (r.status !== 0) throw new Error(`iperf3 failed: ${r.stdout.slice(0, 500)} ${r.stderr}`);
  const j = JSON.parse(r.stdout);
  if (args.includes('-u')) {
    const s = j.end.sum;
    return { bps: s.bits_per_second, bytes: s.bytes, lost: s.lost_percent };
  }
  return { bps: j.end.sum_received.bits_per_second, bytes: j.end.sum_received.bytes };
}

function sendMarkerUdp(from: Workload, to: Workload): void {
  const code = `import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'${MARKER}' * 4, ('${to.ipv4}', 5301))`;
  nsExec(from.ns, [PY, '-c', code]);
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dne-filter-'));
  topo = new Topology([1, 1]);
  [w1, w2] = topo.workloads as [Workload, Workload];
  for (const [i, w] of [w1, w2].entries()) {
    const f = new Filter({ workers: 1 });
    f.addPort({ name: w.name, workloadIf: w.workloadIf, networkIf: w.networkIf, workloadNetns: w.host.ns, networkNetns: w.host.ns });
    f.installSa({ spi: SPI_GCM, mode: 'gcm', key: Buffer.from(gcm.key), salt: Buffer.from(gcm.salt), keyPolicy: KP_ENC, senderIds: [i + 1] });
    f.installSa({ spi: SPI_GMAC, mode: 'gmac', key: Buffer.from(gmac.key), salt: Buffer.from(gmac.salt), keyPolicy: KP_INT, senderIds: [i + 1] });
    f.start();
    filters.push(f);
  }
});

beforeAll(async () => {
  // Fresh interfaces and bridges take a moment before they forward; wait
  // until the two workloads reach each other (in clear: no tables yet).
  const up = await waitFor(() => nsExec(w1.ns, ['ping', '-n', '-c', '1', '-W', '1', w2.ipv4]).status === 0, 15000, 200);
  if (!up) throw new Error('the test topology never came up');
  nsExec(w1.ns, ['ping', '-n', '-c', '1', '-W', '1', w2.ipv6]);
});

afterAll(() => {
  for (const f of filters) f.close();
  topo?.destroy();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const frames: Record<string, Buffer[]> = {};

describe.each(['encrypt', 'integrity', 'allow'] as const)('%s', (action) => {
  test(`ping v4/v6, TCP and UDP work, and the wire shows what ${action} promises`, async () => {
    apply(action);
    const { result, file } = await withCapture(action, async () => {
      const p4 = ping(w1, w2.ipv4);
      const p6 = ping(w1, w2.ipv6);
      sendMarkerUdp(w1, w2);
      const tcp = await iperf(w1, w2, ['-t', '2']);
      const udp = await iperf(w1, w2, ['-u', '-b', '20M', '-t', '2', '-l', '1200']);
      return { p4, p6, tcp, udp };
    });
    expect(result.p4.stdout).toMatch(/3 received, 0% packet loss/);
    expect(result.p6.stdout).toMatch(/3 received, 0% packet loss/);
    expect(result.tcp.bytes).toBeGreaterThan(1e6);
    expect(result.udp.bytes).toBeGreaterThan(1e6);
    expect(result.udp.lost!).toBeLessThan(5);
    process.stdout.write(
      `[${action}] TCP ${(result.tcp.bps / 1e9).toFixed(2)} Gbit/s, UDP ${(result.udp.bps / 1e6).toFixed(0)} Mbit/s, loss ${result.udp.lost}%\n`,
    );

    const { frames: cap } = readPcap(file);
    const workloadAddrs = new Set([w1.ipv4, w2.ipv4, expand6(w1.ipv6), expand6(w2.ipv6)]);
    let esp = 0;
    let clear = 0;
    let maxIp = 0;
    let markerSeen = 0;
    const espFrames: Buffer[] = [];
    for (const f of cap) {
      const v = ipView(f.data);
      if (!v || !workloadAddrs.has(v.src) || !workloadAddrs.has(v.dst)) continue;
      const isNd = v.proto === 58 && f.data[v.l4]! >= 133 && f.data[v.l4]! <= 137;
      if (isNd) continue;
      if (f.data.includes(MARKER)) markerSeen++;
      if (v.proto === 50) {
        esp++;
        maxIp = Math.max(maxIp, v.ipLen);
        espFrames.push(Buffer.from(f.data));
      } else {
        clear++;
      }
    }
    frames[action] = espFrames;
    if (action === 'allow') {
      expect(esp).toBe(0);
      expect(markerSeen).toBeGreaterThan(0);
    } else {
      // Every workload packet on the wire is ESP, and none is over the MTU.
      expect(clear).toBe(0);
      expect(esp).toBeGreaterThan(1000);
      expect(maxIp).toBeLessThanOrEqual(1500);
      // ENCRYPT hides the marker; INTEGRITY_ONLY leaves it readable.
      if (action === 'encrypt') expect(markerSeen).toBe(0);
      else expect(markerSeen).toBeGreaterThan(0);
    }
    for (const f of filters) {
      const d = f.drops();
      expect(d.icv_failure + d.replay + d.malformed + d.unknown_spi + d.no_sa + d.ring_full).toBe(0n);
    }
  });
});

test('tshark decrypts the captured ESP with the key, and the marker is inside', () => {
  const esp = frames.encrypt!;
  expect(esp.length).toBeGreaterThan(0);
  // The ping packets carry the marker pattern and come first; add an even
  // spread of the rest, at most 200 packets (tshark's JSON grows fast).
  const step = Math.max(1, Math.ceil(esp.length / 160));
  const sample = esp.filter((_, i) => i < 40 || i % step === 0).slice(0, 200).map((f) => f.subarray(14).toString('hex'));
  const r = spawnSync(PY, [path.join(ROOT, 'test', 'interop', 'tshark_esp.py')], {
    input: JSON.stringify({
      sas: [4, 6].map((family) => ({
        family,
        src: '*',
        dst: '*',
        spi: SPI_GCM,
        mode: 'gcm',
        key_hex: gcm.key.toString('hex'),
        salt_hex: gcm.salt.toString('hex'),
      })),
      packets: sample,
    }),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  expect(r.status).toBe(0);
  const out = JSON.parse(r.stdout).packets as Array<{ decrypted: boolean; icv_ok: boolean; inner_hex: string | null }>;
  expect(out.every((p) => p.decrypted && p.icv_ok === true)).toBe(true);
  const withMarker = out.filter((p) => p.inner_hex && Buffer.from(p.inner_hex, 'hex').includes(Buffer.from(MARKER_HEX, 'hex')));
  expect(withMarker.length).toBeGreaterThan(0);
});

test('a 1500-byte DF ping gets ICMP frag-needed, the route cache learns the PMTU, TCP with default MSS completes', async () => {
  apply('encrypt');
  nsExec(w1.ns, ['ip', 'route', 'flush', 'cache']);
  const big = nsExec(w1.ns, ['ping', '-n', '-c', '2', '-i', '0.3', '-W', '1', '-M', 'do', '-s', '1472', w2.ipv4], 10000);
  expect(`${big.stdout}${big.stderr}`).toMatch(/mtu = 1463|Frag needed|message too long/i);
  const route = nsExec(w1.ns, ['ip', 'route', 'get', w2.ipv4]);
  expect(route.stdout).toMatch(/mtu 1463/);
  const big6 = nsExec(w1.ns, ['ping', '-n', '-c', '2', '-i', '0.3', '-W', '1', '-M', 'do', '-s', '1452', w2.ipv6], 10000);
  expect(`${big6.stdout}${big6.stderr}`).toMatch(/mtu = 1463|Packet too big|message too long/i);
  expect(nsExec(w1.ns, ['ip', '-6', 'route', 'get', w2.ipv6]).stdout).toMatch(/mtu 1463/);
  // Smaller packets still get through the same rule.
  expect(nsExec(w1.ns, ['ping', '-n', '-c', '1', '-M', 'do', '-s', '1400', w2.ipv4], 10000).status).toBe(0);
  const tcp = await iperf(w1, w2, ['-t', '2']);
  expect(tcp.bytes).toBeGreaterThan(1e6);
  expect(filters[0]!.drops().mtu).toBeGreaterThan(0n);
  expect(filters[0]!.portStats('w1')!.counters.icmp_sent).toBeGreaterThan(0n);
});

test('ESP injected on the wire (malformed, truncated, unknown SPI, tampered, replayed) and clear text are dropped by reason; traffic goes on', async () => {
  apply('encrypt');
  // Fresh ESP from w1 to w2 to work from.
  const { file } = await withCapture('inject-source', () => ping(w1, w2.ipv4));
  const toW2 = readPcap(file).frames.map((f) => Buffer.from(f.data)).filter((f) => {
    const v = ipView(f);
    return v && v.proto === 50 && v.dst === w2.ipv4;
  });
  expect(toW2.length).toBeGreaterThan(0);
  const good = toW2[0]!;
  const l3 = 14;
  const fixIp = (f: Buffer) => {
    f.writeUInt16BE(f.length - l3, l3 + 2);
    f.writeUInt16BE(0, l3 + 10);
    let s = 0;
    for (let i = 0; i < 20; i += 2) s += f.readUInt16BE(l3 + i);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    f.writeUInt16BE(~s & 0xffff, l3 + 10);
    return f;
  };
  const replayed = Buffer.from(good);
  // A packet the receiver has not seen (a sender ID no host uses), then
  // tampered: it must fail the ICV, not the replay check.
  const fresh = new EspEngine();
  fresh.installSa({ spi: SPI_GCM, mode: 'gcm', key: Buffer.from(gcm.key), salt: Buffer.from(gcm.salt) });
  fresh.addSender(SPI_GCM, 0xabcd);
  const sealed = fresh.seal(SPI_GCM, 0xabcd, ipPacket({ src: w1.ipv4, dst: w2.ipv4, protocol: 1, payload: Buffer.alloc(32) }));
  if (!sealed.ok) throw new Error(sealed.reason);
  const tampered = Buffer.concat([good.subarray(0, l3), sealed.packet]);
  tampered[tampered.length - 20]! ^= 0x40;
  const unknown = Buffer.from(good);
  unknown.writeUInt32BE(0xbadbad, l3 + 20);
  // Cut inside the ESP header; padded to the 60-byte Ethernet minimum as a
  // NIC would, the IP length says where the packet ends.
  const truncated = fixIp(Buffer.from(good.subarray(0, l3 + 20 + 12)));
  const truncatedFrame = Buffer.concat([truncated, Buffer.alloc(60 - truncated.length)]);
  const malformed = Buffer.from(good);
  malformed.writeUInt16BE(4000, l3 + 2); // IP length beyond the frame
  // A clear ICMP echo from w1's address where ENCRYPT is required.
  const clear = Buffer.from(good.subarray(0, l3 + 20 + 16));
  clear[l3 + 9] = 1;
  clear.fill(0, l3 + 20);
  clear[l3 + 20] = 8;
  fixIp(clear);

  const before = filters[1]!.drops();
  const r = spawnSync('ip', ['netns', 'exec', w1.host.ns, PY, path.join(ROOT, 'test', 'interop', 'inject.py')], {
    input: JSON.stringify({ iface: 'ul', frames: [replayed, tampered, unknown, truncatedFrame, malformed, clear].map((f) => f.toString('hex')) }),
    encoding: 'utf8',
  });
  expect(r.status).toBe(0);
  const ok = await waitFor(() => {
    const d = filters[1]!.drops();
    return d.policy > before.policy && d.malformed >= before.malformed + 2n;
  }, 5000);
  const after = filters[1]!.drops();
  expect(ok).toBe(true);
  expect(after.replay - before.replay).toBe(1n);
  expect(after.icv_failure - before.icv_failure).toBe(1n);
  expect(after.unknown_spi - before.unknown_spi).toBe(1n);
  expect(after.malformed - before.malformed).toBe(2n);
  expect(after.policy - before.policy).toBe(1n);
  // Per-SA counters name the SA that saw the bad packets.
  expect(filters[1]!.saStats(SPI_GCM)!.drops.icv_failure).toBeGreaterThanOrEqual(1n);
  // And forwarding continues.
  expect(ping(w1, w2.ipv4).stdout).toMatch(/3 received/);
});
