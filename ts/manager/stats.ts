/**
 * Statistics aggregation (issue #5): agents report cumulative counters per
 * process start (contracts.ts StatsReport, `boot_id`); the manager keeps the
 * latest report per (host, boot) and sums them, so a lost report loses
 * nothing and an agent restart does not reset the totals.
 */
import type { StatsReport } from '../common/contracts';

type KpEntry = StatsReport['key_policies'][number];
type RuleEntry = StatsReport['rules'][number];
const KP_FIELDS = ['packets_encrypted', 'bytes_encrypted', 'packets_decrypted', 'bytes_decrypted', 'packets_dropped'] as const;
const RULE_FIELDS = ['packets_in', 'bytes_in', 'packets_out', 'bytes_out'] as const;

function zeroKp() {
  return { packets_encrypted: 0, bytes_encrypted: 0, packets_decrypted: 0, bytes_decrypted: 0, packets_dropped: 0, dropped_by_reason: {} as Record<string, number> };
}
function zeroRule() {
  return { packets_in: 0, bytes_in: 0, packets_out: 0, bytes_out: 0 };
}

function addKp(into: ReturnType<typeof zeroKp>, e: KpEntry): void {
  for (const f of KP_FIELDS) into[f] += e[f];
  for (const [reason, n] of Object.entries(e.dropped_by_reason)) into.dropped_by_reason[reason] = (into.dropped_by_reason[reason] ?? 0) + n;
}

function later(a: string, b: string): string {
  return Date.parse(b) > Date.parse(a) ? b : a;
}

export function keyPolicyStats(reports: Array<{ host_id: string; report: StatsReport }>, id: string) {
  const total = zeroKp();
  const hosts = new Map<string, ReturnType<typeof zeroKp> & { host_id: string; last_report: string }>();
  for (const { host_id, report } of reports) {
    for (const e of report.key_policies) {
      if (e.key_policy_id !== id) continue;
      addKp(total, e);
      const h = hosts.get(host_id) ?? { host_id, last_report: report.at, ...zeroKp() };
      h.last_report = later(h.last_report, report.at);
      addKp(h, e);
      hosts.set(host_id, h);
    }
  }
  return { key_policy_id: id, ...total, per_host: [...hosts.values()].sort((a, b) => a.host_id.localeCompare(b.host_id)) };
}

export function ruleStats(reports: Array<{ host_id: string; report: StatsReport }>, sectionId: string, ruleId: string) {
  const total = zeroRule();
  const hosts = new Map<string, ReturnType<typeof zeroRule> & { host_id: string; last_report: string }>();
  for (const { host_id, report } of reports) {
    for (const e of report.rules as RuleEntry[]) {
      if (e.rule_id !== ruleId) continue;
      const h = hosts.get(host_id) ?? { host_id, last_report: report.at, ...zeroRule() };
      h.last_report = later(h.last_report, report.at);
      for (const f of RULE_FIELDS) {
        total[f] += e[f];
        h[f] += e[f];
      }
      hosts.set(host_id, h);
    }
  }
  return { rule_id: ruleId, section_id: sectionId, ...total, per_host: [...hosts.values()].sort((a, b) => a.host_id.localeCompare(b.host_id)) };
}

export function sectionStats(reports: Array<{ host_id: string; report: StatsReport }>, sectionId: string, ruleIdList: string[]) {
  const rules = ruleIdList.map((r) => ruleStats(reports, sectionId, r));
  const total = zeroRule();
  for (const r of rules) for (const f of RULE_FIELDS) total[f] += r[f];
  return { section_id: sectionId, ...total, rules };
}
