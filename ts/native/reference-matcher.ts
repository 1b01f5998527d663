/**
 * A deliberately simple reference for the native classifier: the rule
 * semantics of DESIGN §2 written out plainly (addresses as bit strings, no
 * caches, no shortcuts), so a randomized test can check the native matcher
 * against it.
 */
import * as net from 'node:net';
import { Action, Direction, PortTableSpec, RuleSpec } from './filter';

export interface RefFlow {
  family: 4 | 6;
  protocol: number;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
}

function bits(addr: string): string {
  if (net.isIPv4(addr)) {
    return addr
      .split('.')
      .map((o) => Number(o).toString(2).padStart(8, '0'))
      .join('');
  }
  // Expand "::" and turn each 16-bit group into 16 bits.
  const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => parseInt(g, 16).toString(2).padStart(16, '0')).join('');
}

function inPrefix(addr: string, prefix: string): boolean {
  const [p, len] = prefix.split('/');
  if (net.isIP(addr) !== net.isIP(p!)) return false;
  const n = len === undefined ? (net.isIPv4(addr) ? 32 : 128) : Number(len);
  return bits(addr).slice(0, n) === bits(p!).slice(0, n);
}

function inSet(addr: string, set: string[]): boolean {
  return set.length === 0 || set.some((p) => inPrefix(addr, p));
}

export function refRuleMatches(r: RuleSpec, f: RefFlow, dir: Direction): boolean {
  if (r.ipVersion && r.ipVersion !== f.family) return false;
  if (r.protocol !== null && r.protocol !== undefined && r.protocol !== f.protocol) return false;
  const local = dir === 'out' ? f.src : f.dst;
  const remote = dir === 'out' ? f.dst : f.src;
  if (!inSet(local, r.local) || !inSet(remote, r.remote)) return false;
  if (r.ports.length === 0) return true;
  if (f.sport === undefined || f.dport === undefined) return false;
  // Forward direction of the conversation: source -> destination, to the
  // service port; replies come back from it.
  const forward = (dir === 'out') === (r.role === 'source');
  const port = forward ? f.dport : f.sport;
  return r.ports.some(([lo, hi]) => port >= lo && port <= hi);
}

export function refClassify(t: PortTableSpec, f: RefFlow, dir: Direction): { action: Action; ruleId: number | null } {
  for (const r of t.rules) if (refRuleMatches(r, f, dir)) return { action: r.action, ruleId: r.ruleId };
  return { action: t.defaultAction, ruleId: null };
}
