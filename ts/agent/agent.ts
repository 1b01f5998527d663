/**
 * The agent (issue #7; DESIGN §1, §5-§7): owns this host's filter, follows
 * the controller's host config stream, fetches keys with the controller's
 * grant, reports inventory and statistics to the manager, writes security
 * events to syslog, and answers the local endpoint.
 *
 *   controller --config--> ConfigStream -> handleResponse -> plan/apply (reconciler) -> Dataplane
 *                                               |  keys missing? KeyFetcher.release (grant) |
 *                                               +-> ack (version, installed key IDs)       v
 *   timers: keyCheck (expiry in use, sender low water, ICV/replay bursts), stats report, inventory
 *
 * Every dataplane mutation goes through one queue (`serial`), so a sender-ID
 * renewal never interleaves with a config apply. Nothing is written to disk:
 * keys live in the filter's locked memory and nowhere else; a restarted agent
 * fetches them again with fresh sender IDs (DESIGN §3).
 */
import { randomUUID } from 'node:crypto';
import * as net from 'node:net';
import type { Logger } from 'pino';
import type { HostConfigResponse, InventoryReport, StatsReport } from '../common/contracts';
import { MANAGER_API } from '../common/contracts';
import { ethFrame, ipPacket } from '../common/ip-packet';
import type { MtlsClient } from '../common/mtls-client';
import type { HostConfig } from '../controller/translate';
import type { StatusName } from '../native/codes';
import { STATUS_NAMES } from '../native/codes';
import { classifyNative, RuleSpec } from '../native/filter';
import type { AgentConfig, AgentVnic } from './config';
import { ConfigStream } from './controller-client';
import type { Dataplane } from './dataplane';
import type { KeyMaterial } from './reconciler';
import { apply, DataplaneState, InstalledSa, plan } from './reconciler';
import { explainQueryProblem, PROTOCOLS } from './explain-query';
import type { SecurityLog } from './syslog';
import { ESP_MAX_OVERHEAD } from '../native/filter';

/** Where keys come from (KeyFetcher in production; tests may give another). */
export interface KeySource {
  offer(grant: string | undefined, keyManagers: string[] | undefined): void;
  release(keyIds: string[]): Promise<Map<string, KeyMaterial>>;
  readonly keyManagerUrls: string[];
  close(): void;
}

export interface AgentDeps {
  dataplane: Dataplane;
  keys: KeySource;
  /** null: no controller (tests drive handleResponse directly). */
  controller: MtlsClient | null;
  manager: MtlsClient | null;
  syslog: SecurityLog;
  log: Logger;
  now?: () => number;
}

interface Totals {
  packets_encrypted: number;
  bytes_encrypted: number;
  packets_decrypted: number;
  bytes_decrypted: number;
  dropped_by_reason: Record<string, number>;
}

function num(v: bigint): number {
  return Number(v);
}

function nonzeroDrops(d: Record<StatusName, bigint>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of STATUS_NAMES) if (n !== 'ok' && d[n] > 0n) out[n] = num(d[n]);
  return out;
}

export interface ExplainQuery {
  src: string;
  dst: string;
  protocol: string;
  sport?: number;
  dport?: number;
  port?: string;
}

export class Agent {
  readonly state = new DataplaneState();
  readonly reachable = { controller: false, keymanager: false, manager: false };
  readonly lastError: { controller: string | null; keymanager: string | null; manager: string | null } = { controller: null, keymanager: null, manager: null };
  readonly counters = { applies: 0, applyFailures: 0, keyFetchFailures: 0, senderRenewals: 0, statsReports: 0 };
  readonly bootId = randomUUID();
  readonly startedAt: number;
  version = 0;
  revision = 0;
  appliedAt: number | null = null;
  ready = false;
  readonly localVnics = new Map<string, AgentVnic>();
  private serialTail: Promise<unknown> = Promise.resolve();
  private pendingAck: { version: number; installed_key_ids: string[] } | null = null;
  private stream: ConfigStream | null = null;
  private timers: NodeJS.Timeout[] = [];
  private inventorySent = false;
  private lastDrops: Record<string, bigint> = {};
  /** Cumulative counters of SAs and rules that are gone, so reports stay cumulative across rotations (contracts.ts StatsReport). */
  private readonly retiredPolicy = new Map<string, Totals>();
  private readonly retiredRules = new Map<string, { packets_in: number; bytes_in: number; packets_out: number; bytes_out: number }>();
  private readonly now: () => number;

  constructor(
    readonly cfg: AgentConfig,
    readonly deps: AgentDeps,
  ) {
    this.now = deps.now ?? Date.now;
    this.startedAt = this.now();
    for (const w of cfg.workloads) for (const v of w.vnics) this.localVnics.set(v.id, v);
  }

  get dataplane(): Dataplane {
    return this.deps.dataplane;
  }

  get log(): Logger {
    return this.deps.log;
  }

  get syslog(): SecurityLog {
    return this.deps.syslog;
  }

  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.serialTail.then(fn, fn);
    this.serialTail = run.catch(() => undefined);
    return run;
  }

  setReachable(peer: 'controller' | 'keymanager' | 'manager', ok: boolean, why?: string): void {
    if (this.reachable[peer] !== ok) this.log.info({ peer, reachable: ok, why }, ok ? `${peer} reachable` : `${peer} unreachable`);
    this.reachable[peer] = ok;
    this.lastError[peer] = ok ? null : (why ?? null);
  }

  // ------------------------------------------------------------ config

  /**
   * Applies the last version of a config response (every version is a full
   * HostConfig). Returns the version now in the dataplane; throws when it
   * cannot be applied yet (the last good one keeps running).
   */
  handleResponse(r: HostConfigResponse): Promise<number> {
    return this.serial(async () => {
      this.deps.keys.offer(r.grant, r.key_managers);
      const latest = r.versions[r.versions.length - 1];
      if (!latest) return this.version;
      if (latest.version === this.version && !r.reset) return this.version;
      try {
        await this.applyConfig(latest.config, latest.version, latest.revision);
      } catch (err) {
        this.counters.applyFailures++;
        throw err;
      }
      await this.ack();
      return this.version;
    });
  }

  private async applyConfig(config: HostConfig, version: number, revision: number): Promise<void> {
    if (config.hostId !== this.cfg.hostId) throw new Error(`config version ${version} is for host "${config.hostId}", not this host`);
    const p = plan(config, this.state, this.localVnics);
    let material = new Map<string, KeyMaterial>();
    if (p.keysNeeded.length) {
      try {
        material = await this.deps.keys.release(p.keysNeeded);
      } catch (err) {
        this.counters.keyFetchFailures++;
        const e = err as Error & { notReleasable?: boolean };
        if (e.notReleasable) {
          this.syslog.emit({ kind: 'key-fetch-refused', severity: 'warning', message: `key manager refused a key of config version ${version}: ${e.message}`, data: { version } });
        }
        throw new Error(`config version ${version}: keys not available: ${e.message}`);
      }
    }
    const before = this.dataplane.ruleStats();
    const oldNames = this.ruleNames();
    const res = apply(this.dataplane, this.state, config, p, material, {
      lowWater: this.cfg.filter.senderLowWater ? BigInt(this.cfg.filter.senderLowWater) : undefined,
      now: this.now(),
      beforeRemoveSa: (sa) => this.retireSaCounters(sa),
    });
    const after = this.dataplane.ruleStats();
    for (const [id, s] of before) {
      if (after.has(id)) continue;
      const name = oldNames.get(id) ?? String(id);
      const t = this.retiredRules.get(name) ?? { packets_in: 0, bytes_in: 0, packets_out: 0, bytes_out: 0 };
      t.packets_in += num(s.inPackets);
      t.bytes_in += num(s.inBytes);
      t.packets_out += num(s.outPackets);
      t.bytes_out += num(s.outBytes);
      this.retiredRules.set(name, t);
    }
    for (const sa of res.removedUnretired) {
      // The controller removes a key before its retiring phase only when it is revoked (DESIGN §5).
      this.syslog.emit({
        kind: 'key-revoked',
        severity: 'notice',
        message: `key ${sa.keyId} (key policy ${sa.keyPolicyId}, SPI ${sa.spi}) was withdrawn while ${sa.state}: removed from the dataplane`,
        data: { key_id: sa.keyId, key_policy: sa.keyPolicyId, spi: sa.spi, state: sa.state },
      });
    }
    this.version = version;
    this.revision = revision;
    this.appliedAt = this.now();
    this.ready = true;
    this.counters.applies++;
    this.pendingAck = { version, installed_key_ids: [...new Set([...this.state.sas.values()].map((s) => s.keyId))].sort() };
    this.log.info(
      { version, revision, ports: this.state.ports.size, sas: this.state.sas.size, installed: res.installed, removed: res.removed.map((s) => s.keyId), generation: String(res.generation) },
      'host config applied',
    );
  }

  private retireSaCounters(sa: InstalledSa): void {
    const s = this.dataplane.saStats(sa.spi);
    if (!s) return;
    const t = this.retiredPolicy.get(sa.keyPolicyId) ?? { packets_encrypted: 0, bytes_encrypted: 0, packets_decrypted: 0, bytes_decrypted: 0, dropped_by_reason: {} };
    t.packets_encrypted += num(s.sealedPackets);
    t.bytes_encrypted += num(s.sealedBytes);
    t.packets_decrypted += num(s.openedPackets);
    t.bytes_decrypted += num(s.openedBytes);
    for (const [k, v] of Object.entries(nonzeroDrops(s.drops))) t.dropped_by_reason[k] = (t.dropped_by_reason[k] ?? 0) + v;
    this.retiredPolicy.set(sa.keyPolicyId, t);
  }

  /** POST /ack for the version in the dataplane; kept and retried when the controller does not answer. */
  async ack(): Promise<boolean> {
    const a = this.pendingAck;
    if (!a || !this.deps.controller) return true;
    try {
      await this.deps.controller.post(`/v1/hosts/${encodeURIComponent(this.cfg.hostId)}/ack`, a, { timeoutMs: 10000 });
      if (this.pendingAck === a) this.pendingAck = null;
      return true;
    } catch (err) {
      this.log.warn({ version: a.version, err: (err as Error).message }, 'ack not delivered; will retry');
      return false;
    }
  }

  // ------------------------------------------------------------ keys

  /** Installed SAs past notAfter: still used, because nothing replaced them (DESIGN §5 expiry). */
  expiredInUse(): InstalledSa[] {
    const t = this.now();
    return [...this.state.sas.values()].filter((s) => Date.parse(s.notAfter) <= t);
  }

  /** One key check: expiry in use, sender low water, ICV/replay bursts. */
  checkKeys(): Promise<void> {
    return this.serial(async () => {
      for (const sa of this.expiredInUse()) {
        const why = !this.reachable.controller ? 'the controller is unreachable' : !this.reachable.keymanager ? 'the key manager is unreachable' : 'no replacement key has arrived';
        this.syslog.emit({
          kind: 'key-expired-in-use',
          severity: 'warning',
          message: `key ${sa.keyId} of key policy ${sa.keyPolicyId} (SPI ${sa.spi}) expired at ${sa.notAfter} and is still in use: ${why}`,
          data: { key_id: sa.keyId, key_policy: sa.keyPolicyId, spi: sa.spi, not_after: sa.notAfter },
        });
      }
      for (const sa of [...this.state.sas.values()]) {
        const s = this.dataplane.saStats(sa.spi);
        if (s && s.sendersLow > 0n) await this.renewSenders(sa);
      }
      const d = this.dataplane.drops();
      for (const [reason, kind] of [
        ['icv_failure', 'icv-failure-burst'],
        ['replay', 'replay-burst'],
      ] as const) {
        const prev = this.lastDrops[reason];
        const delta = prev === undefined ? 0n : d[reason] - prev;
        this.lastDrops[reason] = d[reason];
        if (delta >= BigInt(this.cfg.burstThreshold)) {
          this.syslog.emit({
            kind,
            severity: 'warning',
            message: `${delta} packets dropped for ${reason} in the last ${this.cfg.keyCheckSeconds} s`,
            data: { reason, count: String(delta), seconds: this.cfg.keyCheckSeconds },
          });
        }
      }
      await this.ack();
    });
  }

  /**
   * A sender of this SA is below its low-water mark (DESIGN §3: the counter
   * never wraps; ask for new sender IDs before it runs out). The key is
   * released again for its fresh sender IDs only, and the filter swaps them
   * in place (Filter.replaceSenders): each worker continues with its new ID
   * from counter 1 between two bursts, while the SA's key, this host's
   * replay windows and its counters stay. No packet of the SPI is dropped
   * and no replayed old packet can slip through a restarted window. The
   * key bytes of that release are not needed and are wiped at once. If the
   * filter refuses the IDs (they would repeat IVs, or do not fit the SA),
   * the SA keeps its current senders and the next key check tries again.
   */
  private async renewSenders(sa: InstalledSa): Promise<void> {
    let m: Map<string, KeyMaterial>;
    try {
      m = await this.deps.keys.release([sa.keyId]);
    } catch (err) {
      this.counters.keyFetchFailures++;
      this.log.warn({ spi: sa.spi, keyId: sa.keyId, err: (err as Error).message }, 'sender counter low and no new sender IDs');
      return;
    }
    const mat = m.get(sa.keyId)!;
    mat.key.fill(0);
    mat.salt.fill(0);
    try {
      if (mat.senderIdBits !== sa.senderIdBits) {
        throw new Error(`the key manager released ${mat.senderIdBits}-bit sender IDs for an SA installed with ${sa.senderIdBits}-bit ones`);
      }
      this.dataplane.replaceSenders(sa.spi, mat.senderIds);
    } catch (err) {
      this.log.error({ spi: sa.spi, keyId: sa.keyId, err: (err as Error).message }, 'fresh sender IDs refused; the SA keeps its current senders');
      return;
    }
    sa.senderIds = [...mat.senderIds];
    sa.senderRenewals++;
    this.counters.senderRenewals++;
    this.syslog.emit({
      kind: 'sender-ids-renewed',
      severity: 'notice',
      message: `SA ${sa.spi} (key ${sa.keyId}) has fresh sender IDs: a sender counter reached its low-water mark`,
      data: { spi: sa.spi, key_id: sa.keyId, key_policy: sa.keyPolicyId },
    });
  }

  // ------------------------------------------------------------ manager

  inventory(): InventoryReport {
    return {
      display_name: this.cfg.displayName,
      workloads: this.cfg.workloads.map((w) => ({
        id: w.id,
        display_name: w.display_name ?? w.id,
        tags: w.tags,
        vnics: w.vnics.map((v) => {
          const o: InventoryReport['workloads'][number]['vnics'][number] = { id: v.id, mac: v.mac, ipv4: v.ipv4, ipv6: v.ipv6, workload_if: v.workload_if, network_if: v.network_if };
          if (v.netns) o.netns = v.netns;
          return o;
        }),
      })),
    };
  }

  async sendInventory(): Promise<boolean> {
    if (!this.deps.manager) return false;
    try {
      await this.deps.manager.put(`${MANAGER_API}/agent/hosts/${encodeURIComponent(this.cfg.hostId)}/inventory`, this.inventory(), { timeoutMs: 10000 });
      this.setReachable('manager', true);
      this.inventorySent = true;
      return true;
    } catch (err) {
      const e = err as Error & { status?: number };
      this.setReachable('manager', (e.status ?? 0) >= 400 && (e.status ?? 0) < 500, e.message);
      this.log.warn({ err: e.message }, 'inventory not accepted; will retry');
      return false;
    }
  }

  /**
   * SIGHUP: the operator changed the host's workloads (or display name) in
   * the YAML. The manager gets the new inventory, and the config in the
   * dataplane is re-applied so a port whose interfaces changed is reopened
   * at once. Other settings need a restart; a different hostId is refused.
   * A file whose ports cannot be opened (an interface that does not exist)
   * is refused as a whole: the ports are reopened as they were, with their
   * tables, and the running workloads and display name are kept.
   */
  reloadWorkloads(next: AgentConfig): Promise<void> {
    if (next.hostId !== this.cfg.hostId) return Promise.reject(new Error(`hostId changed from ${this.cfg.hostId} to ${next.hostId}: restart the agent for that`));
    return this.serial(async () => {
      const was = { workloads: this.cfg.workloads, displayName: this.cfg.displayName };
      const setLocal = (workloads: AgentConfig['workloads']) => {
        this.localVnics.clear();
        for (const w of workloads) for (const v of w.vnics) this.localVnics.set(v.id, v);
      };
      this.cfg.workloads = next.workloads;
      this.cfg.displayName = next.displayName;
      setLocal(next.workloads);
      try {
        if (this.state.config) await this.applyConfig(this.state.config, this.version, this.revision);
      } catch (err) {
        this.cfg.workloads = was.workloads;
        this.cfg.displayName = was.displayName;
        setLocal(was.workloads);
        throw new Error(`${(err as Error).message}; the running configuration is kept`);
      }
      this.inventorySent = false;
    }).then(async () => {
      if (this.deps.manager) await this.sendInventory();
    });
  }

  ruleNames(): Map<number, string> {
    return new Map((this.state.config?.rules ?? []).map((r) => [r.ruleId, r.id]));
  }

  statsReport(): StatsReport {
    const names = this.ruleNames();
    const rules = new Map(this.retiredRules);
    const cloneRule = (r: { packets_in: number; bytes_in: number; packets_out: number; bytes_out: number }) => ({ ...r });
    for (const [k, v] of rules) rules.set(k, cloneRule(v));
    for (const [id, s] of this.dataplane.ruleStats()) {
      const name = names.get(id) ?? String(id);
      const t = rules.get(name) ?? { packets_in: 0, bytes_in: 0, packets_out: 0, bytes_out: 0 };
      t.packets_in += num(s.inPackets);
      t.bytes_in += num(s.inBytes);
      t.packets_out += num(s.outPackets);
      t.bytes_out += num(s.outBytes);
      rules.set(name, t);
    }
    const pol = new Map<string, Totals>();
    for (const [k, v] of this.retiredPolicy) pol.set(k, { ...v, dropped_by_reason: { ...v.dropped_by_reason } });
    for (const sa of this.state.sas.values()) {
      const s = this.dataplane.saStats(sa.spi);
      if (!s) continue;
      const t = pol.get(sa.keyPolicyId) ?? { packets_encrypted: 0, bytes_encrypted: 0, packets_decrypted: 0, bytes_decrypted: 0, dropped_by_reason: {} };
      t.packets_encrypted += num(s.sealedPackets);
      t.bytes_encrypted += num(s.sealedBytes);
      t.packets_decrypted += num(s.openedPackets);
      t.bytes_decrypted += num(s.openedBytes);
      for (const [k, v] of Object.entries(nonzeroDrops(s.drops))) t.dropped_by_reason[k] = (t.dropped_by_reason[k] ?? 0) + v;
      pol.set(sa.keyPolicyId, t);
    }
    return {
      boot_id: this.bootId,
      at: new Date(this.now()).toISOString(),
      config_version: this.version,
      revision: this.revision,
      rules: [...rules].map(([rule_id, t]) => ({ rule_id, ...t })),
      key_policies: [...pol].map(([key_policy_id, t]) => ({
        key_policy_id,
        ...t,
        packets_dropped: Object.values(t.dropped_by_reason).reduce((a, b) => a + b, 0),
      })),
      drops: nonzeroDrops(this.dataplane.drops()),
    };
  }

  async reportStats(): Promise<boolean> {
    if (!this.deps.manager) return false;
    try {
      await this.deps.manager.post(`${MANAGER_API}/agent/hosts/${encodeURIComponent(this.cfg.hostId)}/stats`, this.statsReport(), { timeoutMs: 10000 });
      this.setReachable('manager', true);
      this.counters.statsReports++;
      return true;
    } catch (err) {
      const e = err as Error & { status?: number };
      this.setReachable('manager', (e.status ?? 0) >= 400 && (e.status ?? 0) < 500, e.message);
      return false;
    }
  }

  // ------------------------------------------------------------ views (local endpoint)

  status() {
    return {
      host_id: this.cfg.hostId,
      boot_id: this.bootId,
      started_at: new Date(this.startedAt).toISOString(),
      ready: this.ready,
      config: { version: this.version, revision: this.revision, applied_at: this.appliedAt === null ? null : new Date(this.appliedAt).toISOString(), default_action: this.state.config?.defaultAction ?? this.cfg.filter.defaultAction },
      controller: { url: this.cfg.controller, reachable: this.reachable.controller, last_error: this.lastError.controller },
      key_managers: { urls: this.deps.keys.keyManagerUrls, reachable: this.reachable.keymanager, last_error: this.lastError.keymanager },
      manager: { url: this.cfg.manager, reachable: this.reachable.manager, last_error: this.lastError.manager, inventory_sent: this.inventorySent },
      filter: { workers: this.dataplane.workers },
      ports: [...this.state.ports.values()].map((p) => ({
        name: p.config.name,
        workload_id: p.host.workload_id,
        vnic_id: p.host.vnic_id,
        workload_if: p.config.workloadIf,
        network_if: p.config.networkIf,
        workload_netns: p.config.workloadNetns ?? null,
        network_netns: p.config.networkNetns ?? null,
        addresses: p.host.addresses,
        rules: p.host.table.rules.length,
        mtu: this.dataplane.portMtu(p.config.name),
        // What a workload can send in one packet on a protected flow: the
        // filter answers larger DF packets with ICMP and clamps TCP MSS to it.
        protected_mtu: Math.max(0, this.dataplane.portMtu(p.config.name) - ESP_MAX_OVERHEAD),
      })),
      sas: this.state.sas.size,
      keys_expired_in_use: this.expiredInUse().map((s) => ({ key_id: s.keyId, key_policy: s.keyPolicyId, spi: s.spi, not_after: s.notAfter })),
    };
  }

  /** Installed SAs: identifiers, states, ages and counters; never key bytes. */
  sas() {
    const t = this.now();
    return [...this.state.sas.values()].map((sa) => {
      const s = this.dataplane.saStats(sa.spi);
      const notAfter = Date.parse(sa.notAfter);
      return {
        spi: sa.spi,
        spi_hex: `0x${sa.spi.toString(16).padStart(8, '0')}`,
        key_id: sa.keyId,
        key_policy: sa.keyPolicyId,
        mode: sa.mode,
        state: sa.state,
        not_before: sa.notBefore,
        not_after: sa.notAfter,
        age_seconds: Math.floor((t - sa.installedAt) / 1000),
        expires_in_seconds: Math.floor((notAfter - t) / 1000),
        expired: notAfter <= t,
        sender_ids: sa.senderIds,
        sender_id_bits: sa.senderIdBits,
        sender_renewals: sa.senderRenewals,
        senders_low: s ? num(s.sendersLow) : 0,
        packets_out: s ? num(s.sealedPackets) : 0,
        bytes_out: s ? num(s.sealedBytes) : 0,
        packets_in: s ? num(s.openedPackets) : 0,
        bytes_in: s ? num(s.openedBytes) : 0,
        drops: s ? nonzeroDrops(s.drops) : {},
      };
    });
  }

  rules() {
    const stats = this.dataplane.ruleStats();
    const where = new Map<number, string[]>();
    for (const p of this.state.ports.values()) for (const r of p.host.table.rules) where.set(r.ruleId, [...new Set([...(where.get(r.ruleId) ?? []), p.config.name])]);
    const policies = new Map((this.state.config?.keyPolicies ?? []).map((k) => [k.index, k.id]));
    return (this.state.config?.rules ?? []).map((r) => {
      const s = stats.get(r.ruleId);
      const spec = [...this.state.ports.values()].flatMap((p) => p.host.table.rules).find((x) => x.ruleId === r.ruleId);
      return {
        rule_id: r.id,
        number: r.ruleId,
        section_id: r.sectionId,
        display_name: r.displayName,
        action: spec?.action ?? null,
        key_policy: spec && spec.keyPolicy ? (policies.get(spec.keyPolicy) ?? String(spec.keyPolicy)) : null,
        tx_spi: spec?.txSpi ?? 0,
        ports: where.get(r.ruleId) ?? [],
        packets_out: s ? num(s.outPackets) : 0,
        bytes_out: s ? num(s.outBytes) : 0,
        packets_in: s ? num(s.inPackets) : 0,
        bytes_in: s ? num(s.inBytes) : 0,
      };
    });
  }

  stats() {
    const ports: Record<string, { counters: Record<string, number>; drops: Record<string, number> }> = {};
    for (const name of this.state.ports.keys()) {
      const s = this.dataplane.portStats(name);
      if (!s) continue;
      ports[name] = { counters: Object.fromEntries(Object.entries(s.counters).map(([k, v]) => [k, num(v)])), drops: nonzeroDrops(s.drops) };
    }
    const r = this.statsReport();
    return { boot_id: r.boot_id, at: r.at, config_version: r.config_version, ports, rules: r.rules, key_policies: r.key_policies, drops: r.drops };
  }

  /**
   * Traceflow-style explain (DESIGN §7): which rule, key policy, SA and
   * action the dataplane's own matcher picks for a flow at a port of this
   * host. The port is the one whose workload owns `src` (direction out) or
   * `dst` (direction in), unless named.
   */
  explain(q: ExplainQuery) {
    const problem = explainQueryProblem(q);
    if (problem) throw new RangeError(`${problem.field} ${problem.message}`);
    const proto = /^[0-9]{1,3}$/.test(q.protocol) ? Number(q.protocol) : PROTOCOLS[q.protocol.toLowerCase()]!;
    const fs = net.isIP(q.src);
    const fd = net.isIP(q.dst);
    if (!fs || fs !== fd) throw new RangeError('src and dst must be IP addresses of the same family');
    const ports = [...this.state.ports.values()];
    const norm = (a: string) => (net.isIPv6(a) ? new net.SocketAddress({ address: a, family: 'ipv6' }).address : a);
    const owns = (addrs: string[], a: string) => addrs.some((x) => norm(x.split('/')[0]!) === norm(a));
    let candidates: Array<{ port: (typeof ports)[number]; dir: 'out' | 'in' }> = [];
    for (const p of ports) {
      if (q.port !== undefined && p.config.name !== q.port) continue;
      if (owns(p.host.addresses, q.src)) candidates.push({ port: p, dir: 'out' });
      if (owns(p.host.addresses, q.dst)) candidates.push({ port: p, dir: 'in' });
    }
    if (q.port !== undefined && !ports.some((p) => p.config.name === q.port)) throw new RangeError(`this host has no port named ${q.port}`);
    if (candidates.length === 0) {
      return { matched: false, reason: 'neither address belongs to a protected port of this host', host_id: this.cfg.hostId, results: [] as unknown[] };
    }
    const frame = ethFrame(ipPacket({ src: q.src, dst: q.dst, protocol: proto, srcPort: q.sport ?? 0, dstPort: q.dport ?? 0 }));
    const names = this.ruleNames();
    const ruleInfo = new Map((this.state.config?.rules ?? []).map((r) => [r.ruleId, r]));
    const policies = new Map((this.state.config?.keyPolicies ?? []).map((k) => [k.index, k.id]));
    candidates = candidates.slice(0, 4);
    const results = candidates.map(({ port, dir }) => {
      const r = classifyNative(port.host.table, frame, dir);
      const spec: RuleSpec | undefined = r?.ruleId == null ? undefined : port.host.table.rules.find((x) => x.ruleId === r.ruleId);
      const sa = spec && spec.txSpi ? this.state.sas.get(spec.txSpi) : undefined;
      return {
        port: port.config.name,
        workload_id: port.host.workload_id,
        direction: dir,
        action: r?.action ?? null,
        rule_id: r?.ruleId == null ? null : (names.get(r.ruleId) ?? String(r.ruleId)),
        rule_display_name: r?.ruleId == null ? null : (ruleInfo.get(r.ruleId)?.displayName ?? null),
        section_id: r?.ruleId == null ? null : (ruleInfo.get(r.ruleId)?.sectionId ?? null),
        default_action: r?.ruleId == null,
        key_policy: spec && spec.keyPolicy ? (policies.get(spec.keyPolicy) ?? String(spec.keyPolicy)) : null,
        tx_spi: spec?.txSpi ?? 0,
        key_id: sa?.keyId ?? null,
        key_state: sa?.state ?? null,
      };
    });
    return { matched: true, host_id: this.cfg.hostId, config_version: this.version, flow: { src: q.src, dst: q.dst, protocol: proto, sport: q.sport ?? null, dport: q.dport ?? null }, results };
  }

  // ------------------------------------------------------------ lifecycle

  /** Starts the dataplane, the config stream and the timers (inventory is retried until the manager takes it). */
  start(): void {
    this.dataplane.start();
    if (this.deps.controller) {
      this.stream = new ConfigStream({
        hostId: this.cfg.hostId,
        client: this.deps.controller,
        waitSeconds: this.cfg.controllerPoll.waitSeconds,
        backoff: { minMs: this.cfg.controllerPoll.backoffMinMs, maxMs: this.cfg.controllerPoll.backoffMaxMs },
        onResponse: (r) => this.handleResponse(r),
        onReachable: (ok, why) => this.setReachable('controller', ok, why),
        // The first failure of a run is a warning; the retries that follow are debug (reachability and /status carry the state).
        onError: (where, err, retryInMs) =>
          this.log[this.stream!.failures <= 1 ? 'warn' : 'debug']({ where, err: err.message, retryInMs }, where === 'poll' ? 'controller poll failed; last good config kept' : 'config not applied; last good config kept'),
      });
      this.stream.start();
    }
    const every = (ms: number, fn: () => Promise<unknown>) => {
      let busy = false;
      const t = setInterval(() => {
        if (busy) return;
        busy = true;
        fn()
          .catch((err: Error) => this.log.error({ err: err.message }, 'periodic task failed'))
          .finally(() => (busy = false));
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    if (this.deps.manager) {
      void this.sendInventory();
      every(Math.min(5000, this.cfg.statsIntervalSeconds * 1000), async () => {
        if (!this.inventorySent) await this.sendInventory();
      });
      every(this.cfg.statsIntervalSeconds * 1000, () => this.reportStats());
    }
    every(this.cfg.keyCheckSeconds * 1000, () => this.checkKeys());
  }

  /** Stops polling and timers, sends a last stats report, and closes the dataplane (keys wiped in native memory). */
  async stop(): Promise<void> {
    for (const t of this.timers.splice(0)) clearInterval(t);
    await this.stream?.stop();
    await this.serial(async () => {
      await this.reportStats();
    }).catch(() => undefined);
    this.dataplane.close();
    this.deps.keys.close();
    this.deps.controller?.close();
    this.deps.manager?.close();
    await this.syslog.flush();
    this.syslog.close();
  }
}
