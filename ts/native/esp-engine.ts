/**
 * Typed, validating face of the native ESP engine (native/core/esp/engine.h).
 *
 * This is the diagnostic surface: the self-test, the interop tests and the
 * known-answer checks hand single packets in from JavaScript. The filter's
 * data path never calls it; real traffic never enters JS.
 *
 * Key handling: installSa copies key || salt into locked native memory once
 * and then zero-fills every JS copy it was given (STYLE: keys cross once).
 */
import { badArgument, DneError, ErrorCodes } from '../common/errors';
import { STATUS_NAMES, StatusName, statusName } from './codes';
import { loadAddon, RawEspEngine } from './loader';

export type EspMode = 'gcm' | 'gmac';
export type ReplayMode = 'iv-counter' | 'esp-seq';

export interface SaOptions {
  /** 256..2^32-1; 0 and 1-255 are reserved (RFC 4303 §2.1). */
  spi: number;
  /** gcm = ENCRYPT (RFC 4106), gmac = INTEGRITY_ONLY (RFC 4543). */
  mode: EspMode;
  /** AES key: 16 or 32 bytes. Zero-filled after install. */
  key: Buffer;
  /** 4-byte salt from the key material. Zero-filled after install. */
  salt: Buffer;
  esn?: boolean;
  /** Sender-ID width in the IV (RFC 6054): 8, 16, 24 (default) or 32. */
  senderIdBits?: 8 | 16 | 24 | 32;
  /** Anti-replay window in packets: multiple of 64, 64..65536, default 4096. */
  replayWindow?: number;
  replayMode?: ReplayMode;
  maxSenders?: number;
  initialSeq?: bigint;
}

export type SealResult =
  | { ok: true; packet: Buffer; iv: bigint; seq: bigint; senderLow: boolean }
  | { ok: false; reason: StatusName };

export type OpenResult =
  | {
      ok: true;
      packet: Buffer;
      spi: number;
      senderId: number;
      counter: bigint;
      seq: bigint;
      nextHeader: number;
    }
  | { ok: false; reason: StatusName };

export interface SaCounters {
  sealedPackets: bigint;
  sealedBytes: bigint;
  openedPackets: bigint;
  openedBytes: bigint;
  drops: Record<StatusName, bigint>;
}

const MAX_U32 = 0xffffffff;

function checkU32(name: string, v: unknown, min = 0): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_U32) {
    throw badArgument(`${name} must be an integer from ${min} to ${MAX_U32}`);
  }
  return v;
}

function checkBytes(name: string, v: unknown): Buffer {
  if (!(v instanceof Uint8Array)) throw badArgument(`${name} must be a Buffer or Uint8Array`);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function checkU64(name: string, v: unknown): bigint {
  if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) {
    throw badArgument(`${name} must be a bigint from 0 to 2^64-1`);
  }
  return v;
}

export class EspEngine {
  private readonly raw: RawEspEngine;
  private readonly counterBuf = new BigUint64Array(4 + STATUS_NAMES.length);

  constructor() {
    this.raw = new (loadAddon().EspEngine)();
  }

  installSa(o: SaOptions): void {
    if (o === null || typeof o !== 'object') throw badArgument('SA options must be an object');
    try {
      this.installSaChecked(o);
    } finally {
      // Whatever happened, the caller's copies of the key are wiped.
      if (o.key instanceof Uint8Array) o.key.fill(0);
      if (o.salt instanceof Uint8Array) o.salt.fill(0);
    }
  }

  private installSaChecked(o: SaOptions): void {
    const spi = checkU32('spi', o.spi, 256);
    if (o.mode !== 'gcm' && o.mode !== 'gmac') throw badArgument('mode must be "gcm" or "gmac"');
    const key = checkBytes('key', o.key);
    const salt = checkBytes('salt', o.salt);
    if (key.length !== 16 && key.length !== 32) {
      throw badArgument(`key must be 16 or 32 bytes (AES-128 or AES-256), got ${key.length}`);
    }
    if (salt.length !== 4) throw badArgument(`salt must be 4 bytes, got ${salt.length}`);
    const bits = o.senderIdBits ?? 24;
    if (![8, 16, 24, 32].includes(bits)) throw badArgument('senderIdBits must be 8, 16, 24 or 32');
    const window = o.replayWindow ?? 4096;
    if (!Number.isInteger(window) || window < 64 || window > 65536 || window % 64 !== 0) {
      throw badArgument('replayWindow must be a multiple of 64 from 64 to 65536');
    }
    const replayMode = o.replayMode ?? 'iv-counter';
    if (replayMode !== 'iv-counter' && replayMode !== 'esp-seq') {
      throw badArgument('replayMode must be "iv-counter" or "esp-seq"');
    }
    const maxSenders = checkU32('maxSenders', o.maxSenders ?? 16384, 1);
    const esn = o.esn ?? false;
    if (typeof esn !== 'boolean') throw badArgument('esn must be a boolean');
    const initialSeq = checkU64('initialSeq', o.initialSeq ?? 0n);

    const keymat = Buffer.concat([key, salt]);
    try {
      const status = this.raw.installSa(
        {
          spi,
          mode: o.mode === 'gcm' ? 0 : 1,
          esn,
          senderIdBits: bits,
          replayWindow: window,
          replayMode: replayMode === 'iv-counter' ? 0 : 1,
          maxSenders,
          initialSeq,
        },
        keymat,
      );
      if (status !== 0) {
        throw new DneError(
          ErrorCodes.badConfig,
          `SA 0x${spi.toString(16)} was refused: ${statusName(status)}` +
            (statusName(status) === 'bad_config' ? ' (SPI already installed?)' : ''),
        );
      }
    } finally {
      keymat.fill(0);
    }
  }

  removeSa(spi: number): boolean {
    return this.raw.removeSa(checkU32('spi', spi)) === 0;
  }

  /**
   * Registers a sender ID (from the key manager) on an SA. `firstCounter`
   * exists for tests of exhaustion; `lowWater` is the remaining-count at
   * which seal() starts reporting senderLow (0: 1/16 of the space).
   */
  addSender(spi: number, senderId: number, opts: { firstCounter?: bigint; lowWater?: bigint } = {}): void {
    if (opts === null || typeof opts !== 'object') throw badArgument('sender options must be an object');
    const status = this.raw.addSender(
      checkU32('spi', spi),
      checkU32('senderId', senderId),
      checkU64('firstCounter', opts.firstCounter ?? 1n),
      checkU64('lowWater', opts.lowWater ?? 0n),
    );
    if (status !== 0) {
      throw new DneError(
        ErrorCodes.badConfig,
        `sender ${senderId} on SA 0x${spi.toString(16)} was refused: ${statusName(status)}` +
          (statusName(status) === 'unknown_spi'
            ? ' (no such SA)'
            : ' (ID wider than the SA allows, already registered, or firstCounter beyond the counter space)'),
      );
    }
  }

  seal(spi: number, senderId: number, packet: Uint8Array): SealResult {
    const r = this.raw.seal(checkU32('spi', spi), checkU32('senderId', senderId), checkBytes('packet', packet));
    if (r.status !== 0) return { ok: false, reason: statusName(r.status) };
    return { ok: true, packet: r.packet!, iv: r.iv!, seq: r.seq!, senderLow: r.senderLow! };
  }

  /** Seal with a caller-chosen sequence number and IV (known-answer and interop tests). */
  sealWithIv(spi: number, seq: bigint, iv: bigint, packet: Uint8Array): SealResult {
    const r = this.raw.sealWithIv(checkU32('spi', spi), checkU64('seq', seq), checkU64('iv', iv), checkBytes('packet', packet));
    if (r.status !== 0) return { ok: false, reason: statusName(r.status) };
    return { ok: true, packet: r.packet!, iv, seq, senderLow: false };
  }

  open(packet: Uint8Array): OpenResult {
    const r = this.raw.open(checkBytes('packet', packet));
    if (r.status !== 0) return { ok: false, reason: statusName(r.status) };
    return {
      ok: true,
      packet: r.packet!,
      spi: r.spi!,
      senderId: r.senderId!,
      counter: r.counter!,
      seq: r.seq!,
      nextHeader: r.nextHeader!,
    };
  }

  counters(spi: number): SaCounters | null {
    const b = this.counterBuf;
    if (!this.raw.saCounters(checkU32('spi', spi), b)) return null;
    const drops = {} as Record<StatusName, bigint>;
    STATUS_NAMES.forEach((n, i) => (drops[n] = b[4 + i]!));
    return { sealedPackets: b[0]!, sealedBytes: b[1]!, openedPackets: b[2]!, openedBytes: b[3]!, drops };
  }

  /** Drops before an SA was identified (malformed, unknown SPI, not ESP). */
  globalDrops(): Record<StatusName, bigint> {
    const b = new BigUint64Array(STATUS_NAMES.length);
    this.raw.globalDrops(b);
    const drops = {} as Record<StatusName, bigint>;
    STATUS_NAMES.forEach((n, i) => (drops[n] = b[i]!));
    return drops;
  }

  senderInfo(spi: number, senderId: number) {
    return this.raw.senderInfo(checkU32('spi', spi), checkU32('senderId', senderId));
  }
}
