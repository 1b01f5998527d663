/**
 * Randomized agreement: for many random revisions, the port tables that
 * translate() builds decide every flow between two workloads (at the sender
 * on the way out and at the receiver on the way in, forward and reply) the
 * same way as a plain walk over the model (ts/controller/reference-
 * evaluator.ts), and the same way at both ends whenever both ends enforce the
 * matching rule. The port tables are read with the filter's own reference
 * matcher (ts/native/reference-matcher.ts), so this also pins the meaning of
 * every RuleSpec field the translator fills in.
 */
import type { ResourceReference, Revision, Rule, RuleAction, Section, Service, Workload } from '../../ts/common/policy-model';
import type { PortTableSpec } from '../../ts/native/filter';
import { RefFlow, refClassify } from '../../ts/native/reference-matcher';
import { appliesAt, evaluateFlow, firstMatch, ModelVerdict } from '../../ts/controller/reference-evaluator';
import { HostConfig, HostPort, keyPolicyIndexes, KeyState, ruleIds, translate } from '../../ts/controller/translate';
import { group, ipSet, keyPolicy, ref, rule, section } from './model-builders';
import { Rng, rng } from '../fixtures/prng';

const pick = <T>(r: Rng, a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
const some = <T>(r: Rng, a: readonly T[], max: number): T[] => Array.from({ length: Math.floor(r() * (max + 1)) }, () => pick(r, a));
const chance = (r: Rng, p: number) => r() < p;

const SCOPES = ['app', 'tier', 'env'];
const TAGS = ['web', 'db', 'prod', 'dev'];
const SERVICE_POOL: Service[] = [
  { protocol: 'TCP', destination_ports: ['80'] },
  { protocol: 'TCP', destination_ports: ['443', '8000-8100'] },
  { protocol: 'TCP', destination_ports: [] },
  { protocol: 'UDP', destination_ports: ['53'] },
  { protocol: 'UDP', destination_ports: [] },
  { protocol: 'ICMPv4', destination_ports: [] },
  { protocol: 'ICMPv6', destination_ports: [] },
  { protocol: 6, destination_ports: ['22'] },
];
/** Flows tried for each address pair: [protocol, service (destination) port]. */
const FLOW_POOL: Array<[number, number | undefined]> = [
  [6, 80],
  [6, 443],
  [6, 8050],
  [6, 22],
  [17, 53],
  [17, 5353],
  [-1, undefined], // ICMP of the pair's family
];
const EPHEMERAL = 40000;

function randomRevision(r: Rng, n: number): Revision {
  const hosts = Array.from({ length: 3 + Math.floor(r() * 2) }, (_, i) => ({ id: `h${i}`, display_name: `h${i}` }));
  let next = 1;
  const workloads: Workload[] = Array.from({ length: 6 + Math.floor(r() * 5) }, (_, i) => {
    const id = `w${i}`;
    return {
      id,
      display_name: id,
      host_id: pick(r, hosts).id,
      vnics: Array.from({ length: chance(r, 0.2) ? 2 : 1 }, (_, v) => {
        const subnet = Math.floor(r() * 3);
        const host = next++;
        return {
          id: `${id}-nic${v}`,
          mac: '02:00:00:00:00:01',
          ipv4: [`10.0.${subnet}.${host}`],
          ipv6: chance(r, 0.6) ? [`fd00:${subnet}::${host.toString(16)}`] : [],
          workload_if: `${id}-wl${v}`,
          network_if: `${id}-nt${v}`,
        };
      }),
      tags: some(r, SCOPES, 3).map((scope) => ({ scope, tag: pick(r, TAGS) })),
    };
  });
  const addresses = workloads.flatMap((w) => w.vnics.flatMap((v) => [...v.ipv4, ...v.ipv6]));
  const cidrs = () => pick(r, ['10.0.1.0/24', 'fd00:2::/64', '10.0.0.0/16', '192.168.0.0/16', 'fd00::/16', pick(r, addresses)]);
  const ip_sets = Array.from({ length: Math.floor(r() * 4) }, (_, i) => ipSet(`s${i}`, Array.from({ length: 1 + Math.floor(r() * 2) }, cidrs)));
  const groups = Array.from({ length: 2 + Math.floor(r() * 4) }, (_, i) =>
    group(`g${i}`, {
      expressions: Array.from({ length: Math.floor(r() * 3) }, () => {
        const k = r();
        return k < 0.33 ? { scope: pick(r, SCOPES) } : k < 0.66 ? { tag: pick(r, TAGS) } : { scope: pick(r, SCOPES), tag: pick(r, TAGS) };
      }),
      workload_ids: [...new Set(some(r, workloads, 2).map((w) => w.id))],
      ip_set_ids: ip_sets.length > 0 && chance(r, 0.4) ? [pick(r, ip_sets).id] : [],
    }),
  );
  const key_policies = [
    keyPolicy('kp-e0', { is_default: true }),
    keyPolicy('kp-i0', { encrypt_type: 'INTEGRITY_ONLY', is_default: true }),
    keyPolicy('kp-e1'),
    keyPolicy('kp-i1', { encrypt_type: 'INTEGRITY_ONLY' }),
    // A BUM default must never be picked as a unicast rule's default.
    keyPolicy('kp-bum', { is_default: true, type: 'BUM_TRAFFIC' }),
  ];
  const policiesFor = (a: RuleAction) => key_policies.filter((k) => k.type === 'REGULAR' && k.encrypt_type === (a === 'ENCRYPT' ? 'ENCRYPTION_AND_INTEGRITY' : 'INTEGRITY_ONLY'));

  const sideRef = (): ResourceReference => {
    const k = r();
    if (k < 0.5) return ref.group(pick(r, groups).id);
    if (k < 0.65 && ip_sets.length > 0) return ref.ipSet(pick(r, ip_sets).id);
    if (k < 0.85) return ref.workload(pick(r, workloads).id);
    return ref.ip(chance(r, 0.5) ? pick(r, addresses) : cidrs());
  };
  const side = () => (chance(r, 0.3) ? [] : Array.from({ length: 1 + Math.floor(r() * 2) }, sideRef));
  const appliedTo = () =>
    Array.from({ length: 1 + Math.floor(r() * 2) }, () => (chance(r, 0.5) ? ref.group(pick(r, groups).id) : ref.workload(pick(r, workloads).id)));

  let ruleNo = 0;
  const sections: Section[] = Array.from({ length: 1 + Math.floor(r() * 3) }, (_, si) => {
    // A section key policy fixes the mode of its protecting rules.
    const forced = chance(r, 0.2) ? pick(r, [key_policies[0]!, key_policies[1]!, key_policies[2]!, key_policies[3]!]) : undefined;
    const actions: RuleAction[] = forced === undefined ? ['ENCRYPT', 'INTEGRITY_ONLY', 'ALLOW_IN_CLEAR'] : [forced.encrypt_type === 'INTEGRITY_ONLY' ? 'INTEGRITY_ONLY' : 'ENCRYPT', 'ALLOW_IN_CLEAR'];
    const rules: Rule[] = Array.from({ length: 1 + Math.floor(r() * 5) }, () => {
      const action = pick(r, actions);
      return rule(`r${n}-${ruleNo++}`, {
        sources: side(),
        destinations: side(),
        services: chance(r, 0.3) ? [] : Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick(r, SERVICE_POOL)),
        ip_protocol: pick(r, ['IPV4_IPV6', 'IPV4_IPV6', 'IPV4', 'IPV6'] as const),
        applied_tos: chance(r, 0.1) ? appliedTo() : [],
        action,
        key_policy_identifier: action !== 'ALLOW_IN_CLEAR' && chance(r, 0.4) ? pick(r, policiesFor(action)).id : undefined,
        disabled: chance(r, 0.1),
      });
    });
    return section(`sec${si}`, rules, { disabled: chance(r, 0.1), key_policy_identifier: forced?.id, applied_tos: chance(r, 0.1) ? appliedTo() : [] });
  });

  return {
    revision: n,
    published_at: '2026-01-01T00:00:00Z',
    config: { rekey_margin: 300, default_action: chance(r, 0.3) ? 'DROP' : 'ALLOW_IN_CLEAR' },
    hosts,
    workloads,
    groups,
    ip_sets,
    key_policies,
    sections,
  };
}

/** Every policy has a retiring, an active and a receive-only key; one revoked key that must never reach a host. */
function keyStates(rev: Revision): KeyState[] {
  return rev.key_policies.map((k, i) => ({
    keyPolicyId: k.id,
    keys: (['retiring', 'active', 'receive', 'revoked'] as const).map((state, j) => ({
      keyId: `${k.id}-${state}`,
      spiGcm: 0x10000 + i * 16 + j * 2,
      spiGmac: 0x10000 + i * 16 + j * 2 + 1,
      state,
      notBefore: 't0',
      notAfter: 't1',
    })),
  }));
}

interface PortDecision {
  action: string;
  ruleId: number | null;
  keyPolicy: number;
}

function decide(table: PortTableSpec, f: RefFlow, dir: 'out' | 'in'): PortDecision {
  const d = refClassify(table, f, dir);
  // Every entry of one rule carries the same key policy, so any of them tells it.
  const spec = d.ruleId === null ? undefined : table.rules.find((x) => x.ruleId === d.ruleId);
  return { action: d.action, ruleId: d.ruleId, keyPolicy: spec?.keyPolicy ?? 0 };
}

test('port tables agree with the model walk and with each other on 200 random revisions', () => {
  const r = rng(0x5eed2026);
  const counts = { revisions: 0, flows: 0, bothEnforce: 0, oneSided: 0, oneSidedDisagree: 0, encrypt: 0, integrity: 0, allowRule: 0, default: 0 };
  for (let n = 1; n <= 200; n++) {
    const rev = randomRevision(r, n);
    const cfgs = translate(rev, keyStates(rev));
    counts.revisions++;
    const rid = ruleIds(rev);
    const kpi = keyPolicyIndexes(rev);
    const expectPort = (got: PortDecision, want: ModelVerdict, ctx: string) => {
      const expected: PortDecision = {
        action: want.action,
        ruleId: want.ruleId === null ? null : rid.get(want.ruleId)!,
        keyPolicy: want.keyPolicyId === null ? 0 : kpi.get(want.keyPolicyId)!,
      };
      if (got.action !== expected.action || got.ruleId !== expected.ruleId || got.keyPolicy !== expected.keyPolicy) {
        throw new Error(`revision ${n} ${ctx}: port decided ${JSON.stringify(got)}, model says ${JSON.stringify(expected)}`);
      }
    };

    checkKeys(rev, cfgs);
    const ports = new Map<string, { port: HostPort; workload: Workload }>();
    for (const w of rev.workloads) for (const v of w.vnics) ports.set(v.id, { port: portOf(cfgs, w.host_id, v.id), workload: w });

    for (const a of rev.workloads) {
      for (const b of rev.workloads) {
        if (a === b) continue;
        for (const va of a.vnics) {
          for (const vb of b.vnics) {
            for (const family of [4, 6] as const) {
              const sa = family === 4 ? va.ipv4[0] : va.ipv6[0];
              const sb = family === 4 ? vb.ipv4[0] : vb.ipv6[0];
              if (sa === undefined || sb === undefined) continue;
              // A seeded ~60% of the pool per address pair keeps the run near half a minute.
              for (const [proto, port] of FLOW_POOL.filter(() => chance(r, 0.6))) {
                const protocol = proto === -1 ? (family === 4 ? 1 : 58) : proto;
                const forward: RefFlow = { family, protocol, src: sa, dst: sb, sport: port && EPHEMERAL, dport: port };
                const reply: RefFlow = { family, protocol, src: sb, dst: sa, sport: port, dport: port && EPHEMERAL };
                for (const [f, from, to] of [
                  [forward, va.id, vb.id],
                  [reply, vb.id, va.id],
                ] as const) {
                  const sender = ports.get(from)!;
                  const receiver = ports.get(to)!;
                  const ctx = `${JSON.stringify(f)} ${sender.workload.id} -> ${receiver.workload.id}`;
                  const out = decide(sender.port.table, f, 'out');
                  const inn = decide(receiver.port.table, f, 'in');
                  // Each end decides what the model says for the rules enforced at that end ...
                  expectPort(out, evaluateFlow(rev, f, sender.workload.id), `${ctx} (out)`);
                  expectPort(inn, evaluateFlow(rev, f, receiver.workload.id), `${ctx} (in)`);
                  counts.flows++;
                  // ... and when both ends enforce the first matching rule (always so
                  // with default applied-tos), both ends and the model agree.
                  const m = firstMatch(rev, f);
                  if (m === null || (appliesAt(rev, m.section, m.rule, sender.workload.id) && appliesAt(rev, m.section, m.rule, receiver.workload.id))) {
                    const model = evaluateFlow(rev, f);
                    expectPort(out, model, `${ctx} (out, both enforce)`);
                    expectPort(inn, model, `${ctx} (in, both enforce)`);
                    counts.bothEnforce++;
                    if (model.ruleId === null) counts.default++;
                    else if (model.action === 'allow') counts.allowRule++;
                    else counts[model.action as 'encrypt' | 'integrity']++;
                  } else {
                    // An explicit applied-to leaves one end out: it falls through
                    // to a later rule or the default (docs/controller.md).
                    counts.oneSided++;
                    if (out.action !== inn.action || out.keyPolicy !== inn.keyPolicy) counts.oneSidedDisagree++;
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  // eslint-disable-next-line no-console
  console.log(`translate agreement: ${JSON.stringify(counts)}`);
  expect(counts.revisions).toBe(200);
  expect(counts.bothEnforce).toBeGreaterThan(50000);
  for (const k of ['encrypt', 'integrity', 'allowRule', 'default', 'oneSided', 'oneSidedDisagree'] as const) expect(counts[k]).toBeGreaterThan(200);
}, 600_000);

function portOf(cfgs: Map<string, HostConfig>, host: string, vnic: string): HostPort {
  const p = cfgs.get(host)!.ports.find((x) => x.name === vnic);
  if (!p) throw new Error(`vNIC ${vnic} missing on ${host}`);
  return p;
}

/**
 * A host holds exactly the keys of the policies its ports' protecting rules
 * use (no revoked ones), and each rule sends with its policy's active key.
 */
function checkKeys(rev: Revision, cfgs: Map<string, HostConfig>): void {
  const kpi = keyPolicyIndexes(rev);
  const states = keyStates(rev);
  for (const [hostId, cfg] of cfgs) {
    const used = new Set<number>();
    for (const p of cfg.ports) {
      for (const rs of p.table.rules) {
        if (rs.action === 'allow') {
          expect([rs.keyPolicy, rs.txSpi]).toEqual([0, 0]);
          continue;
        }
        used.add(rs.keyPolicy);
        const kp = rev.key_policies.find((k) => kpi.get(k.id) === rs.keyPolicy)!;
        const active = states.find((s) => s.keyPolicyId === kp.id)!.keys.find((k) => k.state === 'active')!;
        expect(rs.txSpi).toBe(rs.action === 'encrypt' ? active.spiGcm : active.spiGmac);
        expect(kp.encrypt_type).toBe(rs.action === 'encrypt' ? 'ENCRYPTION_AND_INTEGRITY' : 'INTEGRITY_ONLY');
        expect(kp.type).toBe('REGULAR');
      }
    }
    expect(new Set(cfg.keys.map((k) => k.keyPolicyIndex))).toEqual(used);
    expect(cfg.keys.length).toBe(used.size * 3);
    expect(cfg.keys.some((k) => (k.state as string) === 'revoked')).toBe(false);
    expect(cfg.hostId).toBe(hostId);
  }
}
