/**
 * Explain evaluates a flow on a revision reduced to the workloads the flow
 * can touch (explain.ts reduceForFlow). Randomized check that this gives the
 * verdict the controller's reference evaluator gives on the whole revision,
 * at the enforcing workload and anywhere.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Revision } from '../../ts/common/policy-model';
import { evaluateFlow, firstMatch } from '../../ts/controller/reference-evaluator';
import { explainFlow } from '../../ts/manager/explain';
import { ManagerService } from '../../ts/manager/service';
import { SqliteManagerStore } from '../../ts/manager/sqlite-store';
import { rng } from '../fixtures/prng';
import { tmpDir } from './helpers';
import { writeLargeDraft } from './large-draft';

test('reduced explain agrees with the reference evaluator on 300 random flows', async () => {
  const store = new SqliteManagerStore(`${tmpDir('explain')}/m.db`);
  await writeLargeDraft(store, { workloads: 240, hosts: 12, groups: 24, sections: 8, rulesPerSection: 12 }, 11);
  const service = new ManagerService(store, { autoPublishInventory: true }, pino({ level: 'silent' }, new Writable({ write: (_c, _e, cb) => cb() })));
  const { rev } = await service.publish('test');
  await store.close();
  const r = rng(3);
  const int = (n: number) => Math.floor(r() * n);
  const addr = (w: Revision['workloads'][number]) => w.vnics[0]!.ipv4[0]!;
  let matched = 0;
  for (let i = 0; i < 300; i++) {
    const a = rev.workloads[int(rev.workloads.length)]!;
    const b = rev.workloads[int(rev.workloads.length)]!;
    const dst = int(10) === 0 ? `192.168.${int(20)}.${1 + int(200)}` : addr(b);
    const protocol = [6, 17, 1][int(3)]!;
    const flow = { src: addr(a), dst, protocol, sport: protocol === 1 ? undefined : 30000 + int(1000), dport: protocol === 1 ? undefined : 1000 + int(5000) };
    const at = int(4) === 0 ? undefined : int(2) ? a.id : b.id;
    const got = explainFlow(rev, rev.revision, {
      ...(at === undefined ? {} : { workload_id: at }),
      source_ip: flow.src,
      destination_ip: flow.dst,
      protocol,
      ...(flow.sport === undefined ? {} : { source_port: flow.sport, destination_port: flow.dport }),
    });
    const want = evaluateFlow(rev, flow, at);
    expect({ rule: got.rule_id, kp: got.key_policy_id, action: got.action }).toEqual({
      rule: want.ruleId,
      kp: want.keyPolicyId,
      action: { encrypt: 'ENCRYPT', integrity: 'INTEGRITY_ONLY', allow: 'ALLOW_IN_CLEAR', drop: 'DROP' }[want.action],
    });
    const anywhere = firstMatch(rev, flow);
    expect(got.first_match_elsewhere?.rule_id ?? got.rule_id).toBe(anywhere?.rule.id ?? null);
    if (got.rule_id) matched++;
  }
  // The flows exercise rules, not only the default.
  expect(matched).toBeGreaterThan(30);
}, 120_000);
