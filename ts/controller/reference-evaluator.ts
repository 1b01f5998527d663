/**
 * A deliberately plain evaluator of DESIGN §2 on the policy model itself: it
 * walks sections and rules for one flow, with no compilation, no indexes and
 * no code shared with translate.ts, so a randomized test can check that the
 * per-port tables the translator builds decide every flow the way the model
 * says. Slow by design; for tests (and a model of what "explain" answers).
 */
import * as net from 'node:net';
import type { KeyPolicy, ResourceReference, Revision, Rule, Section, Service, Workload } from '../common/policy-model';

export interface ModelFlow {
  src: string;
  dst: string;
  protocol: number;
  sport?: number;
  dport?: number;
}

export interface ModelVerdict {
  action: 'allow' | 'encrypt' | 'integrity' | 'drop';
  /** The effective key policy of the matching rule; null for clear text and for the default. */
  keyPolicyId: string | null;
  /** The matching rule's id; null when the default applied. */
  ruleId: string | null;
}

// ----------------------------------------------------- addresses as bit strings

// Memoized only because the randomized test asks about the same few
// addresses millions of times; the conversion itself stays naive.
const bitsCache = new Map<string, string>();

function toBits(addr: string): string {
  let b = bitsCache.get(addr);
  if (b === undefined) {
    b = toBitsUncached(addr);
    bitsCache.set(addr, b);
  }
  return b;
}

function toBitsUncached(addr: string): string {
  if (net.isIPv4(addr)) return addr.split('.').map((o) => Number(o).toString(2).padStart(8, '0')).join('');
  const halves = addr.split('::');
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length > 1 && halves[1] ? halves[1].split(':') : [];
  const fill = halves.length > 1 ? Array(8 - head.length - tail.length).fill('0') : [];
  return [...head, ...fill, ...tail].map((g) => parseInt(g, 16).toString(2).padStart(16, '0')).join('');
}

/** Is `addr` inside `cidr` (a bare address counts as a host prefix)? */
function within(addr: string, cidr: string): boolean {
  const [base, len] = cidr.split('/');
  const a = toBits(addr);
  const b = toBits(base!);
  if (a.length !== b.length) return false; // IPv4 vs IPv6
  const n = len === undefined ? a.length : Number(len);
  return a.slice(0, n) === b.slice(0, n);
}

function addressesOf(w: Workload): string[] {
  const out: string[] = [];
  for (const v of w.vnics) out.push(...v.ipv4, ...v.ipv6);
  return out;
}

// ---------------------------------------------------------------- membership

function workload(rev: Revision, id: string): Workload {
  const w = rev.workloads.find((x) => x.id === id);
  if (!w) throw new Error(`no workload ${id}`);
  return w;
}

/** A workload belongs to a group through a tag expression or by being listed (IP sets add addresses, not workloads). */
function isMember(rev: Revision, groupId: string, w: Workload): boolean {
  const g = rev.groups.find((x) => x.id === groupId);
  if (!g) throw new Error(`no group ${groupId}`);
  if (g.workload_ids.includes(w.id)) return true;
  return g.expressions.some((e) =>
    w.tags.some((t) => (e.scope === undefined || e.scope === t.scope) && (e.tag === undefined || e.tag === t.tag)),
  );
}

/** Does one reference cover this address? */
function refCovers(rev: Revision, ref: ResourceReference, addr: string): boolean {
  const ipSetCovers = (id: string) => {
    const s = rev.ip_sets.find((x) => x.id === id);
    if (!s) throw new Error(`no ip set ${id}`);
    return s.ip_addresses.some((c) => within(addr, c));
  };
  switch (ref.target_type) {
    case 'IPAddress':
      return within(addr, ref.target_id);
    case 'IPSet':
      return ipSetCovers(ref.target_id);
    case 'Workload':
      return addressesOf(workload(rev, ref.target_id)).some((a) => within(addr, a));
    case 'NSGroup': {
      const g = rev.groups.find((x) => x.id === ref.target_id)!;
      const viaMembers = rev.workloads.some((w) => isMember(rev, g.id, w) && addressesOf(w).some((a) => within(addr, a)));
      return viaMembers || g.ip_set_ids.some(ipSetCovers);
    }
  }
}

/** Empty list: any address. */
function listCovers(rev: Revision, refs: ResourceReference[], addr: string): boolean {
  return refs.length === 0 || refs.some((r) => refCovers(rev, r, addr));
}

// --------------------------------------------------------------- rule parts

function serviceMatches(svc: Service, flow: ModelFlow, family: 4 | 6, port: number | undefined): boolean {
  const proto = svc.protocol;
  if (proto === 'TCP' && flow.protocol !== 6) return false;
  if (proto === 'UDP' && flow.protocol !== 17) return false;
  if (proto === 'ICMPv4' && (flow.protocol !== 1 || family !== 4)) return false;
  if (proto === 'ICMPv6' && (flow.protocol !== 58 || family !== 6)) return false;
  if (typeof proto === 'number' && flow.protocol !== proto) return false;
  if (svc.destination_ports.length === 0) return true;
  if (port === undefined) return false;
  return svc.destination_ports.some((p) => {
    const [lo, hi] = p.split('-').map(Number);
    return port >= lo! && port <= (hi ?? lo!);
  });
}

function servicesMatch(rule: Rule, flow: ModelFlow, family: 4 | 6, port: number | undefined): boolean {
  return rule.services.length === 0 || rule.services.some((s) => serviceMatches(s, flow, family, port));
}

/** A rule covers the conversation: source -> destination to the service port, and the replies (DESIGN §2). */
function ruleMatches(rev: Revision, rule: Rule, flow: ModelFlow): boolean {
  const family = net.isIPv4(flow.src) ? 4 : 6;
  if (rule.ip_protocol === 'IPV4' && family !== 4) return false;
  if (rule.ip_protocol === 'IPV6' && family !== 6) return false;
  const forward =
    listCovers(rev, rule.sources, flow.src) &&
    listCovers(rev, rule.destinations, flow.dst) &&
    servicesMatch(rule, flow, family, flow.dport);
  const reply =
    listCovers(rev, rule.destinations, flow.src) &&
    listCovers(rev, rule.sources, flow.dst) &&
    servicesMatch(rule, flow, family, flow.sport);
  return forward || reply;
}

/**
 * Is the rule enforced at this workload? Explicit applied-to (the section's
 * if any, else the rule's): the workloads named or the members of the groups
 * named. Default: the workloads in the rule's sources or destinations, i.e.
 * those with an address there (any: all of them).
 */
export function appliesAt(rev: Revision, section: Section, rule: Rule, workloadId: string): boolean {
  const w = workload(rev, workloadId);
  const applied = section.applied_tos.length > 0 ? section.applied_tos : rule.applied_tos;
  if (applied.length > 0) {
    return applied.some((r) => (r.target_type === 'Workload' ? r.target_id === w.id : isMember(rev, r.target_id, w)));
  }
  return addressesOf(w).some((a) => listCovers(rev, rule.sources, a) || listCovers(rev, rule.destinations, a));
}

function effectiveKeyPolicy(rev: Revision, section: Section, rule: Rule): KeyPolicy | null {
  if (rule.action === 'ALLOW_IN_CLEAR') return null;
  const id = section.key_policy_identifier || rule.key_policy_identifier;
  if (id) return rev.key_policies.find((k) => k.id === id)!;
  const type = rule.action === 'ENCRYPT' ? 'ENCRYPTION_AND_INTEGRITY' : 'INTEGRITY_ONLY';
  return rev.key_policies.find((k) => k.is_default && k.encrypt_type === type && k.type === 'REGULAR')!;
}

/**
 * First match over enabled sections, then enabled rules; no match: the
 * configured default. With `at`, only the rules enforced at that workload
 * take part: what that workload's own port decides.
 */
export function evaluateFlow(rev: Revision, flow: ModelFlow, at?: string): ModelVerdict {
  for (const section of rev.sections) {
    if (section.disabled) continue;
    for (const rule of section.rules) {
      if (rule.disabled) continue;
      if (!ruleMatches(rev, rule, flow)) continue;
      if (at !== undefined && !appliesAt(rev, section, rule, at)) continue;
      const action = rule.action === 'ENCRYPT' ? 'encrypt' : rule.action === 'INTEGRITY_ONLY' ? 'integrity' : 'allow';
      return { action, keyPolicyId: effectiveKeyPolicy(rev, section, rule)?.id ?? null, ruleId: rule.id };
    }
  }
  return { action: rev.config.default_action === 'DROP' ? 'drop' : 'allow', keyPolicyId: null, ruleId: null };
}

/** The first matching rule regardless of applied-to, with its section (for the "both ends enforce it" check). */
export function firstMatch(rev: Revision, flow: ModelFlow): { section: Section; rule: Rule } | null {
  for (const section of rev.sections) {
    if (section.disabled) continue;
    for (const rule of section.rules) if (!rule.disabled && ruleMatches(rev, rule, flow)) return { section, rule };
  }
  return null;
}
