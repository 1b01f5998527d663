/**
 * The policy model shared by the manager (which edits and publishes it), the
 * controller (which translates a published revision into per-host
 * configuration) and the agent (which applies a host configuration).
 *
 * Field names follow NSX-T's network-encryption API (display_name, sources,
 * destinations, services, applied_tos, ip_protocol, key_policy_identifier,
 * action, logged, rule_tag, disabled, encrypt_type, encrypt_algorithm,
 * rekey_frequency, is_default) so operators coming from NSX DNE recognise
 * them; see DESIGN §2.
 */

export type RuleAction = 'ENCRYPT' | 'INTEGRITY_ONLY' | 'ALLOW_IN_CLEAR';
export type EncryptType = 'ENCRYPTION_AND_INTEGRITY' | 'INTEGRITY_ONLY';
export type EncryptAlgorithm = 'AES_GCM_128' | 'AES_GCM_256';
export type IpProtocol = 'IPV4' | 'IPV6' | 'IPV4_IPV6';
/** What happens to IP traffic that no rule matches (NSX: allow in clear). */
export type DefaultAction = 'ALLOW_IN_CLEAR' | 'DROP';

export interface Tag {
  scope: string;
  tag: string;
}

/** A reference to another object, as NSX's ResourceReference. */
export interface ResourceReference {
  target_type: 'NSGroup' | 'IPSet' | 'Workload' | 'IPAddress';
  /** Object id, or for IPAddress an address or CIDR. */
  target_id: string;
  target_display_name?: string;
}

export interface Vnic {
  id: string;
  mac: string;
  ipv4: string[];
  ipv6: string[];
  /** Host interface on the workload side (the VM's tap, the container's veth end). */
  workload_if: string;
  /** Host interface on the network side (towards the bridge / overlay). */
  network_if: string;
  /** Network namespace of both interfaces, if not the agent's own. */
  netns?: string;
}

export interface Workload {
  id: string;
  display_name: string;
  host_id: string;
  vnics: Vnic[];
  tags: Tag[];
}

export interface Host {
  id: string;
  display_name: string;
}

/** One membership criterion: every given field must match one of the workload's tags. */
export interface TagExpression {
  scope?: string;
  tag?: string;
}

export interface Group {
  id: string;
  display_name: string;
  /** A workload is a member if it matches any expression, ... */
  expressions: TagExpression[];
  /** ... or is listed, ... */
  workload_ids: string[];
  /** ... and the addresses of these IP sets are members too. */
  ip_set_ids: string[];
}

export interface IpSet {
  id: string;
  display_name: string;
  ip_addresses: string[];
}

export interface KeyPolicy {
  id: string;
  display_name: string;
  encrypt_type: EncryptType;
  encrypt_algorithm: EncryptAlgorithm;
  /** Rotation period in seconds (0: manual only). */
  rekey_frequency: number;
  /** Key lifetime in seconds (notAfter - notBefore). */
  lifetime: number;
  type: 'REGULAR' | 'BUM_TRAFFIC';
  is_default: boolean;
  /** Anti-replay window in packets (multiple of 64). */
  replay_window: number;
}

export interface Service {
  /** 'TCP', 'UDP', 'ICMPv4', 'ICMPv6' or an IP protocol number. */
  protocol: 'TCP' | 'UDP' | 'ICMPv4' | 'ICMPv6' | number;
  /** "80", "8000-8080"; empty: any port. */
  destination_ports: string[];
}

export interface Rule {
  id: string;
  display_name: string;
  /** Empty: any. */
  sources: ResourceReference[];
  destinations: ResourceReference[];
  /** Empty: any protocol and port. */
  services: Service[];
  ip_protocol: IpProtocol;
  /** Enforcement points; empty: the source and destination workloads. */
  applied_tos: ResourceReference[];
  key_policy_identifier?: string;
  action: RuleAction;
  logged: boolean;
  rule_tag?: string;
  disabled: boolean;
  notes?: string;
}

export interface Section {
  id: string;
  display_name: string;
  disabled: boolean;
  /** Overrides the rules' key policy when set. */
  key_policy_identifier?: string;
  /** Overrides the rules' applied_tos when non-empty. */
  applied_tos: ResourceReference[];
  rules: Rule[];
}

export interface GlobalConfig {
  /** Seconds an old key stays receive-only after a rotation. */
  rekey_margin: number;
  default_action: DefaultAction;
}

/** An immutable, numbered, published revision: what the controllers translate. */
export interface Revision {
  revision: number;
  published_at: string;
  config: GlobalConfig;
  hosts: Host[];
  workloads: Workload[];
  groups: Group[];
  ip_sets: IpSet[];
  key_policies: KeyPolicy[];
  /** In order: first match over sections, then rules. */
  sections: Section[];
}
