/**
 * Explain (DESIGN §2, §7 "traceflow-style explain"): which section, rule,
 * action and key policy apply to a flow at a workload's port, for the draft
 * or any published revision. It asks the controller's plain reference
 * evaluator (ts/controller/reference-evaluator.ts), the same model the
 * translator's randomized test holds the compiled tables to, so the answer
 * is what the dataplane decides.
 */
import { httpError } from '../common/http-errors';
import type { Revision } from '../common/policy-model';
import { evaluateFlow, firstMatch, ModelFlow } from '../controller/reference-evaluator';
import { parseAddress } from '../controller/addresses';
import { portName } from '../controller/translate';
import type { ExplainBody } from './schemas';
import { ipFamily, PROTOCOL_NUMBERS } from './service';

const ACTION_NAMES = { encrypt: 'ENCRYPT', integrity: 'INTEGRITY_ONLY', allow: 'ALLOW_IN_CLEAR', drop: 'DROP' } as const;

/** Checks what can be checked without a revision (so bad input is 400 even when the draft does not validate). */
export function checkExplainInput(q: ExplainBody): void {
  const fs = ipFamily(q.source_ip);
  const fd = ipFamily(q.destination_ip);
  if (!fs) throw httpError('badRequest', 'body/source_ip must be an IPv4 or IPv6 address');
  if (!fd) throw httpError('badRequest', 'body/destination_ip must be an IPv4 or IPv6 address');
  if (fs !== fd) throw httpError('badRequest', 'body/source_ip and body/destination_ip must be of the same IP version');
  if (q.protocol === 'ICMPv4' && fs !== 4) throw httpError('badRequest', 'body/protocol ICMPv4 needs IPv4 addresses');
  if (q.protocol === 'ICMPv6' && fs !== 6) throw httpError('badRequest', 'body/protocol ICMPv6 needs IPv6 addresses');
  if (q.workload_id !== undefined && (q.host_id !== undefined || q.port !== undefined)) throw httpError('badRequest', 'body: give workload_id, or host_id and port, not both');
  if (q.workload_id === undefined && (q.host_id === undefined) !== (q.port === undefined)) {
    throw httpError('badRequest', `body must have required field '${q.host_id === undefined ? 'host_id' : 'port'}' (host_id and port go together)`);
  }
}

/**
 * The part of a revision that can influence one flow: the reference
 * evaluator scans every workload for every group reference (plain by
 * design), which takes minutes at 10,000 workloads. Only workloads with an
 * address equal to the flow's source or destination can be covered by a
 * reference, and only the enforcing workload matters for applied-to, so the
 * others are left out, or kept as address-less, tag-less stand-ins when a
 * rule names them (so the reference resolves; they match nothing): the
 * verdict is the same, in milliseconds.
 */
export function reduceForFlow(rev: Revision, src: string, dst: string, at: string | undefined): Revision {
  const a = parseAddress(src)!;
  const b = parseAddress(dst)!;
  const hit = (x: string) => {
    const p = parseAddress(x);
    return p !== null && p.family === a.family && (p.value === a.value || p.value === b.value);
  };
  // Workloads named directly by a reference must still resolve (as stand-ins).
  const named = new Set<string>();
  for (const sec of rev.sections) {
    for (const r of [...sec.applied_tos, ...sec.rules.flatMap((x) => [...x.sources, ...x.destinations, ...x.applied_tos])]) if (r.target_type === 'Workload') named.add(r.target_id);
  }
  const workloads: Revision['workloads'] = [];
  for (const w of rev.workloads) {
    if (w.id === at || w.vnics.some((v) => v.ipv4.some(hit) || v.ipv6.some(hit))) workloads.push(w);
    else if (named.has(w.id)) workloads.push({ ...w, vnics: [], tags: [] });
  }
  return { ...rev, workloads };
}

export function explainFlow(rev: Revision, label: number | 'draft', q: ExplainBody) {
  checkExplainInput(q);
  const protocol = typeof q.protocol === 'number' ? q.protocol : PROTOCOL_NUMBERS[q.protocol]!;

  let at: string | undefined;
  if (q.workload_id !== undefined) {
    if (!rev.workloads.some((w) => w.id === q.workload_id)) throw httpError('notFound', `workload "${q.workload_id}" does not exist in ${label === 'draft' ? 'the draft' : `revision ${label}`}`);
    at = q.workload_id;
  } else if (q.host_id !== undefined || q.port !== undefined) {
    const w = rev.workloads.find((x) => x.host_id === q.host_id && x.vnics.some((v) => v.id === q.port || portName(v.id) === q.port));
    if (!w) throw httpError('notFound', `host "${q.host_id}" has no port "${q.port}" (a vNIC id or filter port name) in ${label === 'draft' ? 'the draft' : `revision ${label}`}`);
    at = w.id;
  }

  const flow: ModelFlow = { src: q.source_ip, dst: q.destination_ip, protocol, sport: q.source_port, dport: q.destination_port };
  const small = reduceForFlow(rev, q.source_ip, q.destination_ip, at);
  const v = evaluateFlow(small, flow, at);
  const anywhere = firstMatch(small, flow);
  let section = null as Revision['sections'][number] | null;
  let rule = null as Revision['sections'][number]['rules'][number] | null;
  if (v.ruleId !== null) {
    for (const s of rev.sections) {
      const r = s.rules.find((x) => x.id === v.ruleId);
      if (r) {
        section = s;
        rule = r;
        break;
      }
    }
  }
  const kp = v.keyPolicyId === null ? null : (rev.key_policies.find((k) => k.id === v.keyPolicyId) ?? null);
  const action = ACTION_NAMES[v.action];
  const where = at === undefined ? 'anywhere' : `at workload "${at}"`;
  let explanation: string;
  if (rule && section) {
    explanation = `first match ${where}: section "${section.id}" rule "${rule.id}" (${rule.display_name}) -> ${action}${kp ? ` with key policy "${kp.id}"${section.key_policy_identifier ? " (the section's)" : rule.key_policy_identifier ? '' : ' (the default)'}` : ''}`;
  } else {
    explanation = `no enabled rule matches ${where}: the default action ${rev.config.default_action} applies`;
  }
  const elsewhere = anywhere && anywhere.rule.id !== v.ruleId ? { section_id: anywhere.section.id, rule_id: anywhere.rule.id } : null;
  if (elsewhere) explanation += `; rule "${elsewhere.rule_id}" of section "${elsewhere.section_id}" matches earlier but is not applied at this workload`;
  if (at !== undefined) {
    const w = rev.workloads.find((x) => x.id === at)!;
    const addrs = w.vnics.flatMap((n) => [...n.ipv4, ...n.ipv6]);
    if (!addrs.includes(q.source_ip) && !addrs.includes(q.destination_ip)) explanation += `; note: neither address is workload "${at}"'s, so its port never sees this flow`;
  }
  return {
    revision: label,
    workload_id: at ?? null,
    action,
    matched: rule !== null,
    section_id: section?.id ?? null,
    section_display_name: section?.display_name ?? null,
    rule_id: rule?.id ?? null,
    rule_display_name: rule?.display_name ?? null,
    key_policy_id: kp?.id ?? null,
    key_policy_display_name: kp?.display_name ?? null,
    first_match_elsewhere: elsewhere,
    explanation,
  };
}
