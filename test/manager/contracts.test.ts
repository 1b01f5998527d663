/**
 * The manager's TypeBox schemas agree with the wire contracts in
 * ts/common/contracts.ts: what an agent or controller built against the
 * contract sends is accepted, and what the manager answers is what they read.
 * The type assertions fail the compile (ts-jest type-checks) when they drift.
 */
import type { Static } from '@sinclair/typebox';
import { FormatRegistry } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import * as net from 'node:net';
import type { FeedResponse as FeedContract, InventoryReport, StatsReport } from '../../ts/common/contracts';
import { FeedResponse, InventoryBody, StatsBody } from '../../ts/manager/schemas';

type Assignable<A, B> = [A] extends [B] ? true : false;
const inventoryBothWays: [Assignable<Static<typeof InventoryBody>, InventoryReport>, Assignable<InventoryReport, Static<typeof InventoryBody>>] = [true, true];
const statsBothWays: [Assignable<Static<typeof StatsBody>, StatsReport>, Assignable<StatsReport, Static<typeof StatsBody>>] = [true, true];
const feedReadable: Assignable<Static<typeof FeedResponse>['latest_seq'], FeedContract['latest_seq']> = true;

// TypeBox's checker knows no formats by itself (fastify's Ajv brings its own).
FormatRegistry.Set('ipv4', (v) => net.isIPv4(v));
FormatRegistry.Set('ipv6', (v) => net.isIPv6(v));
FormatRegistry.Set('date-time', (v) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(v));

test('contract-shaped reports validate against the manager schemas', () => {
  expect([inventoryBothWays, statsBothWays, feedReadable]).toEqual([[true, true], [true, true], true]);
  const inv: InventoryReport = {
    display_name: 'h1',
    workloads: [{ id: 'w1', display_name: 'w1', tags: [{ scope: 'a', tag: 'b' }], vnics: [{ id: 'v', mac: '02:00:00:00:00:01', ipv4: ['10.0.0.1'], ipv6: ['fd00::1'], workload_if: 'tap0', network_if: 'veth0', netns: 'ns1' }] }],
  };
  expect(Value.Check(InventoryBody, inv)).toBe(true);
  const stats: StatsReport = {
    boot_id: 'b',
    at: '2030-01-01T00:00:00Z',
    config_version: 1,
    revision: 1,
    rules: [{ rule_id: 'r', packets_in: 1, bytes_in: 2, packets_out: 3, bytes_out: 4 }],
    key_policies: [{ key_policy_id: 'k', packets_encrypted: 1, bytes_encrypted: 2, packets_decrypted: 3, bytes_decrypted: 4, packets_dropped: 1, dropped_by_reason: { replay: 1 } }],
    drops: { no_sa: 2 },
  };
  expect(Value.Check(StatsBody, stats)).toBe(true);
});
