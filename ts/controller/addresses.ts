/**
 * Addresses and prefixes as numbers, and an index of every vNIC address in a
 * revision, so the translator can ask "which vNIC addresses lie in this
 * prefix?" with a binary search instead of a scan over all workloads.
 *
 * Addresses are plain strings in the policy model ("10.0.0.1", "fd00::1",
 * "10.1.0.0/16"); the filter accepts the same text (native/core/tables
 * Prefix::parse), so the translator passes the operator's text through and
 * uses these numbers only to decide containment.
 */
import * as net from 'node:net';

export interface Prefix {
  family: 4 | 6;
  /** First and last address covered (host bits cleared / set). */
  lo: bigint;
  hi: bigint;
  len: number;
}

function v4ToBigint(a: string): bigint {
  let v = 0n;
  for (const o of a.split('.')) v = (v << 8n) | BigInt(Number(o));
  return v;
}

function v6ToBigint(a: string): bigint {
  // An embedded IPv4 tail ("::ffff:10.0.0.1") becomes two 16-bit groups.
  const lastColon = a.lastIndexOf(':');
  if (a.includes('.', lastColon)) {
    const v4 = v4ToBigint(a.slice(lastColon + 1));
    a = `${a.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
  return v;
}

/** A bare IPv4/IPv6 address (no prefix length, no zone), or null. */
export function parseAddress(text: unknown): { family: 4 | 6; value: bigint } | null {
  if (typeof text !== 'string' || text.includes('%')) return null;
  if (net.isIPv4(text)) return { family: 4, value: v4ToBigint(text) };
  if (net.isIPv6(text)) return { family: 6, value: v6ToBigint(text) };
  return null;
}

/** "addr" (a host prefix) or "addr/len", or null if it is neither. */
export function parsePrefix(text: unknown): Prefix | null {
  if (typeof text !== 'string') return null;
  const slash = text.indexOf('/');
  const a = parseAddress(slash < 0 ? text : text.slice(0, slash));
  if (a === null) return null;
  const width = a.family === 4 ? 32 : 128;
  let len = width;
  if (slash >= 0) {
    const l = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(l) || Number(l) > width) return null;
    len = Number(l);
  }
  const hostBits = BigInt(width - len);
  const lo = (a.value >> hostBits) << hostBits;
  return { family: a.family, lo, hi: lo | ((1n << hostBits) - 1n), len };
}

/** Canonical text of a prefix, for de-duplication ("10.0.0.1" == "10.0.0.1/32"). */
export function prefixKey(p: Prefix): string {
  return `${p.family}:${p.lo.toString(16)}/${p.len}`;
}

/** One vNIC address: which port it belongs to and its position in that port's address list. */
export interface AddressEntry {
  value: bigint;
  port: number;
  index: number;
}

/**
 * All vNIC addresses of a revision, sorted per family. `covered(prefix)`
 * returns the entries inside a prefix in O(log n + k).
 */
export class AddressIndex {
  private readonly sorted: { 4: AddressEntry[]; 6: AddressEntry[] } = { 4: [], 6: [] };

  constructor(entries: Iterable<AddressEntry & { family: 4 | 6 }>) {
    for (const e of entries) this.sorted[e.family].push({ value: e.value, port: e.port, index: e.index });
    for (const f of [4, 6] as const) this.sorted[f].sort((x, y) => (x.value < y.value ? -1 : x.value > y.value ? 1 : 0));
  }

  covered(p: Prefix): AddressEntry[] {
    const a = this.sorted[p.family];
    let lo = 0;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (a[mid]!.value < p.lo) lo = mid + 1;
      else hi = mid;
    }
    const out: AddressEntry[] = [];
    for (let i = lo; i < a.length && a[i]!.value <= p.hi; i++) out.push(a[i]!);
    return out;
  }
}
