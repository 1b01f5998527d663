/**
 * The addon through its TypeScript face: bad arguments first, then round
 * trips, the status table, key handling and the counters.
 */
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { udp4, udp6 } from '../../ts/common/ip-packet';
import { DneError } from '../../ts/common/errors';
import { STATUS_NAMES } from '../../ts/native/codes';
import { EspEngine } from '../../ts/native/esp-engine';
import { loadAddon, packageRoot } from '../../ts/native/loader';

const marker = Buffer.from('jest-marker-0123456789');
const v4 = () => udp4({ src: '10.0.0.1', dst: '10.0.0.2', payload: marker });
const v6 = () => udp6({ src: 'fd00::1', dst: 'fd00::2', payload: marker });

function pair(mode: 'gcm' | 'gmac' = 'gcm', spi = 0x4000) {
  const key = randomBytes(16);
  const salt = randomBytes(4);
  const tx = new EspEngine();
  const rx = new EspEngine();
  tx.installSa({ spi, mode, key: Buffer.from(key), salt: Buffer.from(salt) });
  rx.installSa({ spi, mode, key: Buffer.from(key), salt: Buffer.from(salt) });
  tx.addSender(spi, 1);
  return { tx, rx, key, salt, spi };
}

describe('bad arguments', () => {
  const e = new EspEngine();
  const good = () => ({ spi: 0x5000, mode: 'gcm' as const, key: randomBytes(16), salt: randomBytes(4) });

  test.each([
    [{ spi: 0 }, /spi must be an integer from 256/],
    [{ spi: 255 }, /spi must be an integer from 256/],
    [{ spi: 2 ** 32 }, /spi must be an integer/],
    [{ spi: 1.5 }, /spi must be an integer/],
    [{ spi: '4096' }, /spi must be an integer/],
    [{ mode: 'aes' }, /mode must be "gcm" or "gmac"/],
    [{ key: randomBytes(24) }, /key must be 16 or 32 bytes .* got 24/],
    [{ key: 'secret' }, /key must be a Buffer/],
    [{ salt: randomBytes(3) }, /salt must be 4 bytes, got 3/],
    [{ senderIdBits: 12 }, /senderIdBits must be 8, 16, 24 or 32/],
    [{ replayWindow: 100 }, /replayWindow must be a multiple of 64/],
    [{ replayWindow: 131072 }, /replayWindow must be a multiple of 64/],
    [{ replayMode: 'seq' }, /replayMode must be/],
    [{ maxSenders: 0 }, /maxSenders must be an integer from 1/],
    [{ esn: 'yes' }, /esn must be a boolean/],
    [{ initialSeq: -1n }, /initialSeq must be a bigint/],
  ])('installSa rejects %p', (patch, message) => {
    expect(() => e.installSa({ ...good(), ...(patch as object) } as never)).toThrow(message);
  });

  test('installSa of a SPI that is already installed is refused, state unchanged', () => {
    const p = pair();
    expect(() => p.rx.installSa({ spi: p.spi, mode: 'gcm', key: randomBytes(16), salt: randomBytes(4) })).toThrow(
      /refused: bad_config/,
    );
    const s = p.tx.seal(p.spi, 1, v4());
    expect(s.ok && p.rx.open(s.packet).ok).toBe(true);
  });

  test('other methods name the bad argument', () => {
    expect(() => e.seal(-1, 1, v4())).toThrow(/spi must be/);
    expect(() => e.seal(0x4000, 1, 'packet' as never)).toThrow(/packet must be a Buffer/);
    expect(() => e.open(null as never)).toThrow(/packet must be a Buffer/);
    expect(() => e.addSender(0x4000, 1, { firstCounter: 5 as never })).toThrow(/firstCounter must be a bigint/);
    expect(() => e.sealWithIv(0x4000, 1n, -3n, v4())).toThrow(/iv must be a bigint/);
    expect(() => e.addSender(0x7777, 1)).toThrow(/sender 1 on SA 0x7777 was refused: unknown_spi/);
  });

  test('the raw addon throws TypeError rather than crashing on garbage', () => {
    const raw = new (loadAddon().EspEngine)();
    // Jest runs tests in their own realm, so the addon's TypeError is matched
    // by name and message rather than by constructor.
    expect(() => raw.installSa(undefined as never, undefined as never)).toThrow(/params must be an object/);
    expect(() => raw.installSa({ spi: 1 } as never, Buffer.alloc(20))).toThrow(/numeric field missing/);
    expect(() => raw.seal(1, 1, {} as never)).toThrow(/packet must be a Uint8Array/);
    expect(() => raw.open(new Uint16Array(4) as never)).toThrow(/packet must be a Uint8Array/);
    try {
      raw.open(42 as never);
    } catch (err) {
      expect((err as Error).name).toBe('TypeError');
    }
    expect(() => raw.saCounters(1, new BigUint64Array(2))).toThrow(/BigUint64Array of 4/);
    expect(() => raw.addSender(1, 1, 1 as never, 0n)).toThrow(/bigint/);
    expect(() => raw.addSender(1, 1, -1n, 0n)).toThrow(/bigint/);
  });

  test('errors are DneErrors with stable codes', () => {
    try {
      e.installSa({ ...good(), spi: 3 });
      throw new Error('not reached');
    } catch (err) {
      expect(err).toBeInstanceOf(DneError);
      expect((err as DneError).code).toBe('ERR_DNE_BAD_ARGUMENT');
    }
  });
});

describe('status table', () => {
  test('TypeScript names agree with the addon X-macro table', () => {
    expect(loadAddon().statusNames()).toEqual([...STATUS_NAMES]);
  });
});

describe('round trips', () => {
  test.each([
    ['gcm', 4],
    ['gcm', 6],
    ['gmac', 4],
    ['gmac', 6],
  ] as const)('%s IPv%d restores the packet byte for byte', (mode, family) => {
    const p = pair(mode);
    const plain = family === 4 ? v4() : v6();
    const s = p.tx.seal(p.spi, 1, plain);
    if (!s.ok) throw new Error(s.reason);
    expect(s.packet.includes(marker)).toBe(mode === 'gmac');
    const o = p.rx.open(s.packet);
    expect(o.ok && o.packet.equals(plain)).toBe(true);
    expect(o.ok && o.senderId).toBe(1);
    expect(o.ok && o.counter).toBe(1n);
  });

  test('AES-256 keys work', () => {
    const key = randomBytes(32);
    const salt = randomBytes(4);
    const tx = new EspEngine();
    const rx = new EspEngine();
    tx.installSa({ spi: 0x9000, mode: 'gcm', key: Buffer.from(key), salt: Buffer.from(salt) });
    rx.installSa({ spi: 0x9000, mode: 'gcm', key, salt });
    tx.addSender(0x9000, 3);
    const s = tx.seal(0x9000, 3, v4());
    expect(s.ok && rx.open(s.packet).ok).toBe(true);
  });

  test('counters are read into a typed array and count drops by reason', () => {
    const p = pair();
    const a = p.tx.seal(p.spi, 1, v4());
    if (!a.ok) throw new Error(a.reason);
    p.rx.open(a.packet);
    p.rx.open(a.packet);
    const bad = Buffer.from(a.packet);
    bad[bad.length - 1]! ^= 0x80;
    p.rx.open(bad);
    const c = p.rx.counters(p.spi)!;
    expect(c.openedPackets).toBe(1n);
    // The tampered copy repeats counter 1, and the window is checked before
    // the ICV (RFC 4303 §3.4.3): it counts as a replay, not an ICV failure.
    expect(c.drops.replay).toBe(2n);
    expect(c.drops.icv_failure).toBe(0n);
    expect(p.tx.counters(p.spi)!.sealedPackets).toBe(1n);
    expect(p.rx.counters(0x1234)).toBeNull();
    const unknown = Buffer.from(a.packet);
    unknown.writeUInt32BE(0x999999, 20);
    expect(p.rx.open(unknown)).toEqual({ ok: false, reason: 'unknown_spi' });
    expect(p.rx.globalDrops().unknown_spi).toBe(1n);
  });

  test('removing an SA makes its packets unknown', () => {
    const p = pair();
    const s = p.tx.seal(p.spi, 1, v4());
    expect(p.rx.removeSa(p.spi)).toBe(true);
    expect(p.rx.removeSa(p.spi)).toBe(false);
    expect(s.ok && p.rx.open(s.packet)).toEqual({ ok: false, reason: 'unknown_spi' });
  });
});

describe('keys', () => {
  test('installSa zero-fills the key and salt it was given', () => {
    const key = randomBytes(16);
    const salt = randomBytes(4);
    new EspEngine().installSa({ spi: 0x6000, mode: 'gcm', key, salt });
    expect(key.equals(Buffer.alloc(16))).toBe(true);
    expect(salt.equals(Buffer.alloc(4))).toBe(true);
  });

  test('no result, counter or error carries key bytes', () => {
    const p = pair();
    const keyHex = p.key.toString('hex');
    const saltHex = p.salt.toString('hex');
    const s = p.tx.seal(p.spi, 1, v4());
    const o = s.ok ? p.rx.open(s.packet) : s;
    const everything = JSON.stringify(
      [s, o, p.rx.counters(p.spi), p.tx.senderInfo(p.spi, 1), loadAddon().cryptoInfo()],
      (_k, v) => (typeof v === 'bigint' ? v.toString() : Buffer.isBuffer(v) ? v.toString('hex') : v),
    );
    expect(everything).not.toContain(keyHex);
    expect(everything).not.toContain(saltHex);
    let message = '';
    try {
      p.rx.installSa({ spi: p.spi, mode: 'gcm', key: Buffer.from(p.key), salt: Buffer.from(p.salt) });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/refused/);
    expect(message).not.toContain(keyHex);
  });
});

describe('environments', () => {
  test('the addon loads and works in a worker thread beside the main thread', async () => {
    const root = packageRoot();
    const code = `
      const { parentPort } = require('node:worker_threads');
      const addon = require('node-gyp-build')(${JSON.stringify(root)});
      const e = new addon.EspEngine();
      const st = e.installSa({ spi: 4096, mode: 0, esn: false, senderIdBits: 24, replayWindow: 4096,
        replayMode: 0, maxSenders: 16, initialSeq: 0n }, Buffer.alloc(20, 7));
      parentPort.postMessage({ st, names: addon.statusNames().length });
    `;
    const w = new Worker(code, { eval: true });
    const msg = await new Promise<{ st: number; names: number }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    await w.terminate();
    expect(msg).toEqual({ st: 0, names: STATUS_NAMES.length });
    // The main thread's engines are unaffected.
    const p = pair();
    const s = p.tx.seal(p.spi, 1, v4());
    expect(s.ok && p.rx.open(s.packet).ok).toBe(true);
  });
});
