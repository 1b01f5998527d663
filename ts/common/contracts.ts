/**
 * The wire contracts between dne's components (DESIGN §1, §6): one place that
 * names every cross-component route, its default port, and the JSON shapes
 * that cross. Components own their own TypeBox schemas for validation; these
 * TS types are what both ends agree on, and a test in each component checks
 * that its schema's Static type is assignable to the type here.
 *
 *   admin ──REST──▶ manager ◀──inventory, stats── agent
 *                     │ feed (long-poll)              ▲ │ release (grant)
 *                     ▼                               │ ▼
 *                 controller ──config (long-poll)──▶ agent ──▶ key manager
 *                     │ create/rotate/revoke keys          ▲
 *                     └────────────────────────────────────┘
 *
 * Every connection is HTTPS with mutual TLS; the caller's role and name come
 * from its certificate's dne:// URI SAN (ts/common/identity.ts), never from
 * the request. A host may only read and write its own /hosts/{hostId}.
 */
import type { Revision, Tag, Vnic } from './policy-model';
import type { HostConfig } from '../controller/translate';

export const DEFAULT_PORTS = {
  keymanager: 8443,
  manager: 8444,
  controller: 8445,
  /** The agent's local endpoint (127.0.0.1 only). */
  agent: 9477,
} as const;

/** The manager's public REST prefix (NSX-T's). */
export const MANAGER_API = '/api/v1/network-encryption';

// ---------------------------------------------------- manager -> controller

/**
 * `GET {MANAGER_API}/internal/controller-feed?after=SEQ&wait=SECONDS`
 * (role controller). Returns the events with seq > after, oldest first, at
 * most `limit` (default 16); when there are none it waits up to `wait`
 * seconds (0-60, default 25) for one, then answers with `events: []`. The
 * controller persists the last seq it has fully handled and resumes from it,
 * so nothing is skipped across a restart of either side.
 */
export type FeedEvent =
  | { seq: number; at: string; type: 'revision'; revision: Revision }
  /** `POST .../key-policies/{id}?action=rotate`: start a rollover now. */
  | { seq: number; at: string; type: 'rotate'; key_policy_id: string; requested_by: string }
  /** `POST .../key-policies/{id}?action=revoke`: withdraw the current key(s) everywhere, now. */
  | { seq: number; at: string; type: 'revoke'; key_policy_id: string; requested_by: string; reason?: string };

export interface FeedResponse {
  events: FeedEvent[];
  /** Highest seq the manager has; > last event's seq when `limit` cut the list. */
  latest_seq: number;
}

// ---------------------------------------------------- controller -> agent

/**
 * `GET /v1/hosts/{hostId}/config?after=VERSION&wait=SECONDS` (role host,
 * certificate name == hostId). Versions are per host, start at 1, and grow by
 * one each time that host's HostConfig changes (a publish that changes
 * nothing for a host sends that host nothing). Returns every version >
 * `after` still held (the controller keeps the last 64 per host), oldest
 * first; when none, waits up to `wait` seconds (0-60, default 25) and answers
 * with `versions: []`. When `after` is older than what is held, or newer than
 * the controller's latest (it lost state), the answer holds only the latest
 * version and `reset: true`: the agent applies it as a full replacement
 * (every version is a full HostConfig anyway).
 */
export interface HostConfigVersion {
  version: number;
  /** The manager revision it was translated from. */
  revision: number;
  created_at: string;
  config: HostConfig;
}

export interface HostConfigResponse {
  host_id: string;
  versions: HostConfigVersion[];
  reset?: boolean;
  /**
   * Ed25519 grant (ts/common/grant.ts) signed at response time for this host
   * and exactly the key IDs of the latest version's `config.keys`; absent when
   * that list is empty. Short-lived (default 300 s): an agent needing keys
   * later asks `GET /v1/hosts/{hostId}/grant`.
   */
  grant?: string;
  /** Base URLs of the key managers the agent fetches keys from (POST /v1/release). */
  key_managers: string[];
}

/** `GET /v1/hosts/{hostId}/grant` (role host): a fresh grant for the host's current keys. */
export interface GrantResponse {
  grant: string | null;
  key_ids: string[];
  expires_at: string | null;
}

/**
 * `POST /v1/hosts/{hostId}/ack` (role host) → 204. The agent sends it after
 * the version's tables are swapped in and every listed key is installed in
 * the dataplane (receive side at least). The rollover barrier (DESIGN §5)
 * counts a host as ready for a key when an ack lists that key ID.
 */
export interface AckBody {
  version: number;
  installed_key_ids: string[];
}

// ---------------------------------------------------- agent -> manager

/**
 * `PUT {MANAGER_API}/agent/hosts/{hostId}/inventory` (role host) → 200 with
 * the stored host. The agent's report replaces the host's reported workloads
 * (tags the agent reports are kept apart, as `reported_tags`, from tags an
 * administrator adds; only the administrator's make group members, unless
 * the manager trusts the tag's scope). Workloads of other hosts, and
 * addresses another workload holds, are refused (409).
 */
export interface InventoryReport {
  display_name: string;
  workloads: Array<{ id: string; display_name: string; vnics: Vnic[]; tags: Tag[] }>;
}

/**
 * `POST {MANAGER_API}/agent/hosts/{hostId}/stats` (role host) → 204.
 * Counters are cumulative since the agent process started (`boot_id`
 * changes at every start), so a lost report loses nothing; the manager keeps
 * the latest report per (host, boot_id) and sums.
 */
export interface StatsReport {
  boot_id: string;
  at: string;
  config_version: number;
  revision: number;
  rules: Array<{ rule_id: string; packets_in: number; bytes_in: number; packets_out: number; bytes_out: number }>;
  key_policies: Array<{
    key_policy_id: string;
    packets_encrypted: number;
    bytes_encrypted: number;
    packets_decrypted: number;
    bytes_decrypted: number;
    packets_dropped: number;
    /** Drop reason names as in ts/native/codes.ts (replay, icv_failure, ...). */
    dropped_by_reason: Record<string, number>;
  }>;
  /** Host-wide drops by reason (no SA to attribute them to). */
  drops: Record<string, number>;
}
