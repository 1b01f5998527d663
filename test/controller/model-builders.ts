/**
 * Small builders for hand-written policy revisions in the controller tests.
 */
import type {
  Group,
  IpSet,
  KeyPolicy,
  ResourceReference,
  Revision,
  Rule,
  Section,
  Workload,
} from '../../ts/common/policy-model';
import type { KeyState } from '../../ts/controller/translate';

export function workload(
  id: string,
  host: string,
  ipv4: string[],
  opts: { ipv6?: string[]; tags?: Array<[string, string]>; extraVnics?: Array<{ ipv4: string[]; ipv6?: string[] }> } = {},
): Workload {
  const vnic = (n: number, v4: string[], v6: string[]) => ({
    id: `${id}-nic${n}`,
    mac: `02:00:00:00:00:0${n}`,
    ipv4: v4,
    ipv6: v6,
    workload_if: `${id}-wl${n}`,
    network_if: `${id}-nt${n}`,
  });
  return {
    id,
    display_name: id,
    host_id: host,
    vnics: [vnic(0, ipv4, opts.ipv6 ?? []), ...(opts.extraVnics ?? []).map((v, i) => vnic(i + 1, v.ipv4, v.ipv6 ?? []))],
    tags: (opts.tags ?? []).map(([scope, tag]) => ({ scope, tag })),
  };
}

export function group(id: string, g: Partial<Omit<Group, 'id'>> = {}): Group {
  return { id, display_name: id, expressions: [], workload_ids: [], ip_set_ids: [], ...g };
}

export function ipSet(id: string, ip_addresses: string[]): IpSet {
  return { id, display_name: id, ip_addresses };
}

export function keyPolicy(id: string, k: Partial<Omit<KeyPolicy, 'id'>> = {}): KeyPolicy {
  return {
    id,
    display_name: id,
    encrypt_type: 'ENCRYPTION_AND_INTEGRITY',
    encrypt_algorithm: 'AES_GCM_128',
    rekey_frequency: 86400,
    lifetime: 172800,
    type: 'REGULAR',
    is_default: false,
    replay_window: 4096,
    ...k,
  };
}

export function rule(id: string, r: Partial<Omit<Rule, 'id'>> = {}): Rule {
  return {
    id,
    display_name: id,
    sources: [],
    destinations: [],
    services: [],
    ip_protocol: 'IPV4_IPV6',
    applied_tos: [],
    action: 'ENCRYPT',
    logged: false,
    disabled: false,
    ...r,
  };
}

export function section(id: string, rules: Rule[], s: Partial<Omit<Section, 'id' | 'rules'>> = {}): Section {
  return { id, display_name: id, disabled: false, applied_tos: [], rules, ...s };
}

export const ref = {
  group: (id: string): ResourceReference => ({ target_type: 'NSGroup', target_id: id }),
  ipSet: (id: string): ResourceReference => ({ target_type: 'IPSet', target_id: id }),
  workload: (id: string): ResourceReference => ({ target_type: 'Workload', target_id: id }),
  ip: (cidr: string): ResourceReference => ({ target_type: 'IPAddress', target_id: cidr }),
};

/** The two default policies every test revision starts with. */
export const DEFAULT_POLICIES = [
  keyPolicy('kp-enc', { is_default: true }),
  keyPolicy('kp-int', { encrypt_type: 'INTEGRITY_ONLY', is_default: true, replay_window: 1024 }),
];

export function revision(r: Partial<Revision>): Revision {
  const workloads = r.workloads ?? [];
  return {
    revision: 1,
    published_at: '2026-01-01T00:00:00Z',
    config: { rekey_margin: 300, default_action: 'ALLOW_IN_CLEAR' },
    hosts: [...new Set(workloads.map((w) => w.host_id))].sort().map((id) => ({ id, display_name: id })),
    workloads,
    groups: [],
    ip_sets: [],
    key_policies: DEFAULT_POLICIES,
    sections: [],
    ...r,
  };
}

/** One active key per policy, SPIs derived from a base so tests can predict them. */
export function activeKeys(policyIds: string[], base = 0x1000): KeyState[] {
  return policyIds.map((id, i) => ({
    keyPolicyId: id,
    keys: [
      {
        keyId: `${id}-k1`,
        spiGcm: base + 2 * i,
        spiGmac: base + 2 * i + 1,
        state: 'active',
        notBefore: '2026-01-01T00:00:00Z',
        notAfter: '2026-01-03T00:00:00Z',
      },
    ],
  }));
}
