/**
 * Publish validation (DESIGN §2: "a publish validates the whole
 * configuration ... A publish that references a missing object, or leaves
 * an encrypting rule without a usable key policy, is refused with a clear
 * error"). Returns every problem found, each naming the object and field, so
 * an administrator fixes a draft in one round instead of one error at a time.
 *
 * Two passes: the manager's own checks (they collect all problems), then —
 * when those pass — the controller's translation itself with one synthetic
 * active key per key policy, so that a revision the manager accepts is
 * never one the controllers refuse (one source of truth for what translates).
 */
import { DneError } from '../../common/errors';
import type { Revision, ResourceReference, Rule, Section } from '../../common/policy-model';
import { parseAddress, parsePrefix } from '../../controller/addresses';
import { KeyState, portName, translate } from '../../controller/translate';
import type { Problem } from '../schemas';

export interface ValidationContext {
  /** Key manager ids that exist in the draft. */
  keyManagerIds: Set<string>;
}

const NEEDED_TYPE = { ENCRYPT: 'ENCRYPTION_AND_INTEGRITY', INTEGRITY_ONLY: 'INTEGRITY_ONLY' } as const;
const PORTED = new Set(['TCP', 'UDP', 6, 17, 132, 136]);

function p(object_type: string, object_id: string, field: string, message: string): Problem {
  return { object_type, object_id, field, message };
}

/** Synthetic key state: one active key per policy, SPIs >= 256 (RFC 4303 §2.1 reserves 0-255). */
export function syntheticKeyStates(rev: Revision): KeyState[] {
  return rev.key_policies.map((k, i) => ({
    keyPolicyId: k.id,
    keys: [
      {
        keyId: `00000000-0000-4000-8000-${(i + 1).toString(16).padStart(12, '0')}`,
        spiGcm: 0x1000 + 2 * i,
        spiGmac: 0x1001 + 2 * i,
        state: 'active' as const,
        notBefore: rev.published_at,
        notAfter: rev.published_at,
      },
    ],
  }));
}

const WHERE = /^(section "([^"]+)" rule "([^"]+)"|section "([^"]+)"|workload "([^"]+)"|group "([^"]+)"|ip set "([^"]+)"|key policy "([^"]+)"|key state of policy "([^"]+)"|host "([^"]+)")\s*(.*)$/;

/** Turns translate()'s "revision N: WHERE: WHAT" into a problem naming the object. */
export function problemFromTranslateError(err: DneError): Problem {
  const m = /^revision \d+: (.*?): (.*)$/.exec(err.message);
  if (!m) return p('revision', '', '', err.message);
  const [, where, what] = m;
  const w = WHERE.exec(where!);
  if (!w) return p('revision', '', where!, what!);
  const rest = w[11] ?? '';
  if (w[2] !== undefined) return p('rule', w[3]!, rest, `section "${w[2]}" rule "${w[3]}"${rest ? ` ${rest}` : ''}: ${what}`);
  const pairs: Array<[number, string]> = [
    [4, 'section'],
    [5, 'workload'],
    [6, 'group'],
    [7, 'ip_set'],
    [8, 'key_policy'],
    [9, 'key_policy'],
    [10, 'host'],
  ];
  for (const [i, type] of pairs) if (w[i] !== undefined) return p(type, w[i]!, rest, `${where}: ${what}`);
  return p('revision', '', where!, what!);
}

export function validateRevision(rev: Revision, ctx: ValidationContext): Problem[] {
  const out: Problem[] = [];
  const hosts = new Set(rev.hosts.map((h) => h.id));
  const workloads = new Set(rev.workloads.map((w) => w.id));
  const groups = new Set(rev.groups.map((g) => g.id));
  const ipSets = new Set(rev.ip_sets.map((s) => s.id));
  const policies = new Map(rev.key_policies.map((k) => [k.id, k]));

  // Inventory: agents report it, so it can change under a rule at any time.
  const vnicOwner = new Map<string, string>();
  const portOwner = new Map<string, string>();
  for (const w of rev.workloads) {
    if (!hosts.has(w.host_id)) out.push(p('workload', w.id, 'host_id', `workload "${w.id}": host "${w.host_id}" does not exist`));
    w.vnics.forEach((v, i) => {
      const prev = vnicOwner.get(v.id);
      if (prev !== undefined) out.push(p('workload', w.id, `vnics[${i}].id`, `workload "${w.id}": vNIC id "${v.id}" is already used by workload "${prev}"`));
      vnicOwner.set(v.id, w.id);
      const name = portName(v.id);
      const prevPort = portOwner.get(`${w.host_id}\0${name}`);
      if (prevPort !== undefined && prevPort !== v.id) out.push(p('workload', w.id, `vnics[${i}].id`, `workload "${w.id}": vNIC "${v.id}" maps to the port name "${name}" of vNIC "${prevPort}"`));
      portOwner.set(`${w.host_id}\0${name}`, v.id);
      v.ipv4.forEach((a, j) => {
        if (parseAddress(a)?.family !== 4) out.push(p('workload', w.id, `vnics[${i}].ipv4[${j}]`, `workload "${w.id}": ${JSON.stringify(a)} is not an IPv4 address`));
      });
      v.ipv6.forEach((a, j) => {
        if (parseAddress(a)?.family !== 6) out.push(p('workload', w.id, `vnics[${i}].ipv6[${j}]`, `workload "${w.id}": ${JSON.stringify(a)} is not an IPv6 address`));
      });
    });
  }

  for (const s of rev.ip_sets) {
    s.ip_addresses.forEach((a, i) => {
      if (parsePrefix(a) === null) out.push(p('ip_set', s.id, `ip_addresses[${i}]`, `IP set "${s.id}": ${JSON.stringify(a)} is not an IPv4/IPv6 address or CIDR`));
    });
  }
  for (const g of rev.groups) {
    g.expressions.forEach((e, i) => {
      if (!e.scope && !e.tag) out.push(p('group', g.id, `expressions[${i}]`, `group "${g.id}": expressions[${i}] needs a scope, a tag or both`));
    });
    g.workload_ids.forEach((id, i) => {
      if (!workloads.has(id)) out.push(p('group', g.id, `workload_ids[${i}]`, `group "${g.id}": workload "${id}" does not exist`));
    });
    g.ip_set_ids.forEach((id, i) => {
      if (!ipSets.has(id)) out.push(p('group', g.id, `ip_set_ids[${i}]`, `group "${g.id}": IP set "${id}" does not exist`));
    });
  }

  const defaults = new Map<string, string[]>();
  for (const k of rev.key_policies) {
    const kmId = (k as { key_manager_id?: string }).key_manager_id;
    if (kmId && !ctx.keyManagerIds.has(kmId)) out.push(p('key_policy', k.id, 'key_manager_id', `key policy "${k.id}": key manager "${kmId}" does not exist`));
    if (k.rekey_frequency > 0 && k.rekey_frequency >= k.lifetime) {
      out.push(p('key_policy', k.id, 'rekey_frequency', `key policy "${k.id}": rekey_frequency ${k.rekey_frequency} s must be shorter than lifetime ${k.lifetime} s, or keys expire before they rotate`));
    }
    if (k.is_default) {
      const key = `${k.type} ${k.encrypt_type}`;
      defaults.set(key, [...(defaults.get(key) ?? []), k.id]);
    }
  }
  for (const [key, ids] of defaults) {
    if (ids.length > 1) for (const id of ids) out.push(p('key_policy', id, 'is_default', `key policy "${id}": more than one default ${key} key policy (${ids.map((x) => `"${x}"`).join(', ')})`));
  }

  const refs = (refsList: ResourceReference[], type: string, id: string, field: string, appliedTo: boolean, label: string) => {
    refsList.forEach((r, i) => {
      const f = `${field}[${i}]`;
      const where = `${label} ${f}`;
      if (appliedTo && (r.target_type === 'IPSet' || r.target_type === 'IPAddress')) {
        out.push(p(type, id, f, `${where}: an applied-to must be an NSGroup or a Workload, not ${r.target_type}`));
        return;
      }
      if (r.target_type === 'NSGroup' && !groups.has(r.target_id)) out.push(p(type, id, f, `${where}: NSGroup "${r.target_id}" does not exist`));
      if (r.target_type === 'Workload' && !workloads.has(r.target_id)) out.push(p(type, id, f, `${where}: workload "${r.target_id}" does not exist`));
      if (r.target_type === 'IPSet' && !ipSets.has(r.target_id)) out.push(p(type, id, f, `${where}: IP set "${r.target_id}" does not exist`));
      if (r.target_type === 'IPAddress' && parsePrefix(r.target_id) === null) out.push(p(type, id, f, `${where}: ${JSON.stringify(r.target_id)} is not an IPv4/IPv6 address or CIDR`));
    });
  };

  const ruleIds = new Map<string, string>();
  for (const s of rev.sections) {
    const sl = `section "${s.id}"`;
    if (s.key_policy_identifier && !policies.has(s.key_policy_identifier)) {
      out.push(p('section', s.id, 'key_policy_identifier', `${sl}: key policy "${s.key_policy_identifier}" does not exist`));
    }
    refs(s.applied_tos, 'section', s.id, 'applied_tos', true, sl);
    for (const r of s.rules) {
      const rl = `${sl} rule "${r.id}"`;
      const other = ruleIds.get(r.id);
      if (other !== undefined) out.push(p('rule', r.id, 'id', `${rl}: rule id is also used in section "${other}"`));
      ruleIds.set(r.id, s.id);
      if (r.key_policy_identifier && !policies.has(r.key_policy_identifier)) {
        out.push(p('rule', r.id, 'key_policy_identifier', `${rl}: key policy "${r.key_policy_identifier}" does not exist`));
      }
      refs(r.sources, 'rule', r.id, 'sources', false, rl);
      refs(r.destinations, 'rule', r.id, 'destinations', false, rl);
      refs(r.applied_tos, 'rule', r.id, 'applied_tos', true, rl);
      r.services.forEach((svc, i) => {
        if (svc.destination_ports.length > 0 && !PORTED.has(svc.protocol)) {
          out.push(p('rule', r.id, `services[${i}].destination_ports`, `${rl} services[${i}]: protocol ${String(svc.protocol)} has no ports, but destination_ports is set`));
        }
        svc.destination_ports.forEach((t, j) => {
          const [lo, hi] = t.split('-').map(Number);
          if (!(lo! <= (hi ?? lo!) && (hi ?? lo!) <= 65535)) out.push(p('rule', r.id, `services[${i}].destination_ports[${j}]`, `${rl} services[${i}]: destination port "${t}" is not "N" or "LO-HI" within 0-65535`));
        });
      });
      keyPolicyProblems(rev, s, r, policies, out);
    }
  }
  if (out.length > 0) return out;

  try {
    translate(rev, syntheticKeyStates(rev));
  } catch (err) {
    if (err instanceof DneError) return [problemFromTranslateError(err)];
    throw err;
  }
  return out;
}

/** DESIGN §2: the action must be consistent with the effective key policy's type, and an encrypting rule needs a usable one. */
function keyPolicyProblems(rev: Revision, s: Section, r: Rule, policies: Map<string, Revision['key_policies'][number]>, out: Problem[]): void {
  if (r.action === 'ALLOW_IN_CLEAR') return;
  const rl = `section "${s.id}" rule "${r.id}"`;
  const need = NEEDED_TYPE[r.action];
  const fromSection = !!s.key_policy_identifier;
  const id = fromSection ? s.key_policy_identifier : r.key_policy_identifier;
  if (id) {
    const kp = policies.get(id);
    if (!kp) return; // reported as a dangling reference
    if (kp.encrypt_type !== need) {
      out.push(
        p(
          'rule',
          r.id,
          fromSection ? 'action (section key_policy_identifier)' : 'action',
          `${rl}: ${r.action} needs an ${need} key policy, but ${fromSection ? `section "${s.id}"'s` : 'its'} key policy "${id}" is ${kp.encrypt_type}`,
        ),
      );
    }
    if (kp.type === 'BUM_TRAFFIC') {
      out.push(p('rule', r.id, 'key_policy_identifier', `${rl}: key policy "${id}" is a BUM_TRAFFIC policy (broadcast/multicast); a unicast rule needs a REGULAR one`));
    }
    return;
  }
  const defaults = rev.key_policies.filter((k) => k.is_default && k.encrypt_type === need && k.type === 'REGULAR');
  if (defaults.length === 0) {
    out.push(p('rule', r.id, 'key_policy_identifier', `${rl}: ${r.action} names no key policy and there is no default REGULAR ${need} key policy`));
  }
}
