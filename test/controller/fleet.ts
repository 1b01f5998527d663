/**
 * A fleet-shaped revision for the controller service tests and the ack
 * benchmark: `n` hosts with one workload each; every workload is in group
 * "all" (ENCRYPT among themselves on `ports`, default key policy kp-enc),
 * the first `small` workloads are also in group "small" (ENCRYPT on 5432 with
 * key policy kp-small), so only those hosts need kp-small's keys.
 */
import type { Revision } from '../../ts/common/policy-model';
import { group, keyPolicy, ref, rule, section, workload } from './model-builders';

export const hostName = (i: number): string => `h${String(i).padStart(4, '0')}`;

export function fleetRevision(n: number, revNo: number, o: { ports?: string[]; small?: number; rekeyMargin?: number; smallPolicy?: Partial<Parameters<typeof keyPolicy>[1]> } = {}): Revision {
  const small = o.small ?? 10;
  const workloads = Array.from({ length: n }, (_, i) =>
    workload(`w${i}`, hostName(i), [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${(i & 255) + 0}`].map((a) => a.replace(/\.0$/, '.250')), {
      tags: i < small ? [['env', 'prod'], ['app', 'small']] : [['env', 'prod']],
    }),
  );
  return {
    revision: revNo,
    published_at: new Date().toISOString(),
    config: { rekey_margin: o.rekeyMargin ?? 300, default_action: 'ALLOW_IN_CLEAR' },
    hosts: Array.from({ length: n }, (_, i) => ({ id: hostName(i), display_name: hostName(i) })),
    workloads,
    groups: [group('all', { expressions: [{ scope: 'env', tag: 'prod' }] }), group('small', { expressions: [{ scope: 'app', tag: 'small' }] })],
    ip_sets: [],
    key_policies: [
      keyPolicy('kp-enc', { is_default: true }),
      keyPolicy('kp-int', { encrypt_type: 'INTEGRITY_ONLY', is_default: true, replay_window: 1024 }),
      keyPolicy('kp-small', { ...o.smallPolicy }),
    ],
    sections: [
      section('s1', [
        rule('r-small', { sources: [ref.group('small')], destinations: [ref.group('small')], services: [{ protocol: 'TCP', destination_ports: ['5432'] }], key_policy_identifier: 'kp-small' }),
        rule('r-all', { sources: [ref.group('all')], destinations: [ref.group('all')], services: [{ protocol: 'TCP', destination_ports: o.ports ?? ['443'] }] }),
      ]),
    ],
  };
}
