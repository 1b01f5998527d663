/**
 * Building a Revision (ts/common/policy-model.ts) from stored objects, and
 * comparing two revisions. The draft is the set of editable objects; a
 * publish snapshots it, with the live inventory, into an immutable Revision.
 */
import type { GlobalConfig, Group, Host, IpSet, KeyPolicy, Revision, Rule, Section, Tag, Workload } from '../common/policy-model';
import type { ManagerStoreTx, StoredObject } from './store';

export const DEFAULT_CONFIG: GlobalConfig = { rekey_margin: 3600, default_action: 'ALLOW_IN_CLEAR' };

/** The policy half of a revision: what a publish takes from the draft and a rollback restores. */
export type PolicyPart = Pick<Revision, 'config' | 'groups' | 'ip_sets' | 'key_policies' | 'sections'>;
export type InventoryPart = Pick<Revision, 'hosts' | 'workloads'>;

function tagKey(t: Tag): string {
  return `${t.scope}\0${t.tag}`;
}

/** Effective tags: the administrator's and the agent's, each once (contracts.ts InventoryReport). */
export function effectiveTags(admin: Tag[], reported: Tag[]): Tag[] {
  const seen = new Set<string>();
  const out: Tag[] = [];
  for (const t of [...admin, ...reported]) {
    if (seen.has(tagKey(t))) continue;
    seen.add(tagKey(t));
    out.push({ scope: t.scope, tag: t.tag });
  }
  return out;
}

function opt<T extends object>(o: T, k: string, v: unknown): T {
  if (v !== undefined && v !== null && v !== '') (o as Record<string, unknown>)[k] = v;
  return o;
}

export function toRule(o: StoredObject): Rule {
  const b = o.body as unknown as Rule;
  const r: Rule = {
    id: o.id,
    display_name: b.display_name,
    sources: b.sources,
    destinations: b.destinations,
    services: b.services,
    ip_protocol: b.ip_protocol,
    applied_tos: b.applied_tos,
    action: b.action,
    logged: b.logged,
    disabled: b.disabled,
  };
  opt(r, 'key_policy_identifier', b.key_policy_identifier);
  opt(r, 'rule_tag', b.rule_tag);
  opt(r, 'notes', b.notes);
  return r;
}

export function toSection(o: StoredObject, rules: Rule[]): Section {
  const b = o.body as unknown as Section;
  const s: Section = { id: o.id, display_name: b.display_name, disabled: b.disabled, applied_tos: b.applied_tos, rules };
  opt(s, 'key_policy_identifier', b.key_policy_identifier);
  return s;
}

export function toKeyPolicy(o: StoredObject): KeyPolicy {
  const b = o.body as unknown as KeyPolicy & { key_manager_id?: string };
  const k: KeyPolicy = {
    id: o.id,
    display_name: b.display_name,
    encrypt_type: b.encrypt_type,
    encrypt_algorithm: b.encrypt_algorithm,
    rekey_frequency: b.rekey_frequency,
    lifetime: b.lifetime,
    type: b.type,
    is_default: b.is_default,
    replay_window: b.replay_window,
  };
  // Not in the shared model: carried so a rollback restores it; controllers ignore it.
  return opt(k, 'key_manager_id', b.key_manager_id);
}

export async function draftPolicy(tx: ManagerStoreTx): Promise<PolicyPart> {
  const cfg = await tx.get('config', 'global');
  const rulesBySection = new Map<string, Rule[]>();
  for (const r of await tx.list('rule')) {
    const l = rulesBySection.get(r.parent) ?? [];
    l.push(toRule(r));
    rulesBySection.set(r.parent, l);
  }
  const sections = (await tx.list('section')).sort((a, b) => a.pos - b.pos).map((s) => toSection(s, rulesBySection.get(s.id) ?? []));
  return {
    config: cfg ? { rekey_margin: cfg.body.rekey_margin as number, default_action: cfg.body.default_action as GlobalConfig['default_action'] } : { ...DEFAULT_CONFIG },
    groups: (await tx.list('group')).map(
      (o): Group => ({
        id: o.id,
        display_name: o.body.display_name as string,
        expressions: o.body.expressions as Group['expressions'],
        workload_ids: o.body.workload_ids as string[],
        ip_set_ids: o.body.ip_set_ids as string[],
      }),
    ),
    ip_sets: (await tx.list('ip_set')).map((o): IpSet => ({ id: o.id, display_name: o.body.display_name as string, ip_addresses: o.body.ip_addresses as string[] })),
    key_policies: (await tx.list('key_policy')).map(toKeyPolicy),
    sections,
  };
}

/**
 * The tags that decide group membership: the administrator's, plus the
 * agent-reported ones whose scope the operator trusts (`trustedReportedTagScopes`).
 * DESIGN §2: agents report workloads, the administrator tags them — a
 * compromised host must not be able to tag its own workloads into a group and
 * be granted that group's key. Reported tags stay visible (`reported_tags`).
 */
export function membershipTags(admin: Tag[], reported: Tag[], trustedScopes: ReadonlySet<string>): Tag[] {
  return effectiveTags(admin, trustedScopes.size ? reported.filter((t) => trustedScopes.has(t.scope)) : []);
}

export async function currentInventory(tx: ManagerStoreTx, trustedScopes: ReadonlySet<string> = new Set()): Promise<InventoryPart> {
  return {
    hosts: (await tx.list('host')).map((o): Host => ({ id: o.id, display_name: o.body.display_name as string })),
    workloads: (await tx.list('workload')).map(
      (o): Workload => ({
        id: o.id,
        display_name: o.body.display_name as string,
        host_id: o.body.host_id as string,
        vnics: o.body.vnics as Workload['vnics'],
        tags: membershipTags((o.body.tags as Tag[]) ?? [], (o.body.reported_tags as Tag[]) ?? [], trustedScopes),
      }),
    ),
  };
}

export function assemble(n: number, at: string, policy: PolicyPart, inventory: InventoryPart): Revision {
  return {
    revision: n,
    published_at: at,
    config: policy.config,
    hosts: inventory.hosts,
    workloads: inventory.workloads,
    groups: policy.groups,
    ip_sets: policy.ip_sets,
    key_policies: policy.key_policies,
    sections: policy.sections,
  };
}

export function policyOf(rev: Revision): PolicyPart {
  return { config: rev.config, groups: rev.groups, ip_sets: rev.ip_sets, key_policies: rev.key_policies, sections: rev.sections };
}

export interface DiffEntry {
  added: string[];
  removed: string[];
  changed: string[];
}

function diffList<T extends { id: string }>(a: T[], b: T[]): DiffEntry {
  const am = new Map(a.map((x) => [x.id, JSON.stringify(x)]));
  const bm = new Map(b.map((x) => [x.id, JSON.stringify(x)]));
  return {
    added: [...bm.keys()].filter((k) => !am.has(k)),
    removed: [...am.keys()].filter((k) => !bm.has(k)),
    changed: [...bm.keys()].filter((k) => am.has(k) && am.get(k) !== bm.get(k)),
  };
}

/** What changed from `a` to `b`, per object kind; a section counts as changed only for its own fields (its rules are listed apart). */
export function diffRevisions(a: Revision, b: Revision) {
  const shell = (s: Section) => ({ ...s, rules: s.rules.map((r) => r.id) });
  const rules = (r: Revision) => r.sections.flatMap((s) => s.rules.map((x) => ({ ...x, section_id: s.id })));
  return {
    config_changed: JSON.stringify(a.config) !== JSON.stringify(b.config),
    section_order_changed:
      JSON.stringify(a.sections.map((s) => s.id).filter((id) => b.sections.some((x) => x.id === id))) !==
      JSON.stringify(b.sections.map((s) => s.id).filter((id) => a.sections.some((x) => x.id === id))),
    hosts: diffList(a.hosts, b.hosts),
    workloads: diffList(a.workloads, b.workloads),
    groups: diffList(a.groups, b.groups),
    ip_sets: diffList(a.ip_sets, b.ip_sets),
    key_policies: diffList(a.key_policies, b.key_policies),
    sections: diffList(a.sections.map(shell), b.sections.map(shell)),
    rules: diffList(rules(a), rules(b)),
  };
}
