/**
 * Prometheus metrics of the agent (DESIGN §7): a dedicated Registry, every
 * dataplane value read in collect() at scrape time (the filter sums its
 * per-worker counters on read; nothing is sampled in between), `dne_`
 * names, `_total` counters, and labels bounded by what this host has: its
 * ports, its rules, its SAs (at most 1024), drop reasons (a fixed list).
 * No label or value is ever derived from key material. docs/agent.md lists
 * every metric.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { STATUS_NAMES } from '../native/codes';
import { ESP_MAX_OVERHEAD } from '../native/filter';
import type { Agent } from './agent';

/** Port counter name (native) -> metric and label. */
function portMetric(counter: string): { metric: string; direction?: string } {
  const m = /^(from_workload|to_network|from_network|to_workload)_(packets|bytes)$/.exec(counter);
  if (m) return { metric: `dne_port_${m[2]}_total`, direction: m[1] };
  return { metric: `dne_port_${counter.replace(/_total$/, '')}_total` };
}

const PORT_HELP: Record<string, string> = {
  dne_port_packets_total: 'Packets through a protected port, by direction (from_workload, to_network, from_network, to_workload).',
  dne_port_bytes_total: 'Bytes through a protected port, by direction.',
  dne_port_sealed_packets_total: 'Packets a port sent as ESP (encrypted or integrity-protected).',
  dne_port_opened_packets_total: 'ESP packets a port verified (and decrypted) and delivered.',
  dne_port_clear_packets_total: 'Packets a port passed in clear (ALLOW_IN_CLEAR, non-IP).',
  dne_port_dropped_packets_total: 'Packets a port dropped (reasons in dne_port_drops_total).',
  dne_port_icmp_sent_total: 'ICMP fragmentation-needed / ICMPv6 packet-too-big a port sent for oversized DF packets.',
  dne_port_gso_segmented_packets_total: 'GSO super-packets a port segmented in software.',
};

export function createAgentMetrics(agent: Agent, portCounterNames: readonly string[]): Registry {
  const reg = new Registry();
  const dp = () => agent.dataplane;

  const portMetrics = new Map<string, Counter<string>>();
  for (const c of portCounterNames) {
    const { metric, direction } = portMetric(c);
    if (portMetrics.has(metric)) continue;
    portMetrics.set(
      metric,
      new Counter({ name: metric, help: PORT_HELP[metric] ?? `Port counter ${c}.`, labelNames: direction ? (['port', 'direction'] as const) : (['port'] as const), registers: [reg] }),
    );
  }
  // One read of every port per scrape, shared by all port metrics: the first metric's collect reads, the others use it.
  const portCounterMetric = [...portMetrics.values()][0];
  const portDrops = new Counter({ name: 'dne_port_drops_total', help: 'Packets a port dropped, by reason.', labelNames: ['port', 'reason'] as const, registers: [reg] });
  const readPorts = () => {
    for (const m of portMetrics.values()) m.reset();
    portDrops.reset();
    for (const name of agent.state.ports.keys()) {
      const s = dp().portStats(name);
      if (!s) continue;
      for (const [c, v] of Object.entries(s.counters)) {
        const { metric, direction } = portMetric(c);
        const m = portMetrics.get(metric)!;
        m.inc(direction ? { port: name, direction } : { port: name }, Number(v));
      }
      for (const [reason, v] of Object.entries(s.drops)) if (reason !== 'ok') portDrops.inc({ port: name, reason }, Number(v));
    }
  };
  if (portCounterMetric) Object.assign(portCounterMetric, { collect: readPorts });

  new Gauge({
    name: 'dne_port_mtu',
    help: 'MTU of a protected port\'s network-side interface (clear flows); protected flows get 37 bytes less (dne_port_protected_mtu).',
    labelNames: ['port'] as const,
    registers: [reg],
    collect() {
      this.reset();
      for (const name of agent.state.ports.keys()) this.set({ port: name }, dp().portMtu(name));
    },
  });

  new Gauge({
    name: 'dne_port_protected_mtu',
    help: 'Largest packet a workload can send on an encrypted or integrity-only flow of this port (network MTU minus the ESP overhead).',
    labelNames: ['port'] as const,
    registers: [reg],
    collect() {
      this.reset();
      for (const name of agent.state.ports.keys()) this.set({ port: name }, Math.max(0, dp().portMtu(name) - ESP_MAX_OVERHEAD));
    },
  });

  const rulePackets = new Counter({ name: 'dne_rule_packets_total', help: 'Packets that matched an encryption rule, by direction (out: from the workload, in: to it).', labelNames: ['rule_id', 'direction'] as const, registers: [reg] });
  const ruleBytes = new Counter({ name: 'dne_rule_bytes_total', help: 'Bytes that matched an encryption rule, by direction.', labelNames: ['rule_id', 'direction'] as const, registers: [reg] });
  Object.assign(rulePackets, {
    collect() {
      rulePackets.reset();
      ruleBytes.reset();
      const names = agent.ruleNames();
      for (const [id, s] of dp().ruleStats()) {
        const rule_id = names.get(id) ?? String(id);
        rulePackets.inc({ rule_id, direction: 'out' }, Number(s.outPackets));
        rulePackets.inc({ rule_id, direction: 'in' }, Number(s.inPackets));
        ruleBytes.inc({ rule_id, direction: 'out' }, Number(s.outBytes));
        ruleBytes.inc({ rule_id, direction: 'in' }, Number(s.inBytes));
      }
    },
  });

  const saPackets = new Counter({ name: 'dne_sa_packets_total', help: 'Packets sealed (out) and opened (in) with an SA.', labelNames: ['spi', 'key_policy', 'direction'] as const, registers: [reg] });
  const saBytes = new Counter({ name: 'dne_sa_bytes_total', help: 'Bytes sealed (out) and opened (in) with an SA.', labelNames: ['spi', 'key_policy', 'direction'] as const, registers: [reg] });
  const saDrops = new Counter({ name: 'dne_sa_drops_total', help: 'Packets of an SA dropped, by reason (icv_failure, replay, too_old, ...).', labelNames: ['spi', 'key_policy', 'reason'] as const, registers: [reg] });
  const saLow = new Gauge({ name: 'dne_sa_senders_low', help: 'Workers whose sender counter under this SA is below its low-water mark.', labelNames: ['spi', 'key_policy'] as const, registers: [reg] });
  const saState = new Gauge({ name: 'dne_sa_state', help: '1 for the state an installed SA is in (receive, active, retiring).', labelNames: ['spi', 'key_policy', 'state'] as const, registers: [reg] });
  Object.assign(saPackets, {
    collect() {
      for (const m of [saPackets, saBytes, saDrops, saLow, saState]) m.reset();
      for (const sa of agent.state.sas.values()) {
        const s = dp().saStats(sa.spi);
        if (!s) continue;
        const l = { spi: String(sa.spi), key_policy: sa.keyPolicyId };
        saPackets.inc({ ...l, direction: 'out' }, Number(s.sealedPackets));
        saPackets.inc({ ...l, direction: 'in' }, Number(s.openedPackets));
        saBytes.inc({ ...l, direction: 'out' }, Number(s.sealedBytes));
        saBytes.inc({ ...l, direction: 'in' }, Number(s.openedBytes));
        for (const [reason, v] of Object.entries(s.drops)) if (reason !== 'ok') saDrops.inc({ ...l, reason }, Number(v));
        saLow.set(l, Number(s.sendersLow));
        saState.set({ ...l, state: sa.state }, 1);
      }
    },
  });

  new Counter({
    name: 'dne_drops_total',
    help: 'Packets the filter dropped, host-wide, by reason.',
    labelNames: ['reason'] as const,
    registers: [reg],
    collect() {
      this.reset();
      const d = dp().drops();
      for (const reason of STATUS_NAMES) if (reason !== 'ok') this.inc({ reason }, Number(d[reason]));
    },
  });

  new Gauge({ name: 'dne_config_version', help: 'Host config version in the dataplane (0: none yet).', registers: [reg], collect() { this.set(agent.version); } });
  new Gauge({ name: 'dne_config_revision', help: 'Manager revision the host config in the dataplane was translated from.', registers: [reg], collect() { this.set(agent.revision); } });
  new Gauge({
    name: 'dne_key_expired_in_use',
    help: 'Installed keys past their notAfter that are still in use (the controller or key manager could not replace them), per key policy.',
    labelNames: ['key_policy'] as const,
    registers: [reg],
    collect() {
      this.reset();
      const per = new Map<string, number>();
      for (const sa of agent.state.sas.values()) per.set(sa.keyPolicyId, per.get(sa.keyPolicyId) ?? 0);
      for (const sa of agent.expiredInUse()) per.set(sa.keyPolicyId, (per.get(sa.keyPolicyId) ?? 0) + 1);
      for (const [key_policy, n] of per) this.set({ key_policy }, n);
    },
  });
  for (const peer of ['controller', 'keymanager', 'manager'] as const) {
    new Gauge({
      name: `dne_${peer}_reachable`,
      help: `1 when the last exchange with the ${peer} succeeded.`,
      registers: [reg],
      collect() {
        this.set(agent.reachable[peer] ? 1 : 0);
      },
    });
  }
  new Gauge({ name: 'dne_ready', help: '1 once the first host config is in the dataplane.', registers: [reg], collect() { this.set(agent.ready ? 1 : 0); } });
  new Gauge({ name: 'dne_agent_start_time_seconds', help: 'When this agent process started (unix seconds).', registers: [reg], collect() { this.set(agent.startedAt / 1000); } });
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [reg],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  counter('dne_config_applies_total', 'Host config versions applied to the dataplane.', () => agent.counters.applies);
  counter('dne_config_apply_failures_total', 'Host config versions that could not be applied yet (retried).', () => agent.counters.applyFailures);
  counter('dne_key_fetch_failures_total', 'Key releases that failed (key manager unreachable or refusing).', () => agent.counters.keyFetchFailures);
  counter('dne_sender_id_renewals_total', 'Sender-ID renewals: an SA got fresh sender IDs in place because a sender ran low.', () => agent.counters.senderRenewals);
  counter('dne_stats_reports_total', 'Statistics reports the manager accepted.', () => agent.counters.statsReports);
  counter('dne_syslog_errors_total', 'Syslog messages that could not be delivered.', () => agent.syslog.stats.errors);
  new Counter({
    name: 'dne_syslog_messages_total',
    help: 'Security events written to syslog, by event.',
    labelNames: ['event'] as const,
    registers: [reg],
    collect() {
      this.reset();
      for (const [event, n] of Object.entries(agent.syslog.stats.sent)) this.inc({ event }, n);
    },
  });
  new Counter({
    name: 'dne_syslog_suppressed_total',
    help: 'Security events not written because of the per-event rate limit, by event.',
    labelNames: ['event'] as const,
    registers: [reg],
    collect() {
      this.reset();
      for (const [event, n] of Object.entries(agent.syslog.stats.suppressed)) this.inc({ event }, n);
    },
  });
  return reg;
}
