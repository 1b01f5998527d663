/**
 * Typed, validating face of the native filter (native/core/filter): protected
 * ports, SAs and per-port rule tables. Control calls only; the packet path
 * runs in the addon's own threads and never enters JavaScript.
 */
import * as net from 'node:net';
import { badArgument, DneError, ErrorCodes } from '../common/errors';
import { STATUS_NAMES, StatusName } from './codes';
import { loadAddon } from './loader';

export type Action = 'allow' | 'encrypt' | 'integrity' | 'drop';
export const ACTIONS: readonly Action[] = ['allow', 'encrypt', 'integrity', 'drop'];
export type Direction = 'out' | 'in';

/**
 * Most bytes ESP adds to a transport-mode packet (native kEspMaxOverhead):
 * header 8 + IV 8 + padding 3 + trailer 2 + ICV 16 (RFC 4303 §2, RFC 4106 §3).
 * The filter clamps TCP MSS and answers larger DF packets with ICMP so that
 * protected packets fit the network-side MTU.
 */
export const ESP_MAX_OVERHEAD = 37;

/** One compiled rule as a port sees it (the controller produces these). */
export interface RuleSpec {
  /** The policy rule this entry comes from (counters and explain use it). */
  ruleId: number;
  /** Which side of the rule this port's workload is on. */
  role: 'source' | 'destination';
  ipVersion?: 4 | 6 | null;
  /** IP protocol number; null or undefined: any. */
  protocol?: number | null;
  /** The workload's addresses the rule covers; empty: any. */
  local: string[];
  /** The other side's prefixes; empty: any. */
  remote: string[];
  /** Service destination ports as [lo, hi] ranges; empty: any. */
  ports: Array<[number, number]>;
  action: Action;
  keyPolicy: number;
  /** Sending SA of the key policy for this action; 0 when none is active yet. */
  txSpi: number;
}

export interface PortTableSpec {
  /** The workload's own addresses: decrypted packets must be addressed to one. */
  addresses: string[];
  defaultAction: Action;
  rules: RuleSpec[];
}

export interface FilterOptions {
  workers?: number;
  /** What a port without a table does with IP traffic. */
  defaultAction?: 'allow' | 'drop';
  blockSize?: number;
  blockCount?: number;
  /** TPACKET_V3 block retire timeout in ms: the latency bound at low rates. */
  retireMs?: number;
}

export interface PortConfig {
  name: string;
  workloadIf: string;
  networkIf: string;
  /** Network namespace name (under /run/netns) or path; default: ours. */
  workloadNetns?: string;
  networkNetns?: string;
}

export interface FilterSaOptions {
  spi: number;
  mode: 'gcm' | 'gmac';
  key: Buffer;
  salt: Buffer;
  keyPolicy: number;
  /** One sender ID per worker thread (from the key manager). */
  senderIds: number[];
  senderIdBits?: 8 | 16 | 24 | 32;
  replayWindow?: number;
  lowWater?: bigint;
}

interface RawFilter {
  start(): void;
  stop(): void;
  close(): void;
  addPort(c: object): number;
  removePort(name: string): boolean;
  portMtu(name: string): number;
  installSa(p: object, keymat: Uint8Array): number;
  removeSa(spi: number): number;
  replaceSenders(spi: number, senderIds: number[]): string;
  setTables(t: object): bigint;
  readDrops(out: BigUint64Array): void;
  readPort(name: string, out: BigUint64Array, drops: BigUint64Array): boolean;
  readRules(slots: number, out: BigUint64Array): void;
  readSa(spi: number, out: BigUint64Array): boolean;
  generation(): bigint;
  workers(): number;
  defaultAction(): string;
}

interface FilterStatic {
  new (o: object): RawFilter;
  classify(table: object, frame: Uint8Array, dir: number): { parsed: boolean; action?: number; ruleId?: number | null };
}

function filterClass(): FilterStatic {
  return (loadAddon() as unknown as { Filter: FilterStatic }).Filter;
}

const MAX_RULE_SLOTS = 16384;

function isPrefix(p: unknown): boolean {
  if (typeof p !== 'string' || p.includes('%')) return false; // no zone indexes
  const [addr, len, ...rest] = p.split('/');
  if (rest.length > 0 || addr === undefined) return false;
  const fam = net.isIP(addr);
  if (fam === 0) return false;
  if (len === undefined) return true;
  if (!/^\d{1,3}$/.test(len)) return false;
  return Number(len) <= (fam === 4 ? 32 : 128);
}

// A rule for one IP version may list prefixes of both (a group usually has
// both); those of the other version can never match and are harmless.
function checkPrefixes(where: string, v: unknown): string[] {
  if (!Array.isArray(v)) throw badArgument(`${where} must be an array of prefixes`);
  v.forEach((p, i) => {
    if (!isPrefix(p)) throw badArgument(`${where}[${i}] is not an IPv4/IPv6 address or prefix: ${JSON.stringify(p)}`);
  });
  return v as string[];
}

const PORT_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

function checkObject(where: string, v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw badArgument(`${where} must be an object`);
  return v as Record<string, unknown>;
}

function checkU32(where: string, v: unknown, min = 0): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 0xffffffff) {
    throw badArgument(`${where} must be an integer from ${min} to 4294967295`);
  }
  return v;
}

function actionCode(where: string, a: unknown): number {
  const i = ACTIONS.indexOf(a as Action);
  if (i < 0) throw badArgument(`${where} must be one of ${ACTIONS.join(', ')}`);
  return i;
}

/** Validates a table and converts it to the addon's shape. */
function toRawTable(where: string, t: PortTableSpec, slotOf: (ruleId: number) => number): object {
  checkObject(where, t);
  if (!Array.isArray(t.rules)) throw badArgument(`${where}.rules must be an array`);
  return {
    addresses: checkPrefixes(`${where}.addresses`, t.addresses),
    defaultAction: actionCode(`${where}.defaultAction`, t.defaultAction),
    rules: t.rules.map(
      (r, i) => {
        const w = `${where}.rules[${i}]`;
        checkObject(w, r);
        if (!Number.isInteger(r.ruleId) || r.ruleId < 0 || r.ruleId > 0xffffffff) throw badArgument(`${w}.ruleId must be a uint32`);
        if (r.role !== 'source' && r.role !== 'destination') throw badArgument(`${w}.role must be "source" or "destination"`);
        const ipVersion = r.ipVersion ?? 0;
        if (![0, 4, 6].includes(ipVersion)) throw badArgument(`${w}.ipVersion must be 4, 6 or null`);
        const protocol = r.protocol ?? -1;
        if (r.protocol !== null && r.protocol !== undefined && (!Number.isInteger(r.protocol) || r.protocol < 0 || r.protocol > 255)) {
          throw badArgument(`${w}.protocol must be 0-255, or null for any`);
        }
        if (!Array.isArray(r.ports)) throw badArgument(`${w}.ports must be an array of [lo, hi]`);
        const ports: number[] = [];
        r.ports.forEach((pr, j) => {
          if (!Array.isArray(pr) || pr.length !== 2 || !pr.every((x) => Number.isInteger(x) && x >= 0 && x <= 65535) || pr[0] > pr[1]) {
            throw badArgument(`${w}.ports[${j}] must be [lo, hi] with 0 <= lo <= hi <= 65535`);
          }
          ports.push(pr[0], pr[1]);
        });
        for (const k of ['keyPolicy', 'txSpi'] as const) {
          if (!Number.isInteger(r[k]) || r[k] < 0 || r[k] > 0xffffffff) throw badArgument(`${w}.${k} must be a uint32`);
        }
        return {
          ruleId: r.ruleId,
          slot: slotOf(r.ruleId),
          role: r.role === 'source' ? 0 : 1,
          ipVersion,
          protocol,
          local: checkPrefixes(`${w}.local`, r.local),
          remote: checkPrefixes(`${w}.remote`, r.remote),
          ports,
          action: actionCode(`${w}.action`, r.action),
          keyPolicy: r.keyPolicy,
          txSpi: r.txSpi,
        };
      },
    ),
  };
}

/** The native matcher on one frame (agreement tests, explain). */
export function classifyNative(
  table: PortTableSpec,
  frame: Uint8Array,
  dir: Direction,
): { action: Action; ruleId: number | null } | null {
  if (dir !== 'out' && dir !== 'in') throw badArgument('direction must be "out" or "in"');
  if (!(frame instanceof Uint8Array)) throw badArgument('frame must be a Buffer or Uint8Array');
  const r = filterClass().classify(toRawTable('table', table, () => 0), frame, dir === 'out' ? 0 : 1);
  if (!r.parsed) return null;
  return { action: ACTIONS[r.action!]!, ruleId: r.ruleId ?? null };
}

export interface PortStats {
  counters: Record<string, bigint>;
  drops: Record<StatusName, bigint>;
}

export interface SaStats {
  sealedPackets: bigint;
  sealedBytes: bigint;
  openedPackets: bigint;
  openedBytes: bigint;
  /** Workers whose sender is below its low-water mark. */
  sendersLow: bigint;
  drops: Record<StatusName, bigint>;
}

export interface RuleStats {
  outPackets: bigint;
  outBytes: bigint;
  inPackets: bigint;
  inBytes: bigint;
}

function dropsRecord(a: BigUint64Array, offset = 0): Record<StatusName, bigint> {
  const d = {} as Record<StatusName, bigint>;
  STATUS_NAMES.forEach((n, i) => (d[n] = a[offset + i]!));
  return d;
}

export function netnsPath(name: unknown, where = 'netns'): string | undefined {
  if (name === undefined || name === null || name === '') return undefined;
  if (typeof name !== 'string') throw badArgument(`${where} must be a namespace name or path`);
  return name.includes('/') ? name : `/run/netns/${name}`;
}

export class Filter {
  private readonly raw: RawFilter;
  /** Counter slot of every rule id in use; slots of rules gone are reused. */
  private readonly ruleSlots = new Map<number, number>();
  /** Rule ids in each port's current table. */
  private readonly portRules = new Map<string, Set<number>>();
  private readonly portCounterNames: string[];
  private readonly saBuf: BigUint64Array;
  /** Sender-ID width of each SA installed through this object (for messages). */
  private readonly saBits = new Map<number, number>();
  private defaultAction: 'allow' | 'drop';

  constructor(opts: FilterOptions = {}) {
    checkObject('options', opts);
    const workers = opts.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw badArgument('workers must be an integer from 1 to 64');
    const def = opts.defaultAction ?? 'allow';
    if (def !== 'allow' && def !== 'drop') throw badArgument('defaultAction must be "allow" or "drop"');
    // Many mid-sized blocks rather than a few large ones: at low packet rates
    // the kernel retires a block after retireMs with only a few frames in
    // it, so the number of blocks, not their size, is what absorbs a worker
    // that was not scheduled for a while (16 MiB either way).
    const blockSize = opts.blockSize ?? 256 * 1024;
    const blockCount = opts.blockCount ?? 64;
    const retireMs = opts.retireMs ?? 1;
    if (!Number.isInteger(blockSize) || blockSize < 69632 || blockSize % 4096 !== 0) {
      throw badArgument('blockSize must be a multiple of 4096, at least 69632 (a 64 KiB GSO frame must fit)');
    }
    if (!Number.isInteger(blockCount) || blockCount < 2 || blockCount > 1024) throw badArgument('blockCount must be an integer from 2 to 1024');
    if (blockSize * blockCount > 256 * 1024 * 1024) throw badArgument('blockSize * blockCount must be at most 256 MiB per interface');
    if (!Number.isInteger(retireMs) || retireMs < 1 || retireMs > 1000) throw badArgument('retireMs must be an integer from 1 to 1000');
    const addon = loadAddon() as unknown as { portCounterNames: string[]; saCounterCount: number };
    this.portCounterNames = addon.portCounterNames;
    this.saBuf = new BigUint64Array(addon.saCounterCount);
    this.defaultAction = def;
    this.raw = new (filterClass())({ workers, defaultAction: def === 'allow' ? 0 : 3, blockSize, blockCount, retireMs });
  }

  get workers(): number {
    return this.raw.workers();
  }

  /** What IP traffic of a port without a table gets, as the dataplane has it. */
  get effectiveDefaultAction(): Action {
    return this.raw.defaultAction() as Action;
  }

  start(): void {
    this.raw.start();
  }

  stop(): void {
    this.raw.stop();
  }

  /** Stops the workers and drops every port (sockets closed) and SA (keys wiped). */
  close(): void {
    this.raw.close();
    this.saBits.clear();
    this.ruleSlots.clear();
    this.portRules.clear();
  }

  /** Opens both interfaces of a protected port; returns its counter slot. */
  addPort(c: PortConfig): number {
    checkObject('port', c);
    for (const k of ['name', 'workloadIf', 'networkIf'] as const) {
      if (typeof c[k] !== 'string' || c[k] === '') throw badArgument(`port.${k} must be a non-empty string`);
    }
    if (!PORT_NAME.test(c.name)) throw badArgument('port.name must be 1-64 characters of A-Z a-z 0-9 _ . : -');
    const workloadNetns = netnsPath(c.workloadNetns, 'port.workloadNetns');
    const networkNetns = netnsPath(c.networkNetns, 'port.networkNetns');
    try {
      return this.raw.addPort({ name: c.name, workloadIf: c.workloadIf, networkIf: c.networkIf, workloadNetns, networkNetns });
    } catch (err) {
      throw new DneError(ErrorCodes.badConfig, (err as Error).message);
    }
  }

  removePort(name: string): boolean {
    if (typeof name !== 'string') throw badArgument('port name must be a string');
    const removed = this.raw.removePort(name);
    if (removed) this.portRules.delete(name);
    return removed;
  }

  portMtu(name: string): number {
    if (typeof name !== 'string') throw badArgument('port name must be a string');
    return this.raw.portMtu(name);
  }

  /**
   * Installs an SA for sending and receiving. The key and salt Buffers are
   * zero-filled whatever the outcome.
   */
  installSa(o: FilterSaOptions): void {
    try {
      this.installSaChecked(checkObject('SA options', o) as unknown as FilterSaOptions);
    } finally {
      if (o && o.key instanceof Uint8Array) o.key.fill(0);
      if (o && o.salt instanceof Uint8Array) o.salt.fill(0);
    }
  }

  private installSaChecked(o: FilterSaOptions): void {
    if (!Number.isInteger(o.spi) || o.spi < 256 || o.spi > 0xffffffff) throw badArgument('spi must be an integer from 256 to 4294967295');
    checkU32('keyPolicy', o.keyPolicy);
    if (o.lowWater !== undefined && (typeof o.lowWater !== 'bigint' || o.lowWater < 0n)) throw badArgument('lowWater must be a non-negative bigint');
    if (o.mode !== 'gcm' && o.mode !== 'gmac') throw badArgument('mode must be "gcm" or "gmac"');
    if (!(o.key instanceof Uint8Array) || (o.key.length !== 16 && o.key.length !== 32)) throw badArgument('key must be 16 or 32 bytes');
    if (!(o.salt instanceof Uint8Array) || o.salt.length !== 4) throw badArgument('salt must be 4 bytes');
    const bits = o.senderIdBits ?? 24;
    if (![8, 16, 24, 32].includes(bits)) throw badArgument('senderIdBits must be 8, 16, 24 or 32');
    if (!Array.isArray(o.senderIds) || o.senderIds.length < this.workers) {
      throw badArgument(`senderIds must hold one sender ID per worker (${this.workers})`);
    }
    if (o.senderIds.some((id) => !Number.isInteger(id) || id < 0 || (bits < 32 && id >= 2 ** bits) || id > 0xffffffff)) {
      throw badArgument(`senderIds must be integers below 2^${bits}`);
    }
    if (new Set(o.senderIds).size !== o.senderIds.length) throw badArgument('senderIds must be distinct');
    const window = o.replayWindow ?? 4096;
    if (!Number.isInteger(window) || window < 64 || window > 65536 || window % 64 !== 0) {
      throw badArgument('replayWindow must be a multiple of 64 from 64 to 65536');
    }
    const keymat = Buffer.concat([o.key, o.salt]);
    try {
      const st = this.raw.installSa(
        {
          spi: o.spi,
          mode: o.mode === 'gcm' ? 0 : 1,
          esn: false,
          senderIdBits: bits,
          replayWindow: window,
          replayMode: 0,
          maxSenders: 16384,
          keyPolicy: o.keyPolicy,
          senderIds: o.senderIds,
          lowWater: o.lowWater ?? 0n,
        },
        keymat,
      );
      if (st !== 0) {
        const why = this.saStats(o.spi) !== null ? 'the SPI is already installed' : 'the SA table is full (1024 SAs)';
        throw new DneError(ErrorCodes.badConfig, `SA 0x${o.spi.toString(16)} was refused: ${why}`);
      }
      this.saBits.set(o.spi, bits);
    } finally {
      keymat.fill(0);
    }
  }

  removeSa(spi: number): boolean {
    const removed = this.raw.removeSa(checkU32('spi', spi)) === 0;
    if (removed) this.saBits.delete(spi);
    return removed;
  }

  /**
   * Gives an installed SA's senders fresh sender IDs, one per worker, in
   * place (DESIGN §3 renewal before a counter space runs out, RFC 6054 §3).
   * Each worker switches to its new ID with a counter starting at 1 between
   * two bursts; the SA's key, replay windows and counters stay, so no packet
   * of the SPI is dropped and no replay window restarts. Refused, with
   * nothing changed, for an SPI not installed, a wrong count, an ID too wide
   * for the SA, duplicates, or any ID this SA has used before.
   */
  replaceSenders(spi: number, senderIds: number[]): void {
    if (!Number.isInteger(spi) || spi < 256 || spi > 0xffffffff) throw badArgument('spi must be an integer from 256 to 4294967295');
    if (!Array.isArray(senderIds) || senderIds.length !== this.workers) {
      throw badArgument(`senderIds must hold one sender ID per worker (${this.workers})`);
    }
    const bits = this.saBits.get(spi);
    if (senderIds.some((id) => !Number.isInteger(id) || id < 0 || id > 0xffffffff || (bits !== undefined && bits < 32 && id >= 2 ** bits))) {
      throw badArgument(bits === undefined ? 'senderIds must be integers from 0 to 4294967295' : `senderIds must be integers below 2^${bits}`);
    }
    if (new Set(senderIds).size !== senderIds.length) throw badArgument('senderIds must be distinct');
    const r = this.raw.replaceSenders(spi, senderIds);
    if (r === 'ok') return;
    const sa = `SA 0x${spi.toString(16)}`;
    const why: Record<string, string> = {
      unknown_spi: `${sa} is not installed`,
      wrong_count: `${sa}: senderIds must hold one sender ID per worker (${this.workers})`,
      too_wide: `${sa}: a sender ID does not fit the SA's sender ID width`,
      duplicate: `${sa}: senderIds must be distinct`,
      reused: `${sa}: a sender ID was already used with this SA; reusing it would repeat IVs under its key (RFC 6054 §3)`,
    };
    throw new DneError(ErrorCodes.badConfig, `sender IDs refused: ${why[r] ?? r}`);
  }

  /** Replaces the tables of the named ports in one atomic swap. */
  /**
   * Replaces the tables of the named ports in one atomic swap (other ports
   * keep theirs). `defaultAction` (for ports without a table) is kept when
   * not given. Nothing changes if anything is invalid.
   */
  setTables(t: { defaultAction?: 'allow' | 'drop'; ports: Record<string, PortTableSpec> }): bigint {
    checkObject('tables', t);
    const def = t.defaultAction ?? this.defaultAction;
    if (def !== 'allow' && def !== 'drop') throw badArgument('defaultAction must be "allow" or "drop"');
    const given = checkObject('tables.ports', t.ports);
    for (const name of Object.keys(given)) {
      if (!PORT_NAME.test(name)) throw badArgument(`tables.ports: ${JSON.stringify(name)} is not a port name`);
    }
    // Rule ids live after this change: those of the ports given now plus
    // those of the other ports' current tables. Slots of the rest are freed.
    const portRules = new Map(this.portRules);
    for (const [name, table] of Object.entries(given)) {
      const rules = Array.isArray((table as PortTableSpec)?.rules) ? (table as PortTableSpec).rules : [];
      portRules.set(name, new Set(rules.map((r) => r?.ruleId)));
    }
    const live = new Set<number>();
    for (const ids of portRules.values()) for (const id of ids) live.add(id);
    const slots = new Map([...this.ruleSlots].filter(([id]) => live.has(id)));
    const used = new Set(slots.values());
    const newSlots: number[] = [];
    let next = 0;
    const slotOf = (id: number) => {
      let s = slots.get(id);
      if (s === undefined) {
        while (used.has(next)) next++;
        if (next >= MAX_RULE_SLOTS) throw badArgument(`more than ${MAX_RULE_SLOTS} distinct rules in use`);
        s = next;
        used.add(s);
        slots.set(id, s);
        newSlots.push(s);
      }
      return s;
    };
    const ports: Record<string, object> = {};
    for (const [name, table] of Object.entries(given)) ports[name] = toRawTable(`ports.${name}`, table as PortTableSpec, slotOf);
    let gen: bigint;
    try {
      gen = this.raw.setTables({ defaultAction: def === 'allow' ? 0 : 3, ports, newRuleSlots: newSlots });
    } catch (err) {
      throw new DneError(ErrorCodes.badConfig, (err as Error).message);
    }
    this.ruleSlots.clear();
    for (const [k, v] of slots) this.ruleSlots.set(k, v);
    this.portRules.clear();
    for (const [k, v] of portRules) this.portRules.set(k, v);
    this.defaultAction = def;
    return gen;
  }

  generation(): bigint {
    return this.raw.generation();
  }

  drops(): Record<StatusName, bigint> {
    const a = new BigUint64Array(STATUS_NAMES.length);
    this.raw.readDrops(a);
    return dropsRecord(a);
  }

  portStats(name: string): PortStats | null {
    if (typeof name !== 'string') throw badArgument('port name must be a string');
    const c = new BigUint64Array(this.portCounterNames.length);
    const d = new BigUint64Array(STATUS_NAMES.length);
    if (!this.raw.readPort(name, c, d)) return null;
    const counters: Record<string, bigint> = {};
    this.portCounterNames.forEach((n, i) => (counters[n] = c[i]!));
    return { counters, drops: dropsRecord(d) };
  }

  saStats(spi: number): SaStats | null {
    const a = this.saBuf;
    if (!this.raw.readSa(checkU32('spi', spi), a)) return null;
    return {
      sealedPackets: a[0]!,
      sealedBytes: a[1]!,
      openedPackets: a[2]!,
      openedBytes: a[3]!,
      sendersLow: a[4]!,
      drops: dropsRecord(a, 5),
    };
  }

  ruleStats(): Map<number, RuleStats> {
    const n = this.ruleSlots.size;
    const a = new BigUint64Array(Math.max(1, n) * 4);
    this.raw.readRules(n, a);
    const out = new Map<number, RuleStats>();
    for (const [id, s] of this.ruleSlots) {
      out.set(id, { outPackets: a[s * 4]!, outBytes: a[s * 4 + 1]!, inPackets: a[s * 4 + 2]!, inBytes: a[s * 4 + 3]! });
    }
    return out;
  }
}
