/**
 * Control-plane smoke benchmark: translate() on one large synthetic revision
 * (default 10,000 workloads on 1,000 hosts, 2,000 rules) and print how long
 * it takes and how much it produced. Not a gate: nothing here fails on a time.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/controller-translate.js \
 *     [--workloads 10000] [--hosts 1000] [--rules 2000] [--reps 3]
 *
 * The revision is shaped like a fleet, not like a worst case: every workload
 * has an app tag (20 workloads per app), a tier and an env; most rules join
 * two app groups on a few TCP ports; a few per cent use the large tier/env
 * groups, IP sets or "any", and some sections force a key policy or an
 * applied-to, so every code path runs at scale.
 */
import { performance } from 'node:perf_hooks';
import type { Group, IpSet, KeyPolicy, ResourceReference, Revision, Rule, RuleAction, Section, Workload } from '../ts/common/policy-model';
import { KeyState, translate } from '../ts/controller/translate';
import { rng } from '../test/fixtures/prng';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}


function build(nWorkloads: number, nHosts: number, nRules: number): { rev: Revision; keys: KeyState[] } {
  const r = rng(6);
  const int = (n: number) => Math.floor(r() * n);
  const apps = Math.max(1, Math.floor(nWorkloads / 20));
  const tiers = ['web', 'app', 'db'];
  const envs = ['prod', 'staging', 'dev'];
  const hosts = Array.from({ length: nHosts }, (_, i) => ({ id: `host-${i}`, display_name: `host-${i}` }));
  const workloads: Workload[] = Array.from({ length: nWorkloads }, (_, i) => ({
    id: `wl-${i}`,
    display_name: `wl-${i}`,
    host_id: hosts[i % nHosts]!.id,
    vnics: [
      {
        id: `vnic-${i}`,
        mac: '02:00:00:00:00:01',
        ipv4: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`],
        ipv6: [`fd00::${i.toString(16)}`],
        workload_if: `tap${i}`,
        network_if: `nt${i}`,
      },
    ],
    tags: [
      { scope: 'app', tag: `app-${i % apps}` },
      { scope: 'tier', tag: tiers[i % 3]! },
      { scope: 'env', tag: envs[int(3)]! },
    ],
  }));
  const ipSets: IpSet[] = Array.from({ length: 100 }, (_, i) => ({
    id: `ipset-${i}`,
    display_name: `ipset-${i}`,
    ip_addresses: [`10.0.${i}.0/26`, `192.168.${i}.0/24`],
  }));
  const groups: Group[] = [
    ...Array.from({ length: apps }, (_, i) => ({ id: `app-${i}`, display_name: `app-${i}`, expressions: [{ scope: 'app', tag: `app-${i}` }], workload_ids: [], ip_set_ids: [] })),
    ...tiers.map((t) => ({ id: `tier-${t}`, display_name: t, expressions: [{ scope: 'tier', tag: t }], workload_ids: [], ip_set_ids: [] })),
    ...envs.map((e) => ({ id: `env-${e}`, display_name: e, expressions: [{ scope: 'env', tag: e }], workload_ids: [], ip_set_ids: [] })),
    ...Array.from({ length: 100 }, (_, i) => ({
      id: `mixed-${i}`,
      display_name: `mixed-${i}`,
      expressions: [],
      workload_ids: Array.from({ length: 10 }, () => `wl-${int(nWorkloads)}`),
      ip_set_ids: [`ipset-${i}`],
    })),
  ];
  const policies: KeyPolicy[] = Array.from({ length: 22 }, (_, i) => ({
    id: `kp-${i}`,
    display_name: `kp-${i}`,
    encrypt_type: i % 2 === 0 ? 'ENCRYPTION_AND_INTEGRITY' : 'INTEGRITY_ONLY',
    encrypt_algorithm: 'AES_GCM_128',
    rekey_frequency: 86400,
    lifetime: 172800,
    type: 'REGULAR',
    is_default: i < 2,
    replay_window: 4096,
  }));
  const app = () => ({ target_type: 'NSGroup', target_id: `app-${int(apps)}` }) as ResourceReference;
  const sideRef = (): ResourceReference[] => {
    const k = r();
    if (k < 0.9) return [app()];
    if (k < 0.93) return [{ target_type: 'NSGroup', target_id: `tier-${tiers[int(3)]}` }];
    if (k < 0.95) return [{ target_type: 'NSGroup', target_id: `mixed-${int(100)}` }];
    if (k < 0.97) return [{ target_type: 'IPSet', target_id: `ipset-${int(100)}` }];
    if (k < 0.99) return [app(), app()];
    return [];
  };
  const sections: Section[] = [];
  const perSection = 100;
  for (let s = 0; s * perSection < nRules; s++) {
    const forced = s % 7 === 3 ? `kp-${2 + 2 * int(10)}` : undefined;
    const rules: Rule[] = Array.from({ length: Math.min(perSection, nRules - s * perSection) }, (_, i) => {
      const action: RuleAction = forced ? 'ENCRYPT' : (['ENCRYPT', 'ENCRYPT', 'INTEGRITY_ONLY', 'ALLOW_IN_CLEAR'] as const)[int(4)]!;
      return {
        id: `rule-${s}-${i}`,
        display_name: `rule-${s}-${i}`,
        sources: sideRef(),
        destinations: sideRef(),
        services: [{ protocol: 'TCP', destination_ports: [String(1000 + int(9000)), '443'] }, ...(r() < 0.2 ? [{ protocol: 'UDP' as const, destination_ports: ['53'] }] : [])],
        ip_protocol: 'IPV4_IPV6',
        applied_tos: [],
        key_policy_identifier: action === 'ALLOW_IN_CLEAR' || r() < 0.5 ? undefined : `kp-${(action === 'ENCRYPT' ? 2 : 3) + 2 * int(10)}`,
        action,
        logged: false,
        disabled: r() < 0.02,
      };
    });
    sections.push({
      id: `section-${s}`,
      display_name: `section-${s}`,
      disabled: false,
      key_policy_identifier: forced,
      applied_tos: s % 11 === 5 ? [{ target_type: 'NSGroup', target_id: 'tier-web' }] : [],
      rules,
    });
  }
  const rev: Revision = {
    revision: 1,
    published_at: new Date(0).toISOString(),
    config: { rekey_margin: 300, default_action: 'ALLOW_IN_CLEAR' },
    hosts,
    workloads,
    groups,
    ip_sets: ipSets,
    key_policies: policies,
    sections,
  };
  const keys: KeyState[] = policies.map((p, i) => ({
    keyPolicyId: p.id,
    keys: [
      { keyId: `${p.id}-a`, spiGcm: 0x1000 + 4 * i, spiGmac: 0x1001 + 4 * i, state: 'active', notBefore: 't0', notAfter: 't1' },
      { keyId: `${p.id}-b`, spiGcm: 0x1002 + 4 * i, spiGmac: 0x1003 + 4 * i, state: 'receive', notBefore: 't1', notAfter: 't2' },
    ],
  }));
  return { rev, keys };
}

function main(): void {
  const nWorkloads = arg('workloads', 10000);
  const nHosts = arg('hosts', 1000);
  const nRules = arg('rules', 2000);
  const reps = arg('reps', 3);
  const { rev, keys } = build(nWorkloads, nHosts, nRules);
  const times: number[] = [];
  let out = translate(rev, keys); // warm-up: JIT and lazily built caches of the process
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    out = translate(rev, keys);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  let ports = 0;
  let specs = 0;
  let maxSpecs = 0;
  let keyCount = 0;
  for (const h of out.values()) {
    ports += h.ports.length;
    keyCount += h.keys.length;
    for (const p of h.ports) {
      specs += p.table.rules.length;
      maxSpecs = Math.max(maxSpecs, p.table.rules.length);
    }
  }
  const sample = [...out.values()].slice(0, 20);
  const bytes = sample.reduce((n, h) => n + Buffer.byteLength(JSON.stringify(h)), 0) / sample.length;
  const rows: Array<[string, string]> = [
    ['workloads / hosts / rules', `${nWorkloads} / ${nHosts} / ${nRules}`],
    ['translate, median of reps (ms)', times[Math.floor(times.length / 2)]!.toFixed(0)],
    ['translate, min-max (ms)', `${times[0]!.toFixed(0)}-${times[times.length - 1]!.toFixed(0)}`],
    ['ports', String(ports)],
    ['compiled RuleSpecs (total)', String(specs)],
    ['RuleSpecs per port (mean / max)', `${(specs / ports).toFixed(1)} / ${maxSpecs}`],
    ['keys per host (mean)', (keyCount / out.size).toFixed(1)],
    ['host config as JSON (mean of 20 hosts, KiB)', (bytes / 1024).toFixed(0)],
    ['heap used after (MiB)', (process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
}

main();
