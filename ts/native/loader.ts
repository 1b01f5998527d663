/**
 * Loads the addon (node-gyp-build finds build/Release or a prebuild) once per
 * JS environment and checks that its status table matches codes.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import nodeGypBuild from 'node-gyp-build';
import { DneError, ErrorCodes } from '../common/errors';
import { STATUS_NAMES } from './codes';

/** The raw addon surface; use the typed wrappers instead of this. */
export interface NativeAddon {
  statusNames(): string[];
  cryptoInfo(): NativeCryptoInfo;
  espMaxOverhead: number;
  EspEngine: new () => RawEspEngine;
}

export interface NativeCryptoInfo {
  opensslVersion: string;
  evpObject: string;
  evpFromMainExecutable: boolean;
  cpuAesni: boolean;
  cpuPclmulqdq: boolean;
}

export interface RawSaParams {
  spi: number;
  mode: number;
  esn: boolean;
  senderIdBits: number;
  replayWindow: number;
  replayMode: number;
  maxSenders: number;
  initialSeq: bigint;
}

export interface RawSealResult {
  status: number;
  packet?: Buffer;
  iv?: bigint;
  seq?: bigint;
  senderLow?: boolean;
}

export interface RawOpenResult {
  status: number;
  packet?: Buffer;
  spi?: number;
  senderId?: number;
  counter?: bigint;
  seq?: bigint;
  nextHeader?: number;
}

export interface RawEspEngine {
  installSa(params: RawSaParams, keymat: Uint8Array): number;
  removeSa(spi: number): number;
  addSender(spi: number, senderId: number, firstCounter: bigint, lowWater: bigint): number;
  seal(spi: number, senderId: number, packet: Uint8Array): RawSealResult;
  sealWithIv(spi: number, seq: bigint, iv: bigint, packet: Uint8Array): RawSealResult;
  open(packet: Uint8Array): RawOpenResult;
  saCounters(spi: number, out: BigUint64Array): boolean;
  globalDrops(out: BigUint64Array): void;
  senderInfo(
    spi: number,
    senderId: number,
  ): { senderId: number; nextCounter: bigint; remaining: bigint; low: boolean } | null;
}

/** The project root: the nearest folder above this file with our package.json. */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj) && JSON.parse(fs.readFileSync(pj, 'utf8')).name === 'dne') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new DneError(ErrorCodes.native, 'cannot find the dne package root');
    dir = up;
  }
}

let cached: NativeAddon | undefined;

export function loadAddon(): NativeAddon {
  if (cached) return cached;
  let addon: NativeAddon;
  try {
    addon = nodeGypBuild(packageRoot()) as NativeAddon;
  } catch (err) {
    throw new DneError(
      ErrorCodes.native,
      `the native addon is not built (run scripts/setup): ${(err as Error).message}`,
    );
  }
  const names = addon.statusNames();
  if (names.length !== STATUS_NAMES.length || names.some((n, i) => n !== STATUS_NAMES[i])) {
    throw new DneError(
      ErrorCodes.native,
      `addon status table [${names.join(',')}] does not match ts/native/codes.ts; rebuild the addon`,
    );
  }
  cached = addon;
  return addon;
}
