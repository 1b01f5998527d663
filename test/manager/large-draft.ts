/**
 * A large, valid draft written straight into a manager store (one
 * transaction), for the publish benchmark and the kill -9 test: N workloads
 * on H hosts, G groups by tag, S sections of R rules each. Shaped like a
 * fleet: every workload has an app tag (apps = groups), most rules join two
 * app groups on a TCP port, some use IP sets, "any", or a section key policy.
 */
import type { ManagerStore, StoredObject } from '../../ts/manager/store';
import { rng } from '../fixtures/prng';

export interface LargeDraftSize {
  workloads: number;
  hosts: number;
  groups: number;
  sections: number;
  rulesPerSection: number;
}

export const BENCH_SIZE: LargeDraftSize = { workloads: 10_000, hosts: 500, groups: 500, sections: 100, rulesPerSection: 20 };

export async function writeLargeDraft(store: ManagerStore, size: LargeDraftSize, seed = 5): Promise<void> {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const at = '2030-01-01T00:00:00.000Z';
  const sys = { _create_time: at, _create_user: 'bench', _last_modified_time: at, _last_modified_user: 'bench' };
  const obj = (kind: StoredObject['kind'], id: string, body: Record<string, unknown>, parent = '', pos = 0): StoredObject => ({ kind, id, parent, pos, revision: 0, body: { ...body, ...sys } });
  await store.write(async (tx) => {
    for (let i = 0; i < size.hosts; i++) await tx.put(obj('host', `host-${i}`, { display_name: `host ${i}` }));
    for (let i = 0; i < size.workloads; i++) {
      const id = `wl-${i}`;
      await tx.put(
        obj('workload', id, {
          display_name: id,
          host_id: `host-${i % size.hosts}`,
          vnics: [{ id: `${id}-n0`, mac: '02:00:00:00:00:01', ipv4: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`], ipv6: [], workload_if: `w${i}`, network_if: `n${i}` }],
          tags: [
            { scope: 'app', tag: `app-${i % size.groups}` },
            { scope: 'tier', tag: ['web', 'app', 'db'][i % 3]! },
          ],
          reported_tags: [],
        }),
      );
    }
    for (let g = 0; g < size.groups; g++) await tx.put(obj('group', `g-${g}`, { display_name: `app ${g}`, expressions: [{ scope: 'app', tag: `app-${g}` }], workload_ids: [], ip_set_ids: [] }));
    for (let s = 0; s < 20; s++) await tx.put(obj('ip_set', `ips-${s}`, { display_name: `ips ${s}`, ip_addresses: [`192.168.${s}.0/24`, `fd00:${s}::/64`] }));
    const kp = (id: string, type: string, isDefault: boolean) =>
      obj('key_policy', id, { display_name: id, encrypt_type: type, encrypt_algorithm: 'AES_GCM_128', rekey_frequency: 86400, lifetime: 172800, type: 'REGULAR', is_default: isDefault, replay_window: 4096 });
    await tx.put(kp('kp-default-enc', 'ENCRYPTION_AND_INTEGRITY', true));
    await tx.put(kp('kp-default-int', 'INTEGRITY_ONLY', true));
    for (let k = 0; k < 10; k++) await tx.put(kp(`kp-${k}`, 'ENCRYPTION_AND_INTEGRITY', false));
    for (let s = 0; s < size.sections; s++) {
      const sid = `sec-${s}`;
      await tx.put(obj('section', sid, { display_name: sid, disabled: false, applied_tos: [], ...(s % 10 === 9 ? { key_policy_identifier: `kp-${s % 10}` } : {}) }, '', s));
      for (let j = 0; j < size.rulesPerSection; j++) {
        const roll = int(100);
        const g = () => ({ target_type: 'NSGroup', target_id: `g-${int(size.groups)}` });
        const sources = roll < 3 ? [] : roll < 6 ? [{ target_type: 'IPSet', target_id: `ips-${int(20)}` }] : [g()];
        const destinations = [g()];
        const action = s % 10 === 9 ? 'ENCRYPT' : roll < 70 ? 'ENCRYPT' : roll < 85 ? 'INTEGRITY_ONLY' : 'ALLOW_IN_CLEAR';
        const rule: Record<string, unknown> = {
          display_name: `rule ${s}.${j}`,
          sources,
          destinations,
          services: roll % 4 === 0 ? [] : [{ protocol: 'TCP', destination_ports: [String(1000 + int(5000))] }],
          ip_protocol: 'IPV4_IPV6',
          applied_tos: [],
          action,
          logged: false,
          disabled: roll === 99,
        };
        if (action === 'ENCRYPT' && s % 10 !== 9 && roll < 20) rule.key_policy_identifier = `kp-${int(10)}`;
        await tx.put(obj('rule', `r-${s}-${j}`, rule, sid, j));
      }
    }
  });
}
