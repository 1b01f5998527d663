/**
 * A fake dataplane (same interface as the native filter, records every
 * operation, refuses what the filter refuses) and a key source that hands
 * out random keys with fresh sender IDs, as the key manager does. The agent
 * logic under test is the real one.
 */
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { Writable } from 'node:stream';
import { STATUS_NAMES, StatusName } from '../../ts/native/codes';
import type { FilterSaOptions, PortConfig, PortStats, PortTableSpec, RuleStats, SaStats } from '../../ts/native/filter';
import type { Dataplane } from '../../ts/agent/dataplane';
import type { KeySource } from '../../ts/agent/agent';
import type { KeyMaterial } from '../../ts/agent/reconciler';

export type Op =
  | { op: 'addPort'; name: string; config: PortConfig }
  | { op: 'removePort'; name: string }
  | { op: 'installSa'; spi: number; keyPolicy: number; senderIds: number[]; mode: string }
  | { op: 'removeSa'; spi: number }
  | { op: 'replaceSenders'; spi: number; senderIds: number[] }
  | { op: 'setTables'; ports: Record<string, PortTableSpec>; defaultAction?: string };

function zeroDrops(): Record<StatusName, bigint> {
  return Object.fromEntries(STATUS_NAMES.map((n) => [n, 0n])) as Record<StatusName, bigint>;
}

export class FakeDataplane implements Dataplane {
  readonly ops: Op[] = [];
  readonly ports = new Map<string, PortConfig>();
  readonly tables = new Map<string, PortTableSpec>();
  readonly sas = new Map<number, { keyPolicy: number; senderIds: number[]; senderIdBits: number; keyFirstByte: number }>();
  /** Every sender ID each installed SA has had (the filter refuses reuse). */
  readonly sendersUsed = new Map<number, Set<number>>();
  /** Every key Buffer handed in, to check the caller's copies are wiped. */
  readonly keyBuffersSeen: Buffer[] = [];
  /** Counters a test sets (what the native filter would count). */
  readonly saCounters = new Map<number, Partial<SaStats>>();
  readonly ruleCounters = new Map<number, RuleStats>();
  readonly portCounters = new Map<string, Record<string, bigint>>();
  hostDrops = zeroDrops();
  failAddPort = new Set<string>();
  /** Interfaces that do not exist: a port naming one cannot be opened (as the filter refuses it). */
  missingInterfaces = new Set<string>();
  started = false;
  closed = false;
  generationN = 0n;

  constructor(readonly workers = 2) {}

  start(): void {
    this.started = true;
  }
  close(): void {
    this.closed = true;
    this.sas.clear();
    this.sendersUsed.clear();
    this.ports.clear();
  }
  addPort(c: PortConfig): number {
    if (this.ports.has(c.name)) throw new Error(`port ${c.name} exists`);
    if (this.failAddPort.has(c.name)) throw new Error(`cannot open interface ${c.workloadIf}: No such device`);
    for (const [side, ifn] of [['workload', c.workloadIf], ['network', c.networkIf]] as const) {
      if (this.missingInterfaces.has(ifn)) throw new Error(`port ${c.name}: ${side} side: no interface named ${ifn}`);
    }
    this.ports.set(c.name, c);
    this.ops.push({ op: 'addPort', name: c.name, config: c });
    return this.ports.size - 1;
  }
  removePort(name: string): boolean {
    this.ops.push({ op: 'removePort', name });
    this.tables.delete(name);
    return this.ports.delete(name);
  }
  portMtu(name: string): number {
    return this.ports.has(name) ? 1500 : 0;
  }
  installSa(o: FilterSaOptions): void {
    try {
      this.keyBuffersSeen.push(o.key);
      if (this.sas.has(o.spi)) throw new Error(`SA 0x${o.spi.toString(16)} was refused: the SPI is already installed`);
      if (o.senderIds.length < this.workers) throw new Error('senderIds must hold one sender ID per worker');
      this.sas.set(o.spi, { keyPolicy: o.keyPolicy, senderIds: [...o.senderIds], senderIdBits: o.senderIdBits ?? 24, keyFirstByte: o.key[0]! });
      this.sendersUsed.set(o.spi, new Set(o.senderIds));
      this.ops.push({ op: 'installSa', spi: o.spi, keyPolicy: o.keyPolicy, senderIds: [...o.senderIds], mode: o.mode });
    } finally {
      // What Filter.installSa does: the caller's key Buffers are zero-filled whatever happens.
      o.key.fill(0);
      o.salt.fill(0);
    }
  }
  removeSa(spi: number): boolean {
    this.ops.push({ op: 'removeSa', spi });
    this.saCounters.delete(spi);
    this.sendersUsed.delete(spi);
    return this.sas.delete(spi);
  }
  /** Refuses what Filter.replaceSenders refuses; counters (saCounters) stay, as in the filter. */
  replaceSenders(spi: number, senderIds: number[]): void {
    const sa = this.sas.get(spi);
    if (!sa) throw new Error(`sender IDs refused: SA 0x${spi.toString(16)} is not installed`);
    if (senderIds.length !== this.workers) throw new Error(`senderIds must hold one sender ID per worker (${this.workers})`);
    if (senderIds.some((id) => id >= 2 ** sa.senderIdBits)) throw new Error(`senderIds must be integers below 2^${sa.senderIdBits}`);
    if (new Set(senderIds).size !== senderIds.length) throw new Error('senderIds must be distinct');
    const used = this.sendersUsed.get(spi)!;
    if (senderIds.some((id) => used.has(id))) throw new Error(`sender IDs refused: SA 0x${spi.toString(16)}: a sender ID was already used with this SA`);
    for (const id of senderIds) used.add(id);
    sa.senderIds = [...senderIds];
    this.ops.push({ op: 'replaceSenders', spi, senderIds: [...senderIds] });
    // The filter's workers clear their low flag when they switch.
    const c = this.saCounters.get(spi);
    if (c) c.sendersLow = 0n;
  }
  setTables(t: { defaultAction?: 'allow' | 'drop'; ports: Record<string, PortTableSpec> }): bigint {
    for (const name of Object.keys(t.ports)) if (!this.ports.has(name)) throw new Error(`no port named ${name}`);
    for (const [name, table] of Object.entries(t.ports)) this.tables.set(name, table);
    this.ops.push({ op: 'setTables', ports: t.ports, defaultAction: t.defaultAction });
    return ++this.generationN;
  }
  portStats(name: string): PortStats | null {
    if (!this.ports.has(name)) return null;
    return { counters: { from_workload_packets: 0n, to_network_packets: 0n, ...this.portCounters.get(name) }, drops: zeroDrops() };
  }
  saStats(spi: number): SaStats | null {
    if (!this.sas.has(spi)) return null;
    return { sealedPackets: 0n, sealedBytes: 0n, openedPackets: 0n, openedBytes: 0n, sendersLow: 0n, drops: zeroDrops(), ...this.saCounters.get(spi) };
  }
  ruleStats(): Map<number, RuleStats> {
    const live = new Set<number>();
    for (const t of this.tables.values()) for (const r of t.rules) live.add(r.ruleId);
    return new Map([...live].map((id) => [id, this.ruleCounters.get(id) ?? { outPackets: 0n, outBytes: 0n, inPackets: 0n, inBytes: 0n }]));
  }
  drops(): Record<StatusName, bigint> {
    return { ...this.hostDrops };
  }
}

/** Hands out one random key per KeyID (the same bytes every release, as a key manager would) with fresh sender IDs each time. */
export class FakeKeySource implements KeySource {
  readonly keyBytes = new Map<string, { key: Buffer; salt: Buffer }>();
  readonly releases: string[][] = [];
  readonly issuedSenderIds: number[] = [];
  unreachable = false;
  refused = new Set<string>();
  private nextSender = 1;
  keyManagerUrls = ['https://km.test:8443'];

  constructor(private readonly workers = 2) {}

  offer(): void {}

  async release(keyIds: string[]): Promise<Map<string, KeyMaterial>> {
    this.releases.push([...keyIds]);
    if (this.unreachable) throw new Error('key manager https://km.test:8443: connect ECONNREFUSED');
    const bad = keyIds.find((k) => this.refused.has(k));
    if (bad) throw Object.assign(new Error(`key ${bad} is revoked`), { notReleasable: true });
    const out = new Map<string, KeyMaterial>();
    for (const id of keyIds) {
      let k = this.keyBytes.get(id);
      if (!k) {
        k = { key: randomBytes(16), salt: randomBytes(4) };
        this.keyBytes.set(id, k);
      }
      const senderIds = Array.from({ length: this.workers }, () => this.nextSender++);
      this.issuedSenderIds.push(...senderIds);
      out.set(id, { keyId: id, key: Buffer.from(k.key), salt: Buffer.from(k.salt), senderIds, senderIdBits: 24 });
    }
    return out;
  }

  close(): void {}
}

/** A pino logger that keeps its lines (tests search them for key bytes). */
export function memoryLogger(): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}
