/**
 * Interop with independent ESP implementations, both directions, IPv4 and
 * IPv6, GCM (RFC 4106) and GMAC (RFC 4543):
 *   - packets sealed here are decrypted by scapy's SecurityAssociation and
 *     by tshark's ESP dissector with an esp_sa table;
 *   - packets made by scapy open here, and scapy packets with a flipped bit
 *     are rejected.
 * Debian's python3-scapy and tshark are installed by scripts/setup.
 * tshark 4.0 has no GMAC: for GMAC it shows the clear payload and trailer
 * but cannot check the ICV (scapy checks it).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { udp4, udp6 } from '../../ts/common/ip-packet';
import { EspEngine, EspMode } from '../../ts/native/esp-engine';
import { packageRoot } from '../../ts/native/loader';

const PY = '/usr/bin/python3';
const interop = path.join(packageRoot(), 'test', 'interop');

function py<T>(script: string, request: object): T {
  const r = spawnSync(PY, [path.join(interop, script)], {
    input: JSON.stringify(request),
    encoding: 'utf8',
    timeout: 120000,
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`${script} exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

const MARKER = Buffer.from('dne-interop-marker: card 4111-1111-1111-1111');

interface Case {
  mode: EspMode;
  family: 4 | 6;
  keyLen: 16 | 32;
}
const cases: Case[] = [];
for (const mode of ['gcm', 'gmac'] as const)
  for (const family of [4, 6] as const) for (const keyLen of [16, 32] as const) cases.push({ mode, family, keyLen });

const name = (c: Case) => `${c.mode} IPv${c.family} AES-${c.keyLen * 8}`;

function plainPackets(family: 4 | 6, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const payload = Buffer.concat([MARKER, Buffer.from(` #${i} `), randomBytes(i * 37)]);
    out.push(
      family === 4
        ? udp4({ src: '10.99.1.2', dst: '10.99.2.2', srcPort: 40000 + i, payload })
        : udp6({ src: 'fd00:99:1::2', dst: 'fd00:99:2::2', srcPort: 40000 + i, payload }),
    );
  }
  return out;
}

function setup(c: Case, spi: number) {
  const key = randomBytes(c.keyLen);
  const salt = randomBytes(4);
  const tx = new EspEngine();
  const rx = new EspEngine();
  tx.installSa({ spi, mode: c.mode, key: Buffer.from(key), salt: Buffer.from(salt) });
  rx.installSa({ spi, mode: c.mode, key: Buffer.from(key), salt: Buffer.from(salt) });
  return { tx, rx, key, salt };
}

describe.each(cases)('interop $mode IPv$family key $keyLen', (c) => {
  const spi = 0x10000 + cases.indexOf(c);

  test(`${name(c)}: our packets decrypt in scapy and tshark`, () => {
    const { tx, key, salt } = setup(c, spi);
    tx.addSender(spi, 0x123456);
    const plain = plainPackets(c.family, 6);
    const sealed = plain.map((p) => {
      const s = tx.seal(spi, 0x123456, p);
      if (!s.ok) throw new Error(s.reason);
      expect(s.packet.includes(MARKER)).toBe(c.mode === 'gmac');
      return s.packet;
    });

    const sc = py<{ results: Array<{ ok: boolean; packet?: string; error?: string }> }>('scapy_esp.py', {
      op: 'decrypt',
      mode: c.mode,
      spi,
      key_hex: key.toString('hex'),
      salt_hex: salt.toString('hex'),
      packets: sealed.map((p) => p.toString('hex')),
    });
    sc.results.forEach((r, i) => {
      expect(r.error).toBeUndefined();
      expect(r.packet).toBe(plain[i]!.toString('hex'));
    });

    const ts = py<{
      packets: Array<{ esp_spi: number; esp_seq: number; decrypted: boolean; inner_protocol: number; payload_hex: string; icv_ok: boolean | null }>;
    }>('tshark_esp.py', {
      sas: [{ family: c.family, src: '*', dst: '*', spi, mode: c.mode, key_hex: key.toString('hex'), salt_hex: salt.toString('hex') }],
      packets: sealed.map((p) => p.toString('hex')),
    });
    ts.packets.forEach((p, i) => {
      expect(p.esp_spi).toBe(spi);
      expect(p.esp_seq).toBe(i + 1);
      expect(p.decrypted).toBe(true);
      expect(p.inner_protocol).toBe(17);
      expect(p.payload_hex).toBe(plain[i]!.subarray(c.family === 4 ? 28 : 48).toString('hex'));
      // tshark verifies GCM ICVs; it has no GMAC verifier (null).
      expect(p.icv_ok).toBe(c.mode === 'gcm' ? true : null);
    });
  });

  test(`${name(c)}: scapy's packets open here, byte for byte, and tampering is caught`, () => {
    const { rx, key, salt } = setup(c, spi);
    const plain = plainPackets(c.family, 6);
    // Group-SA IVs as RFC 6054 lays them out: sender ID 0xabcdef, counter i+1.
    const ivs = plain.map((_, i) => ((0xabcdefn << 40n) | BigInt(i + 1)).toString(16).padStart(16, '0'));
    const made = py<{ packets: string[] }>('scapy_esp.py', {
      op: 'encrypt',
      mode: c.mode,
      spi,
      key_hex: key.toString('hex'),
      salt_hex: salt.toString('hex'),
      packets: plain.map((p) => p.toString('hex')),
      seqs: plain.map((_, i) => i + 1),
      ivs,
    });
    made.packets.forEach((hex, i) => {
      const pkt = Buffer.from(hex, 'hex');
      const tampered = Buffer.from(pkt);
      tampered[tampered.length - 17]! ^= 0x04; // last trailer byte, under the ICV
      expect(rx.open(tampered)).toEqual({ ok: false, reason: 'icv_failure' });
      const o = rx.open(pkt);
      if (!o.ok) throw new Error(`packet ${i}: ${o.reason}`);
      expect(o.packet.toString('hex')).toBe(plain[i]!.toString('hex'));
      expect(o.senderId).toBe(0xabcdef);
      expect(o.counter).toBe(BigInt(i + 1));
    });
    // Replaying scapy's first packet is refused.
    expect(rx.open(Buffer.from(made.packets[0]!, 'hex'))).toEqual({ ok: false, reason: 'replay' });
  });
});

test('scapy packets with arbitrary IVs open on a classic single-sender SA (replay on the sequence number)', () => {
  const key = randomBytes(16);
  const salt = randomBytes(4);
  const rx = new EspEngine();
  const spi = 0x20000;
  rx.installSa({ spi, mode: 'gcm', key: Buffer.from(key), salt: Buffer.from(salt), replayMode: 'esp-seq' });
  const plain = plainPackets(4, 4);
  const made = py<{ packets: string[] }>('scapy_esp.py', {
    op: 'encrypt',
    mode: 'gcm',
    spi,
    key_hex: key.toString('hex'),
    salt_hex: salt.toString('hex'),
    packets: plain.map((p) => p.toString('hex')),
    seqs: [1, 2, 3, 4],
    ivs: plain.map(() => randomBytes(8).toString('hex')),
  });
  made.packets.forEach((hex, i) => {
    const o = rx.open(Buffer.from(hex, 'hex'));
    expect(o.ok && o.packet.equals(plain[i]!)).toBe(true);
    expect(o.ok && o.seq).toBe(BigInt(i + 1));
  });
  expect(rx.open(Buffer.from(made.packets[2]!, 'hex'))).toEqual({ ok: false, reason: 'replay' });
});
