/**
 * `dne selftest`: seals and opens real IPv4/IPv6 packets through the native
 * ESP engine with fresh random keys, shows what went on the wire, and checks
 * the properties the product promises: restoration byte for byte, no
 * plaintext in ENCRYPT packets, readable payload under INTEGRITY_ONLY,
 * tampering and replays rejected with their reasons, and distinct IVs for
 * distinct senders. Exit code 0 only if every check held.
 */
import { randomBytes } from 'node:crypto';
import { udp4, udp6 } from '../common/ip-packet';
import { EspEngine, EspMode } from '../native/esp-engine';
import { loadAddon } from '../native/loader';

export interface SelftestCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface SelftestReport {
  crypto: ReturnType<ReturnType<typeof loadAddon>['cryptoInfo']>;
  checks: SelftestCheck[];
  packets: Array<{
    family: 4 | 6;
    mode: EspMode;
    plainBytes: number;
    espBytes: number;
    spi: string;
    senderId: number;
    counter: string;
    iv: string;
  }>;
  ok: boolean;
}

const MARKER = Buffer.from('dne-selftest-marker:web->db:SELECT * FROM accounts');

export function runSelftest(): SelftestReport {
  const addon = loadAddon();
  const crypto = addon.cryptoInfo();
  const checks: SelftestCheck[] = [];
  const packets: SelftestReport['packets'] = [];
  const check = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });

  check(
    'one OpenSSL in the process',
    crypto.evpFromMainExecutable,
    `EVP resolved from ${crypto.evpObject} (${crypto.opensslVersion})`,
  );
  check(
    'CPU offers AES-NI and PCLMULQDQ',
    crypto.cpuAesni && crypto.cpuPclmulqdq,
    `aesni=${crypto.cpuAesni} pclmulqdq=${crypto.cpuPclmulqdq}`,
  );

  let spi = 0x1000 + (randomBytes(2).readUInt16BE() & 0x0fff);
  for (const mode of ['gcm', 'gmac'] as const) {
    for (const family of [4, 6] as const) {
      spi += 1;
      const key = randomBytes(16);
      const salt = randomBytes(4);
      const tx = new EspEngine();
      const rx = new EspEngine();
      tx.installSa({ spi, mode, key: Buffer.from(key), salt: Buffer.from(salt) });
      rx.installSa({ spi, mode, key, salt });
      const senderA = 0x00a001;
      const senderB = 0x00b002;
      tx.addSender(spi, senderA);
      tx.addSender(spi, senderB);
      const plain =
        family === 4
          ? udp4({ src: '10.10.1.2', dst: '10.10.2.2', payload: MARKER })
          : udp6({ src: 'fd00:10::2', dst: 'fd00:20::2', payload: MARKER });
      const label = `${mode.toUpperCase()} IPv${family}`;

      const a = tx.seal(spi, senderA, plain);
      const b = tx.seal(spi, senderB, plain);
      if (!a.ok || !b.ok) {
        check(`${label}: seal`, false, `refused: ${!a.ok ? a.reason : ''} ${!b.ok ? b.reason : ''}`);
        continue;
      }
      packets.push({
        family,
        mode,
        plainBytes: plain.length,
        espBytes: a.packet.length,
        spi: `0x${spi.toString(16)}`,
        senderId: senderA,
        counter: a.seq.toString(),
        iv: a.iv.toString(16).padStart(16, '0'),
      });
      check(`${label}: distinct senders, distinct IVs`, a.iv !== b.iv, `${a.iv.toString(16).padStart(16, '0')} vs ${b.iv.toString(16).padStart(16, '0')}`);
      const carriesMarker = a.packet.includes(MARKER);
      check(
        `${label}: payload ${mode === 'gcm' ? 'hidden' : 'readable (integrity only)'}`,
        mode === 'gcm' ? !carriesMarker : carriesMarker,
        `marker ${carriesMarker ? 'present' : 'absent'} in the ESP packet`,
      );
      const opened = rx.open(a.packet);
      check(
        `${label}: opens to the original bytes`,
        opened.ok && opened.packet.equals(plain),
        opened.ok ? `${opened.packet.length} bytes, sender ${opened.senderId}` : opened.reason,
      );
      const replay = rx.open(a.packet);
      check(`${label}: replay rejected`, !replay.ok && replay.reason === 'replay', replay.ok ? 'accepted' : replay.reason);
      const tampered = Buffer.from(b.packet);
      tampered[tampered.length - 20]! ^= 0x01;
      const t = rx.open(tampered);
      check(`${label}: tampering rejected`, !t.ok && t.reason === 'icv_failure', t.ok ? 'accepted' : t.reason);
      const c = rx.counters(spi)!;
      check(
        `${label}: drops counted by reason`,
        c.drops.replay === 1n && c.drops.icv_failure === 1n && c.openedPackets === 1n,
        `opened=${c.openedPackets} replay=${c.drops.replay} icv_failure=${c.drops.icv_failure}`,
      );
    }
  }
  return { crypto, checks, packets, ok: checks.every((c) => c.ok) };
}

export function printSelftest(r: SelftestReport, out: (line: string) => void): void {
  out(`dne selftest: ${r.crypto.opensslVersion} via ${r.crypto.evpObject}`);
  out('');
  out('  mode  IP  plain  ESP   SPI      sender  counter  IV');
  for (const p of r.packets) {
    out(
      `  ${p.mode.padEnd(5)} v${p.family}  ${String(p.plainBytes).padStart(5)}  ${String(p.espBytes).padStart(4)}  ` +
        `${p.spi.padEnd(7)}  ${('0x' + p.senderId.toString(16)).padEnd(6)}  ${p.counter.padStart(7)}  ${p.iv}`,
    );
  }
  out('');
  for (const c of r.checks) out(`  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.name}: ${c.detail}`);
  out('');
  const failed = r.checks.filter((c) => !c.ok).length;
  out(failed === 0 ? `selftest passed (${r.checks.length} checks)` : `selftest FAILED (${failed} of ${r.checks.length} checks)`);
}
