/**
 * Per-host translation (issue #6): a published Revision (DESIGN §2) plus the
 * controller's key rollover state become, for every host, exactly what its
 * agent needs: its protected ports with their compiled rule tables (the
 * filter's PortTableSpec, DESIGN §4 "per-port compiled rule tables") and the
 * keys of the key policies those tables use (DESIGN §5 access control: a host
 * gets only the keys its own ports need).
 *
 * Pure: no I/O, no clock, no randomness; the same input gives the same output.
 * docs/controller.md states every semantic decision made here.
 *
 * Cost: group membership, group prefixes and each distinct source/destination
 * list are resolved once per call; each rule then touches only the ports in
 * its scope, so the work is O(workloads + rules × ports in scope).
 */
import { createHash } from 'node:crypto';
import { DneError, ErrorCodes } from '../common/errors';
import type {
  Group,
  KeyPolicy,
  ResourceReference,
  Revision,
  Rule,
  RuleAction,
  Section,
  Service,
} from '../common/policy-model';
import type { Action, PortTableSpec, RuleSpec } from '../native/filter';
import { AddressIndex, AddressEntry, parseAddress, parsePrefix, Prefix, prefixKey } from './addresses';

export type KeyStateName = 'receive' | 'active' | 'retiring' | 'revoked';

/** Per key policy, from the controller's rollover state (DESIGN §5). */
export interface KeyState {
  keyPolicyId: string;
  keys: Array<{
    keyId: string;
    /** SPIs of this key for AES-GCM (ENCRYPT) and AES-GMAC (INTEGRITY_ONLY); DESIGN §3: an SPI names (key, mode). */
    spiGcm: number;
    spiGmac: number;
    state: KeyStateName;
    notBefore: string;
    notAfter: string;
    /**
     * The mode the key was made for (the policy's encrypt_type then); default:
     * the policy's current one. A key keeps its mode for life (DESIGN §3: one
     * key is never used for both GCM and GMAC): when the type changes, the
     * controller rolls over to a key of the new mode.
     */
    mode?: 'gcm' | 'gmac';
  }>;
}

export interface HostPort {
  /** The filter's port name: the vNIC id, or a digest of it when the id is not a valid port name (portName()). */
  name: string;
  workload_id: string;
  vnic_id: string;
  workload_if: string;
  network_if: string;
  netns?: string;
  addresses: string[];
  table: PortTableSpec;
}

export interface HostKey {
  keyId: string;
  keyPolicyId: string;
  /** The `keyPolicy` number the port tables use for this policy; the SA is installed with it. */
  keyPolicyIndex: number;
  spi: number;
  mode: 'gcm' | 'gmac';
  /** Revoked keys are never sent to a host. */
  state: Exclude<KeyStateName, 'revoked'>;
  notBefore: string;
  notAfter: string;
  replayWindow: number;
}

/** What a filter rule number stands for (agent counters, /rules and the stats report name rules by `id`). */
export interface HostRuleName {
  ruleId: number;
  id: string;
  sectionId: string;
  displayName: string;
}

/** What a `keyPolicy` number stands for. */
export interface HostKeyPolicyName {
  index: number;
  id: string;
  displayName: string;
}

export interface HostConfig {
  hostId: string;
  revision: number;
  defaultAction: 'allow' | 'drop';
  ports: HostPort[];
  keys: HostKey[];
  /** The rules that appear in this host's port tables, in policy order. */
  rules: HostRuleName[];
  /** The key policies this host's tables name (the same set as `keys`' policies). */
  keyPolicies: HostKeyPolicyName[];
}

// ------------------------------------------------------------ stable numbers

/** 32-bit FNV-1a over the UTF-8 bytes of `s`. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * A nonzero uint32 per id: FNV-1a of the id, so the number survives
 * republishing (rules and policies added or removed elsewhere do not change
 * it). On a collision, ids are taken in sorted order and a later one moves to
 * the next free value, so the result is still a function of the id set alone.
 */
export function stableIds(ids: Iterable<string>): Map<string, number> {
  const out = new Map<string, number>();
  const taken = new Set<number>();
  for (const id of [...new Set(ids)].sort()) {
    let h = fnv1a32(id);
    while (h === 0 || taken.has(h)) h = (h + 1) >>> 0;
    taken.add(h);
    out.set(id, h);
  }
  return out;
}

/** rule.id -> RuleSpec.ruleId, over every rule of the revision (disabled ones too, so enabling one moves nothing). */
export function ruleIds(rev: Revision): Map<string, number> {
  return stableIds(rev.sections.flatMap((s) => s.rules.map((r) => r.id)));
}

/** key policy id -> RuleSpec.keyPolicy / HostKey.keyPolicyIndex. */
export function keyPolicyIndexes(rev: Revision): Map<string, number> {
  return stableIds(rev.key_policies.map((k) => k.id));
}

/** The filter's port-name alphabet (Filter.addPort in ts/native/filter.ts). */
const PORT_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

/**
 * The filter port name of a vNIC: its id when the filter accepts that as a
 * name (ids are unique and stable, so the agent keeps the port across
 * revisions), else "vnic-" and 96 bits of its SHA-256, equally stable.
 */
export function portName(vnicId: string): string {
  return PORT_NAME.test(vnicId) ? vnicId : `vnic-${createHash('sha256').update(vnicId, 'utf8').digest('hex').slice(0, 24)}`;
}

// ------------------------------------------------------------------ errors

function invalid(rev: Revision, where: string, what: string): DneError {
  return new DneError(ErrorCodes.badArgument, `revision ${rev.revision}: ${where}: ${what}`);
}

// ------------------------------------------------------------ the revision

const ACTIONS: Record<RuleAction, Action> = { ENCRYPT: 'encrypt', INTEGRITY_ONLY: 'integrity', ALLOW_IN_CLEAR: 'allow' };
const NEEDED_TYPE = { ENCRYPT: 'ENCRYPTION_AND_INTEGRITY', INTEGRITY_ONLY: 'INTEGRITY_ONLY' } as const;
const IP_VERSIONS = { IPV4: 4, IPV6: 6, IPV4_IPV6: null } as const;
/** Protocols whose ports the filter sees (native FlowKey.has_ports): TCP, UDP, SCTP, UDP-Lite. */
const PORTED_PROTOCOLS = new Set([6, 17, 132, 136]);

interface Port {
  host: number;
  spec: Omit<HostPort, 'table'>;
  addresses: string[];
}

/** A resolved reference: prefixes with their text as the operator wrote it. */
interface Pfx {
  text: string;
  p: Prefix;
}

/** A resolved sources or destinations list. */
interface Side {
  any: boolean;
  /** What the other side's port sees as `remote`; never empty unless `any`. */
  prefixes: string[];
  /** Port -> the port's addresses that lie in this side (in the port's address order). */
  local: Map<number, string[]>;
}

interface PolicyKeys {
  txSpi: number;
  /** Mode of the sending key; differs from the policy's type only during the rollover after a type change. */
  txMode: 'gcm' | 'gmac' | null;
  hostKeys: HostKey[];
}

interface CompiledService {
  protocol: number | null;
  ipVersion: 4 | 6 | null;
  ports: Array<[number, number]>;
}

function nonEmpty(s: string | undefined | null): s is string {
  return typeof s === 'string' && s !== '';
}

class Translator {
  private readonly hostIndex = new Map<string, number>();
  private readonly workloadIndex = new Map<string, number>();
  private readonly groups = new Map<string, Group>();
  private readonly ipSets = new Map<string, Pfx[]>();
  private readonly policies = new Map<string, KeyPolicy>();
  private readonly policyIndex: Map<string, number>;
  private readonly ruleIdOf: Map<string, number>;
  private readonly ports: Port[] = [];
  private readonly portsOf: number[][] = [];
  private readonly workloadPfx: Pfx[][] = [];
  private readonly addressIndex: AddressIndex;
  private readonly tagIndex = new Map<string, number[]>();
  private readonly members = new Map<string, Set<number>>();
  private readonly groupPfx = new Map<string, Pfx[]>();
  private readonly sides = new Map<string, Side>();
  private readonly scopes = new Map<string, Set<number>>();
  private readonly keys = new Map<string, PolicyKeys>();
  private readonly defaultAction: 'allow' | 'drop';

  constructor(
    private readonly rev: Revision,
    keyStates: KeyState[],
  ) {
    const d = rev.config?.default_action;
    if (d !== 'ALLOW_IN_CLEAR' && d !== 'DROP') throw this.err('config.default_action', `must be ALLOW_IN_CLEAR or DROP, not ${JSON.stringify(d)}`);
    this.defaultAction = d === 'DROP' ? 'drop' : 'allow';
    rev.hosts.forEach((h, i) => this.unique(this.hostIndex, h.id, i, 'host'));
    const entries: Array<AddressEntry & { family: 4 | 6 }> = [];
    const vnicIds = new Set<string>();
    const portNames = new Set<string>();
    rev.workloads.forEach((w, wi) => {
      const where = `workload "${w.id}"`;
      this.unique(this.workloadIndex, w.id, wi, 'workload');
      const host = this.hostIndex.get(w.host_id);
      if (host === undefined) throw this.err(where, `host "${w.host_id}" does not exist`);
      this.portsOf.push([]);
      const pfx: Pfx[] = [];
      for (const v of w.vnics) {
        if (vnicIds.has(v.id)) throw this.err(where, `vNIC id "${v.id}" is used twice`);
        vnicIds.add(v.id);
        const name = portName(v.id);
        if (portNames.has(name)) throw this.err(`${where} vNIC "${v.id}"`, `port name "${name}" is already another vNIC's`);
        portNames.add(name);
        const addresses = [...v.ipv4, ...v.ipv6];
        const port = this.ports.length;
        addresses.forEach((a, index) => {
          const parsed = parseAddress(a);
          const want = index < v.ipv4.length ? 4 : 6;
          if (parsed === null || parsed.family !== want) throw this.err(`${where} vNIC "${v.id}"`, `${JSON.stringify(a)} is not an IPv${want} address`);
          entries.push({ family: parsed.family, value: parsed.value, port, index });
          pfx.push({ text: a, p: parsePrefix(a)! });
        });
        const spec: Omit<HostPort, 'table'> = {
          name,
          workload_id: w.id,
          vnic_id: v.id,
          workload_if: v.workload_if,
          network_if: v.network_if,
          addresses,
        };
        if (nonEmpty(v.netns)) spec.netns = v.netns;
        this.ports.push({ host, spec, addresses });
        this.portsOf[wi]!.push(port);
      }
      this.workloadPfx.push(pfx);
      for (const t of w.tags) {
        for (const k of [`s\0${t.scope}`, `t\0${t.tag}`, `p\0${t.scope}\0${t.tag}`]) {
          const l = this.tagIndex.get(k) ?? [];
          // Two tags of one scope list the workload once under that scope.
          if (l[l.length - 1] !== wi) l.push(wi);
          this.tagIndex.set(k, l);
        }
      }
    });
    this.addressIndex = new AddressIndex(entries);
    for (const s of rev.ip_sets) {
      if (this.ipSets.has(s.id)) throw this.err(`ip set "${s.id}"`, 'id is used twice');
      this.ipSets.set(s.id, s.ip_addresses.map((a) => this.prefix(a, `ip set "${s.id}"`)));
    }
    for (const g of rev.groups) {
      if (this.groups.has(g.id)) throw this.err(`group "${g.id}"`, 'id is used twice');
      this.groups.set(g.id, g);
    }
    for (const g of rev.groups) this.members.set(g.id, this.membership(g));
    for (const k of rev.key_policies) {
      if (this.policies.has(k.id)) throw this.err(`key policy "${k.id}"`, 'id is used twice');
      if (k.encrypt_type !== 'ENCRYPTION_AND_INTEGRITY' && k.encrypt_type !== 'INTEGRITY_ONLY') {
        throw this.err(`key policy "${k.id}"`, `encrypt_type ${JSON.stringify(k.encrypt_type)} is not ENCRYPTION_AND_INTEGRITY or INTEGRITY_ONLY`);
      }
      this.policies.set(k.id, k);
    }
    this.policyIndex = keyPolicyIndexes(rev);
    this.ruleIdOf = ruleIds(rev);
    this.checkReferences();
    this.indexKeys(keyStates);
  }

  private err(where: string, what: string): DneError {
    return invalid(this.rev, where, what);
  }

  private unique(m: Map<string, number>, id: string, i: number, what: string): void {
    if (m.has(id)) throw this.err(`${what} "${id}"`, 'id is used twice');
    m.set(id, i);
  }

  private prefix(text: string, where: string): Pfx {
    const p = parsePrefix(text);
    if (p === null) throw this.err(where, `${JSON.stringify(text)} is not an IPv4/IPv6 address or CIDR`);
    return { text, p };
  }

  /** DESIGN §2 group membership: any tag expression (all its given fields on one tag), or listed. */
  private membership(g: Group): Set<number> {
    const m = new Set<number>();
    g.expressions.forEach((e, i) => {
      const scope = nonEmpty(e.scope);
      const tag = nonEmpty(e.tag);
      // An expression with no field would match every workload (or none); neither is what anyone meant.
      if (!scope && !tag) throw this.err(`group "${g.id}" expressions[${i}]`, 'needs a scope, a tag or both');
      const key = scope && tag ? `p\0${e.scope}\0${e.tag}` : scope ? `s\0${e.scope}` : `t\0${e.tag}`;
      for (const w of this.tagIndex.get(key) ?? []) m.add(w);
    });
    g.workload_ids.forEach((id, i) => {
      const w = this.workloadIndex.get(id);
      if (w === undefined) throw this.err(`group "${g.id}" workload_ids[${i}]`, `workload "${id}" does not exist`);
      m.add(w);
    });
    g.ip_set_ids.forEach((id, i) => {
      if (!this.ipSets.has(id)) throw this.err(`group "${g.id}" ip_set_ids[${i}]`, `IP set "${id}" does not exist`);
    });
    return m;
  }

  /**
   * Every reference in every section and rule must resolve, disabled ones
   * included: a dangling reference means the manager's referential checks
   * failed, and translating around it would publish something nobody wrote.
   */
  private checkReferences(): void {
    const sectionIds = new Set<string>();
    const ruleIdsSeen = new Set<string>();
    for (const s of this.rev.sections) {
      if (sectionIds.has(s.id)) throw this.err(`section "${s.id}"`, 'id is used twice');
      sectionIds.add(s.id);
      const sw = `section "${s.id}"`;
      if (nonEmpty(s.key_policy_identifier) && !this.policies.has(s.key_policy_identifier)) {
        throw this.err(sw, `key policy "${s.key_policy_identifier}" does not exist`);
      }
      this.checkRefs(s.applied_tos, `${sw} applied_tos`, true);
      for (const r of s.rules) {
        const rw = `${sw} rule "${r.id}"`;
        if (ruleIdsSeen.has(r.id)) throw this.err(rw, 'rule id is used twice');
        ruleIdsSeen.add(r.id);
        if (nonEmpty(r.key_policy_identifier) && !this.policies.has(r.key_policy_identifier)) {
          throw this.err(rw, `key policy "${r.key_policy_identifier}" does not exist`);
        }
        this.checkRefs(r.sources, `${rw} sources`, false);
        this.checkRefs(r.destinations, `${rw} destinations`, false);
        this.checkRefs(r.applied_tos, `${rw} applied_tos`, true);
      }
    }
  }

  private checkRefs(refs: ResourceReference[], where: string, appliedTo: boolean): void {
    refs.forEach((ref, i) => {
      const w = `${where}[${i}]`;
      const id = ref.target_id;
      switch (ref.target_type) {
        case 'NSGroup':
          if (!this.groups.has(id)) throw this.err(w, `NSGroup "${id}" does not exist`);
          return;
        case 'Workload':
          if (!this.workloadIndex.has(id)) throw this.err(w, `workload "${id}" does not exist`);
          return;
        case 'IPSet':
          if (appliedTo) break;
          if (!this.ipSets.has(id)) throw this.err(w, `IP set "${id}" does not exist`);
          return;
        case 'IPAddress':
          if (appliedTo) break;
          this.prefix(id, w);
          return;
      }
      throw this.err(w, appliedTo ? `an applied-to must be an NSGroup or a Workload, not ${JSON.stringify(ref.target_type)}` : `unknown target_type ${JSON.stringify(ref.target_type)}`);
    });
  }

  /** Validates the rollover state of the policies in this revision and picks each one's sending SPI. */
  private indexKeys(states: KeyState[]): void {
    for (const ks of states) {
      const kp = this.policies.get(ks.keyPolicyId);
      // The rollover state can still hold a policy this revision deleted; it concerns no host.
      if (kp === undefined) continue;
      const where = `key state of policy "${kp.id}"`;
      if (this.keys.has(kp.id)) throw this.err(where, 'given twice');
      const policyMode = kp.encrypt_type === 'ENCRYPTION_AND_INTEGRITY' ? 'gcm' : 'gmac';
      let txSpi = 0;
      let txMode: 'gcm' | 'gmac' | null = null;
      const hostKeys: HostKey[] = [];
      for (const k of ks.keys) {
        if (k.mode !== undefined && k.mode !== 'gcm' && k.mode !== 'gmac') throw this.err(`${where} key "${k.keyId}"`, `unknown mode ${JSON.stringify(k.mode)}`);
        const mode = k.mode ?? policyMode;
        const spi = mode === 'gcm' ? k.spiGcm : k.spiGmac;
        if (!['receive', 'active', 'retiring', 'revoked'].includes(k.state)) throw this.err(`${where} key "${k.keyId}"`, `unknown state ${JSON.stringify(k.state)}`);
        if (k.state === 'revoked') continue;
        // SPIs 0-255 are reserved (RFC 4303 §2.1); the filter refuses them.
        if (!Number.isInteger(spi) || spi < 256 || spi > 0xffffffff) throw this.err(`${where} key "${k.keyId}"`, `${mode} SPI ${spi} is not in 256..4294967295`);
        if (k.state === 'active') {
          // DESIGN §5: one sending key per policy at a time; two would make the senders disagree.
          if (txSpi !== 0) throw this.err(where, 'has more than one active key');
          txSpi = spi;
          txMode = mode;
        }
        hostKeys.push({
          keyId: k.keyId,
          keyPolicyId: kp.id,
          keyPolicyIndex: this.policyIndex.get(kp.id)!,
          spi,
          mode,
          state: k.state,
          notBefore: k.notBefore,
          notAfter: k.notAfter,
          replayWindow: kp.replay_window,
        });
      }
      this.keys.set(kp.id, { txSpi, txMode, hostKeys });
    }
  }

  // ------------------------------------------------------------ resolution

  private groupPrefixes(id: string): Pfx[] {
    let p = this.groupPfx.get(id);
    if (p === undefined) {
      const g = this.groups.get(id)!;
      p = [];
      for (const w of [...this.members.get(id)!].sort((a, b) => a - b)) p.push(...this.workloadPfx[w]!);
      for (const s of g.ip_set_ids) p.push(...this.ipSets.get(s)!);
      this.groupPfx.set(id, p);
    }
    return p;
  }

  private refPrefixes(ref: ResourceReference): Pfx[] {
    switch (ref.target_type) {
      case 'NSGroup':
        return this.groupPrefixes(ref.target_id);
      case 'IPSet':
        return this.ipSets.get(ref.target_id)!;
      case 'Workload':
        return this.workloadPfx[this.workloadIndex.get(ref.target_id)!]!;
      case 'IPAddress':
        return [{ text: ref.target_id, p: parsePrefix(ref.target_id)! }];
    }
  }

  /** Sources or destinations as prefixes, plus which port addresses lie inside (references were checked). */
  private side(refs: ResourceReference[]): Side {
    const key = refs.map((r) => `${r.target_type}\0${r.target_id}`).join('\u0001');
    let s = this.sides.get(key);
    if (s !== undefined) return s;
    s = { any: refs.length === 0, prefixes: [], local: new Map() };
    const seen = new Set<string>();
    const covered = new Map<number, Set<number>>();
    for (const ref of refs) {
      for (const { text, p } of this.refPrefixes(ref)) {
        const k = prefixKey(p);
        if (seen.has(k)) continue;
        seen.add(k);
        s.prefixes.push(text);
        for (const e of this.addressIndex.covered(p)) {
          const c = covered.get(e.port) ?? new Set<number>();
          c.add(e.index);
          covered.set(e.port, c);
        }
      }
    }
    for (const [port, idx] of covered) s.local.set(port, this.ports[port]!.addresses.filter((_, i) => idx.has(i)));
    this.sides.set(key, s);
    return s;
  }

  /** Explicit applied-to: the workloads named, directly or as (tag or listed) members of a group. */
  private scope(refs: ResourceReference[]): Set<number> {
    const key = refs.map((r) => `${r.target_type}\0${r.target_id}`).join('\u0001');
    let s = this.scopes.get(key);
    if (s === undefined) {
      s = new Set();
      for (const r of refs) {
        if (r.target_type === 'NSGroup') for (const w of this.members.get(r.target_id)!) s.add(w);
        else s.add(this.workloadIndex.get(r.target_id)!);
      }
      this.scopes.set(key, s);
    }
    return s;
  }

  /** DESIGN §2: section's key policy, else the rule's, else the default of the type the action needs. */
  private keyPolicy(s: Section, r: Rule, where: string): KeyPolicy | null {
    if (r.action === 'ALLOW_IN_CLEAR') return null;
    const need = NEEDED_TYPE[r.action];
    const id = nonEmpty(s.key_policy_identifier) ? s.key_policy_identifier : r.key_policy_identifier;
    if (nonEmpty(id)) {
      const kp = this.policies.get(id)!;
      if (kp.encrypt_type !== need) {
        const from = id === s.key_policy_identifier ? `section "${s.id}"'s` : 'its';
        throw this.err(where, `${r.action} needs an ${need} key policy, but ${from} key policy "${id}" is ${kp.encrypt_type}`);
      }
      return kp;
    }
    // BUM_TRAFFIC policies are for broadcast/multicast; unicast rules default to a REGULAR one.
    const defaults = this.rev.key_policies.filter((k) => k.is_default && k.encrypt_type === need && k.type === 'REGULAR');
    if (defaults.length !== 1) {
      throw this.err(
        where,
        defaults.length === 0
          ? `${r.action} names no key policy and there is no default REGULAR ${need} key policy`
          : `${r.action} names no key policy and the default is ambiguous: ${defaults.map((k) => `"${k.id}"`).join(', ')}`,
      );
    }
    return defaults[0]!;
  }

  /** One entry per distinct (protocol, IP version); impossible combinations dropped. */
  private services(r: Rule, where: string): CompiledService[] {
    const ruleVersion = IP_VERSIONS[r.ip_protocol];
    if (ruleVersion === undefined) throw this.err(where, `ip_protocol ${JSON.stringify(r.ip_protocol)} is not IPV4, IPV6 or IPV4_IPV6`);
    if (r.services.length === 0) return [{ protocol: null, ipVersion: ruleVersion, ports: [] }];
    const merged = new Map<string, { protocol: number; ipVersion: 4 | 6 | null; ports: Array<[number, number]> | null }>();
    r.services.forEach((svc, i) => {
      const w = `${where} services[${i}]`;
      const { protocol, version } = this.protocolOf(svc, w);
      // ICMPv4 in an IPV6-only rule (or the reverse) can never match: no entry.
      if (ruleVersion !== null && version !== null && ruleVersion !== version) return;
      const ipVersion = version ?? ruleVersion;
      const ports = this.servicePorts(svc, protocol, w);
      const k = `${protocol}/${ipVersion}`;
      const m = merged.get(k);
      if (m === undefined) merged.set(k, { protocol, ipVersion, ports });
      else m.ports = m.ports === null || ports === null ? null : [...m.ports, ...ports];
    });
    return [...merged.values()].map((m) => ({ protocol: m.protocol, ipVersion: m.ipVersion, ports: m.ports === null ? [] : mergeRanges(m.ports) }));
  }

  private protocolOf(svc: Service, where: string): { protocol: number; version: 4 | 6 | null } {
    switch (svc.protocol) {
      case 'TCP':
        return { protocol: 6, version: null };
      case 'UDP':
        return { protocol: 17, version: null };
      case 'ICMPv4':
        return { protocol: 1, version: 4 };
      case 'ICMPv6':
        return { protocol: 58, version: 6 };
    }
    if (Number.isInteger(svc.protocol) && (svc.protocol as number) >= 0 && (svc.protocol as number) <= 255) {
      return { protocol: svc.protocol as number, version: null };
    }
    throw this.err(where, `protocol ${JSON.stringify(svc.protocol)} is not TCP, UDP, ICMPv4, ICMPv6 or 0-255`);
  }

  /** Port ranges of one service; null: any port. */
  private servicePorts(svc: Service, protocol: number, where: string): Array<[number, number]> | null {
    const dp = svc.destination_ports ?? [];
    if (dp.length === 0) return null;
    // The filter sees ports only for these protocols; ports on ICMP would silently match nothing.
    if (!PORTED_PROTOCOLS.has(protocol)) throw this.err(where, `protocol ${protocol} has no ports, but destination_ports is set`);
    return dp.map((text) => {
      const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
      const lo = m ? Number(m[1]) : NaN;
      const hi = m ? Number(m[2] ?? m[1]) : NaN;
      if (!(lo <= hi && hi <= 65535)) throw this.err(where, `destination port ${JSON.stringify(text)} is not "N" or "LO-HI" within 0-65535`);
      return [lo, hi];
    });
  }

  // ------------------------------------------------------------- compiling

  run(): Map<string, HostConfig> {
    const tables: RuleSpec[][] = this.ports.map(() => []);
    const hostPolicies: Array<Set<string>> = this.rev.hosts.map(() => new Set());
    const hostRules: HostRuleName[][] = this.rev.hosts.map(() => []);
    for (const s of this.rev.sections) {
      if (s.disabled) continue;
      for (const r of s.rules) {
        if (r.disabled) continue;
        const hosts = this.compile(s, r, tables, hostPolicies);
        const name: HostRuleName = { ruleId: this.ruleIdOf.get(r.id)!, id: r.id, sectionId: s.id, displayName: r.display_name };
        for (const h of hosts) hostRules[h]!.push(name);
      }
    }
    const policyNames = new Map(this.rev.key_policies.map((k) => [k.id, k.display_name]));
    const out = new Map<string, HostConfig>();
    const hostPorts: HostPort[][] = this.rev.hosts.map(() => []);
    this.ports.forEach((p, i) => {
      hostPorts[p.host]!.push({ ...p.spec, table: { addresses: p.addresses, defaultAction: this.defaultAction, rules: tables[i]! } });
    });
    this.rev.hosts.forEach((h, i) => {
      const keys: HostKey[] = [];
      for (const id of [...hostPolicies[i]!].sort()) keys.push(...(this.keys.get(id)?.hostKeys ?? []));
      const keyPolicies = [...hostPolicies[i]!].sort().map((id) => ({ index: this.policyIndex.get(id)!, id, displayName: policyNames.get(id) ?? id }));
      out.set(h.id, { hostId: h.id, revision: this.rev.revision, defaultAction: this.defaultAction, ports: hostPorts[i]!, keys, rules: hostRules[i]!, keyPolicies });
    });
    return out;
  }

  /** Adds the rule's entries to the tables of the ports in its scope; returns the hosts (indexes) that got any. */
  private compile(s: Section, r: Rule, tables: RuleSpec[][], hostPolicies: Array<Set<string>>): Set<number> {
    const hosts = new Set<number>();
    const where = `section "${s.id}" rule "${r.id}"`;
    const ruleAction = ACTIONS[r.action];
    if (ruleAction === undefined) throw this.err(where, `action ${JSON.stringify(r.action)} is not ENCRYPT, INTEGRITY_ONLY or ALLOW_IN_CLEAR`);
    const kp = this.keyPolicy(s, r, where);
    const services = this.services(r, where);
    if (services.length === 0) return hosts;
    const src = this.side(r.sources);
    const dst = this.side(r.destinations);
    // A named side that resolves to no address (an empty group) matches
    // nothing. It must not reach the filter as [], which there means "any".
    if ((!src.any && src.prefixes.length === 0) || (!dst.any && dst.prefixes.length === 0)) return hosts;

    const applied = s.applied_tos.length > 0 ? s.applied_tos : r.applied_tos;
    let candidates: Iterable<number>;
    if (applied.length > 0) {
      candidates = [...this.scope(applied)].flatMap((w) => this.portsOf[w]!);
    } else if (src.any || dst.any) {
      candidates = this.ports.keys();
    } else {
      // Default applied-to (DESIGN §2: the source and destination workloads):
      // exactly the ports with an address on either side.
      candidates = new Set([...src.local.keys(), ...dst.local.keys()]);
    }

    const ruleId = this.ruleIdOf.get(r.id)!;
    const keyPolicy = kp === null ? 0 : this.policyIndex.get(kp.id)!;
    const pk = kp === null ? undefined : this.keys.get(kp.id);
    const txSpi = pk?.txSpi ?? 0;
    // While a policy rolls over to a key of its new type, senders keep the
    // current key, in its mode; the filter needs the rule's action to match
    // the SA's mode (else it drops), so the rule keeps the old action until
    // the new key is active (the barrier, as for an algorithm change).
    const action = pk?.txMode ? (pk.txMode === 'gcm' ? ACTIONS.ENCRYPT : ACTIONS.INTEGRITY_ONLY) : ruleAction;
    const srcRemote = src.any ? [] : src.prefixes;
    const dstRemote = dst.any ? [] : dst.prefixes;
    for (const port of candidates) {
      const p = this.ports[port]!;
      const asSource = src.any ? p.addresses : src.local.get(port);
      const asDestination = dst.any ? p.addresses : dst.local.get(port);
      if (asSource === undefined && asDestination === undefined) continue;
      const table = tables[port]!;
      for (const [role, local, remote] of [
        ['source', asSource, dstRemote],
        ['destination', asDestination, srcRemote],
      ] as const) {
        if (local === undefined) continue;
        for (const svc of services) {
          table.push({ ruleId, role, ipVersion: svc.ipVersion, protocol: svc.protocol, local, remote, ports: svc.ports, action, keyPolicy, txSpi });
        }
      }
      hosts.add(p.host);
      if (kp !== null) hostPolicies[p.host]!.add(kp.id);
    }
    return hosts;
  }
}

function mergeRanges(r: Array<[number, number]>): Array<[number, number]> {
  const sorted = [...r].sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}

/**
 * Translates a published revision into one HostConfig per host in
 * `rev.hosts` (hosts without workloads get an empty one, so their agents
 * clear stale tables and keys). Throws a DneError (ERR_DNE_BAD_ARGUMENT)
 * naming the object and field for anything it cannot translate faithfully.
 *
 * The result shares arrays between ports (prefix lists, local address
 * lists, HostKey objects): treat it as immutable.
 */
export function translate(rev: Revision, keys: KeyState[]): Map<string, HostConfig> {
  return new Translator(rev, keys).run();
}
