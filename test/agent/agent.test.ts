/**
 * Acceptance 1 of issue #7: config -> tables -> keys with a fake dataplane.
 * The HostConfigs come from the controller's real translate(); the agent and
 * reconciler are the real ones. Each test is one behaviour an operator (or
 * a peer host) would notice.
 */
import type { InstalledSa } from '../../ts/agent/reconciler';
import { backoffDelay } from '../../ts/agent/controller-client';
import { SecurityLog } from '../../ts/agent/syslog';
import { FakeKeySource } from './fakes';
import { agentConfig, hostConfig, K1, K2, K3, makeAgent, response, SPI } from './helpers';

const opsOf = (ops: { op: string }[]) => ops.map((o) => o.op);

test('first config: ports opened, SAs installed before the tables that send with them, key copies wiped, ack lists the keys', async () => {
  const { agent, dp, keys } = makeAgent();
  const v = await agent.handleResponse(response(1, hostConfig([[K1, 'active']])));
  expect(v).toBe(1);
  expect(opsOf(dp.ops)).toEqual(['addPort', 'installSa', 'setTables']);
  // Local config knows the interfaces and the per-interface namespace; the controller's view is only the fallback.
  expect(dp.ports.get('vm1-nic0')).toEqual({ name: 'vm1-nic0', workloadIf: 'tap-vm1', networkIf: 'veth-vm1', networkNetns: 'hostnet' });
  const table = dp.tables.get('vm1-nic0')!;
  const web = table.rules.find((r) => r.action === 'encrypt')!;
  expect(web.txSpi).toBe(SPI[K1]);
  expect(dp.sas.get(SPI[K1]!)!.senderIds).toEqual(keys.issuedSenderIds);
  // Every key Buffer handed to the dataplane is zero-filled afterwards.
  expect(dp.keyBuffersSeen.length).toBe(1);
  for (const b of dp.keyBuffersSeen) expect(b.every((x) => x === 0)).toBe(true);
  expect(agent.ready).toBe(true);
  expect((agent as unknown as { pendingAck: unknown }).pendingAck).toEqual({ version: 1, installed_key_ids: [K1] });
});

test('rollover: new key installed receive-only, activation is the table swap, old key removed only when the controller drops it', async () => {
  const { agent, dp } = makeAgent();
  await agent.handleResponse(response(1, hostConfig([[K1, 'active']])));
  dp.ops.length = 0;

  // Phase 1: K2 published receive-only. Installed, but no table sends with it yet.
  await agent.handleResponse(response(2, hostConfig([[K1, 'active'], [K2, 'receive']])));
  expect(opsOf(dp.ops)).toEqual(['installSa', 'setTables']);
  expect(dp.ops[0]).toMatchObject({ op: 'installSa', spi: SPI[K2] });
  expect(dp.tables.get('vm1-nic0')!.rules.filter((r) => r.action === 'encrypt').map((r) => r.txSpi)).toEqual([SPI[K1]]);
  expect((agent as unknown as { pendingAck: { installed_key_ids: string[] } }).pendingAck.installed_key_ids).toEqual([K1, K2].sort());
  dp.ops.length = 0;

  // Phase 2: activation. No SA operation at all: the swap moves the senders.
  await agent.handleResponse(response(3, hostConfig([[K1, 'retiring'], [K2, 'active']])));
  expect(opsOf(dp.ops)).toEqual(['setTables']);
  expect(dp.tables.get('vm1-nic0')!.rules.filter((r) => r.action === 'encrypt').map((r) => r.txSpi)).toEqual([SPI[K2]]);
  expect(dp.sas.has(SPI[K1]!)).toBe(true); // still receiving during the rekey margin
  expect(agent.state.sas.get(SPI[K1]!)!.state).toBe('retiring');
  dp.ops.length = 0;

  // Phase 3: deactivation after the margin: tables first, then the SA goes.
  await agent.handleResponse(response(4, hostConfig([[K2, 'active']])));
  expect(opsOf(dp.ops)).toEqual(['setTables', 'removeSa']);
  expect(dp.ops[1]).toEqual({ op: 'removeSa', spi: SPI[K1] });
  expect([...dp.sas.keys()]).toEqual([SPI[K2]]);
  // A normal retirement is not a security event.
  expect(agent.syslog.stats.sent['key-revoked']).toBeUndefined();
});

test('revocation: a key the controller withdraws while active is removed at once and logged; it is never kept', async () => {
  const { agent, dp } = makeAgent();
  await agent.handleResponse(response(1, hostConfig([[K1, 'active']])));
  await agent.handleResponse(response(2, hostConfig([[K1, 'revoked'], [K2, 'receive']])));
  expect(dp.sas.has(SPI[K1]!)).toBe(false);
  expect(dp.sas.has(SPI[K2]!)).toBe(true);
  // No table may send with the revoked SPI any more: nothing active means txSpi 0 (the filter drops, never sends in clear).
  expect(dp.tables.get('vm1-nic0')!.rules.filter((r) => r.action === 'encrypt').map((r) => r.txSpi)).toEqual([0]);
  expect(agent.syslog.stats.sent['key-revoked']).toBe(1);
});

test('key manager unreachable: the version is not applied, nothing changes, the last good config keeps running; a retry applies it', async () => {
  const { agent, dp, keys } = makeAgent();
  await agent.handleResponse(response(1, hostConfig([[K1, 'active']])));
  dp.ops.length = 0;
  keys.unreachable = true;
  await expect(agent.handleResponse(response(2, hostConfig([[K1, 'active'], [K2, 'receive']])))).rejects.toThrow(/keys not available.*ECONNREFUSED/);
  expect(dp.ops).toEqual([]);
  expect(agent.version).toBe(1);
  expect(agent.counters.applyFailures).toBe(1);
  keys.unreachable = false;
  await expect(agent.handleResponse(response(2, hostConfig([[K1, 'active'], [K2, 'receive']])))).resolves.toBe(2);
  expect(dp.sas.has(SPI[K2]!)).toBe(true);
});

test('a key the key manager refuses (revoked) is not installed, and the refusal goes to syslog', async () => {
  const { agent, dp, keys } = makeAgent();
  await agent.handleResponse(response(1, hostConfig([[K1, 'active']])));
  keys.refused.add(K2);
  await expect(agent.handleResponse(response(2, hostConfig([[K1, 'active'], [K2, 'receive']])))).rejects.toThrow(/revoked/);
  expect(dp.sas.has(SPI[K2]!)).toBe(false);
  expect(agent.syslog.stats.sent['key-fetch-refused']).toBe(1);
});

test('a port that cannot be opened undoes the whole apply: the SAs it installed are removed, the old tables stay', async () => {
  const { agent, dp } = makeAgent();
  dp.failAddPort.add('vm1-nic0');
  await expect(agent.handleResponse(response(1, hostConfig([[K1, 'active']])))).rejects.toThrow(/No such device/);
  expect(dp.sas.size).toBe(0);
  expect(dp.tables.size).toBe(0);
  expect(agent.state.sas.size).toBe(0);
  expect(agent.ready).toBe(false);
  dp.failAddPort.clear();
  await agent.handleResponse(response(1, hostConfig([[K1, 'active']])));
  expect(agent.ready).toBe(true);
});

test('a config for another host is refused', async () => {
  const { agent, dp } = makeAgent();
  await expect(agent.handleResponse(response(1, hostConfig([[K1, 'active']], 'h2')))).rejects.toThrow(/for host "h2"/);
  expect(dp.ops).toEqual([]);
});

test('only the last version of a batch is applied; an old version is not re-applied unless reset', async () => {
  const { agent, dp } = makeAgent();
  const r = response(1, hostConfig([[K1, 'active']]));
  r.versions.push({ ...response(2, hostConfig([[K1, 'active'], [K2, 'receive']])).versions[0]! });
  await agent.handleResponse(r);
  expect(agent.version).toBe(2);
  expect(dp.ops.filter((o) => o.op === 'setTables').length).toBe(1);
  dp.ops.length = 0;
  await agent.handleResponse(response(2, hostConfig([[K1, 'active'], [K2, 'receive']])));
  expect(dp.ops).toEqual([]);
  // reset: the controller lost state; a full replacement with whatever it has.
  await agent.handleResponse(response(1, hostConfig([[K3, 'active']]), true));
  expect(agent.version).toBe(1);
  expect([...dp.sas.keys()]).toEqual([SPI[K3]]);
});

test('expired key still in use: kept, reported to syslog (rate-limited) and in the metric view', async () => {
  let now = Date.parse('2030-01-01T00:00:00Z');
  const { agent, dp } = makeAgent({ now: () => now });
  await agent.handleResponse(response(1, hostConfig([[K1, 'active', '2030-01-01T00:10:00Z']])));
  await agent.checkKeys();
  expect(agent.expiredInUse()).toEqual([]);
  now += 11 * 60 * 1000;
  await agent.checkKeys();
  expect(agent.expiredInUse().map((s: InstalledSa) => s.keyId)).toEqual([K1]);
  expect(dp.sas.has(SPI[K1]!)).toBe(true);
  expect(agent.syslog.stats.sent['key-expired-in-use']).toBe(1);
  expect(agent.status().keys_expired_in_use).toEqual([{ key_id: K1, key_policy: 'kp-enc', spi: SPI[K1], not_after: '2030-01-01T00:10:00Z' }]);
});

test('sender counter low: fresh sender IDs are swapped into the installed SA in place (no remove, no re-install), never IDs used before', async () => {
  const { agent, dp, keys } = makeAgent();
  await agent.handleResponse(response(1, hostConfig([[K1, 'active']])));
  const before = [...dp.sas.get(SPI[K1]!)!.senderIds];
  const handedOut: Buffer[] = [];
  const release = keys.release.bind(keys);
  keys.release = async (ids: string[]) => {
    const m = await release(ids);
    for (const k of m.values()) handedOut.push(k.key, k.salt);
    return m;
  };
  dp.saCounters.set(SPI[K1]!, { sendersLow: 1n, sealedPackets: 1000n });
  dp.ops.length = 0;
  await agent.checkKeys();
  // The SA never leaves the dataplane: no window where its packets are dropped or its replay state is lost.
  expect(dp.ops).toEqual([{ op: 'replaceSenders', spi: SPI[K1], senderIds: dp.sas.get(SPI[K1]!)!.senderIds }]);
  const after = dp.sas.get(SPI[K1]!)!.senderIds;
  expect(after).toHaveLength(2);
  expect(after.some((id) => before.includes(id))).toBe(false);
  expect(agent.state.sas.get(SPI[K1]!)!.senderIds).toEqual(after);
  expect(keys.releases.at(-1)).toEqual([K1]);
  expect(agent.counters.senderRenewals).toBe(1);
  expect(agent.state.sas.get(SPI[K1]!)!.senderRenewals).toBe(1);
  expect(agent.syslog.stats.sent['sender-ids-renewed']).toBe(1);
  // The filter's counters go on across the renewal and are not counted twice in the report.
  expect(agent.statsReport().key_policies.find((k) => k.key_policy_id === 'kp-enc')!.packets_encrypted).toBe(1000);
  // The released key copy is wiped at once: the renewal needs only the sender IDs.
  expect(handedOut).toHaveLength(2);
  for (const b of handedOut) expect(b.equals(Buffer.alloc(b.length))).toBe(true);
  // Once switched, the workers are no longer low: the next check does nothing.
  dp.ops.length = 0;
  await agent.checkKeys();
  expect(dp.ops).toEqual([]);
  expect(agent.counters.senderRenewals).toBe(1);
});

test('sender renewal refused by the filter (IDs already used with the SA): the SA keeps its senders and stays installed; the next check tries again', async () => {
  const { agent, dp, keys, lines } = makeAgent();
  await agent.handleResponse(response(1, hostConfig([[K1, 'active']])));
  const before = [...dp.sas.get(SPI[K1]!)!.senderIds];
  const release = keys.release.bind(keys);
  // A key manager that hands back IDs this SA already used would make IVs repeat under its key.
  keys.release = async (ids: string[]) => {
    const m = await release(ids);
    m.get(K1)!.senderIds = [...before];
    return m;
  };
  dp.saCounters.set(SPI[K1]!, { sendersLow: 1n });
  dp.ops.length = 0;
  await agent.checkKeys();
  expect(dp.ops).toEqual([]);
  expect(dp.sas.get(SPI[K1]!)!.senderIds).toEqual(before);
  expect(agent.state.sas.get(SPI[K1]!)!.senderIds).toEqual(before);
  expect(agent.counters.senderRenewals).toBe(0);
  expect(agent.syslog.stats.sent['sender-ids-renewed']).toBeUndefined();
  expect(lines.join('')).toMatch(/already used with this SA/);
  // With a sound release the next check renews.
  keys.release = release;
  await agent.checkKeys();
  expect(opsOf(dp.ops)).toEqual(['replaceSenders']);
  expect(agent.counters.senderRenewals).toBe(1);
});

test('restart: a new agent process gets fresh sender IDs for the same key (no counter space reused) and a new boot_id', async () => {
  const keys = new FakeKeySource(2);
  const a = makeAgent({ keys });
  await a.agent.handleResponse(response(1, hostConfig([[K1, 'active']])));
  const first = [...a.dp.sas.get(SPI[K1]!)!.senderIds];
  const b = makeAgent({ keys });
  await b.agent.handleResponse(response(1, hostConfig([[K1, 'active']])));
  const second = b.dp.sas.get(SPI[K1]!)!.senderIds;
  expect(second.some((id) => first.includes(id))).toBe(false);
  expect(b.agent.bootId).not.toBe(a.agent.bootId);
});

test('ICV-failure and replay bursts above the threshold become security events; small counts do not', async () => {
  const { agent, dp } = makeAgent({ cfg: agentConfig({ burstThreshold: 50 }) });
  await agent.handleResponse(response(1, hostConfig([[K1, 'active']])));
  await agent.checkKeys();
  dp.hostDrops.icv_failure = 10n;
  await agent.checkKeys();
  expect(agent.syslog.stats.sent['icv-failure-burst']).toBeUndefined();
  dp.hostDrops.icv_failure = 200n;
  dp.hostDrops.replay = 75n;
  await agent.checkKeys();
  expect(agent.syslog.stats.sent['icv-failure-burst']).toBe(1);
  expect(agent.syslog.stats.sent['replay-burst']).toBe(1);
});

test('stats report: per rule (by policy rule id), per key policy, host drops; cumulative across a rotation', async () => {
  const { agent, dp } = makeAgent();
  await agent.handleResponse(response(1, hostConfig([[K1, 'active']])));
  const webId = agent.state.config!.rules.find((r) => r.id === 'web')!.ruleId;
  dp.ruleCounters.set(webId, { outPackets: 5n, outBytes: 500n, inPackets: 4n, inBytes: 400n });
  dp.saCounters.set(SPI[K1]!, { sealedPackets: 5n, sealedBytes: 600n, openedPackets: 4n, openedBytes: 480n, drops: { ...dp.saStats(SPI[K1]!)!.drops, replay: 2n } });
  dp.hostDrops.no_sa = 3n;
  await agent.handleResponse(response(2, hostConfig([[K1, 'retiring'], [K2, 'active']])));
  await agent.handleResponse(response(3, hostConfig([[K2, 'active']])));
  dp.saCounters.set(SPI[K2]!, { sealedPackets: 1n, sealedBytes: 100n });
  const r = agent.statsReport();
  expect(r.boot_id).toBe(agent.bootId);
  expect(r.config_version).toBe(3);
  expect(r.rules.find((x) => x.rule_id === 'web')).toEqual({ rule_id: 'web', packets_out: 5, bytes_out: 500, packets_in: 4, bytes_in: 400 });
  expect(r.key_policies).toEqual([
    { key_policy_id: 'kp-enc', packets_encrypted: 6, bytes_encrypted: 700, packets_decrypted: 4, bytes_decrypted: 480, packets_dropped: 2, dropped_by_reason: { replay: 2 } },
  ]);
  expect(r.drops).toEqual({ no_sa: 3 });
});

test('explain: the dataplane matcher names rule, key policy, SA and action for a flow', async () => {
  const { agent } = makeAgent();
  await agent.handleResponse(response(1, hostConfig([[K1, 'active']])));
  const e = agent.explain({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'tcp', sport: 40000, dport: 443 });
  expect(e.results).toEqual([
    expect.objectContaining({ port: 'vm1-nic0', direction: 'out', action: 'encrypt', rule_id: 'web', key_policy: 'kp-enc', tx_spi: SPI[K1], key_id: K1, key_state: 'active', default_action: false }),
  ]);
  const dns = agent.explain({ src: '10.0.0.2', dst: '10.0.0.1', protocol: 'udp', sport: 53, dport: 5353 });
  // A reply to vm1 from vm2's DNS port: the conversation rule covers it (DESIGN §2).
  expect(dns.results).toEqual([expect.objectContaining({ direction: 'in', action: 'allow', rule_id: 'dns' })]);
  const other = agent.explain({ src: 'fd00::1', dst: 'fd00::2', protocol: 'tcp', dport: 22 });
  expect(other.results).toEqual([expect.objectContaining({ action: 'allow', default_action: true, rule_id: null })]);
  expect(() => agent.explain({ src: '10.0.0.1', dst: 'fd00::2', protocol: 'tcp' })).toThrow(/same family/);
  expect(() => agent.explain({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'bogus' })).toThrow(/protocol must be/);
  // Ports out of range, or on a protocol without ports: named, never Node's own buffer error.
  expect(() => agent.explain({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'tcp', dport: 99999 })).toThrow(/^dport must be a port number \(0-65535\)$/);
  expect(() => agent.explain({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'udp', sport: -1 })).toThrow(/^sport must be a port number \(0-65535\)$/);
  expect(() => agent.explain({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'icmp', dport: 80 })).toThrow(/^dport applies only to protocols tcp, udp and sctp, not icmp$/);
});

test('syslog rate limit: per event kind, the rest counted and summarised in the next message', () => {
  let now = 0;
  const s = new SecurityLog({ target: 'off', appName: 'dne-agent', facility: 'authpriv', perMinute: 2 }, undefined, () => now);
  const ev = { kind: 'replay-burst' as const, severity: 'warning' as const, message: 'x' };
  expect([s.emit(ev), s.emit(ev), s.emit(ev), s.emit(ev)]).toEqual([true, true, false, false]);
  expect(s.emit({ ...ev, kind: 'key-revoked' })).toBe(true);
  now += 30_000; // one token back
  expect(s.emit(ev)).toBe(true);
  expect(s.stats).toEqual({ sent: { 'replay-burst': 3, 'key-revoked': 1 }, suppressed: { 'replay-burst': 2 }, errors: 0 });
});

test('retry backoff: exponential with full jitter, within [min, max]', () => {
  const o = { minMs: 500, maxMs: 30000 };
  expect(backoffDelay(0, { ...o, random: () => 0 })).toBe(500);
  expect(backoffDelay(0, { ...o, random: () => 1 })).toBe(500);
  expect(backoffDelay(3, { ...o, random: () => 1 })).toBe(4000);
  expect(backoffDelay(3, { ...o, random: () => 0.5 })).toBe(2250);
  expect(backoffDelay(40, { ...o, random: () => 1 })).toBe(30000);
  const seen = new Set(Array.from({ length: 50 }, () => backoffDelay(6, o)));
  expect(seen.size).toBeGreaterThan(10); // jittered: a fleet does not retry in lockstep
  for (const d of seen) expect(d >= 500 && d <= 30000).toBe(true);
});

test('reload (SIGHUP): a port whose interface changed in the YAML is reopened at once with the same table; another hostId is refused', async () => {
  const { agent, dp } = makeAgent();
  await agent.handleResponse(response(1, hostConfig([[K1, 'active']])));
  dp.ops.length = 0;
  const next = agentConfig();
  next.workloads[0]!.vnics[0]!.network_if = 'veth-vm1b';
  await agent.reloadWorkloads(next);
  expect(opsOf(dp.ops)).toEqual(['removePort', 'addPort', 'setTables']);
  expect(dp.ports.get('vm1-nic0')!.networkIf).toBe('veth-vm1b');
  expect(dp.sas.size).toBe(1); // keys untouched
  expect(agent.inventory().workloads[0]!.vnics[0]!.network_if).toBe('veth-vm1b');
  await expect(agent.reloadWorkloads(agentConfig({ hostId: 'h9' }))).rejects.toThrow(/hostId changed/);
});

test('reload (SIGHUP) naming an interface that does not exist: refused, the port stays open with its table, the running workloads are kept', async () => {
  const { agent, dp } = makeAgent();
  await agent.handleResponse(response(1, hostConfig([[K1, 'active']])));
  const table = dp.tables.get('vm1-nic0');
  expect(table).toBeDefined();
  dp.missingInterfaces.add('w1-nope');
  const next = agentConfig({ displayName: 'renamed' });
  next.workloads[0]!.vnics[0]!.workload_if = 'w1-nope';
  await expect(agent.reloadWorkloads(next)).rejects.toThrow(/port vm1-nic0: workload side: no interface named w1-nope; the running configuration is kept/);
  // The workload is still on the network: same interfaces, same table, keys untouched.
  expect(dp.ports.get('vm1-nic0')).toEqual({ name: 'vm1-nic0', workloadIf: 'tap-vm1', networkIf: 'veth-vm1', networkNetns: 'hostnet' });
  expect(dp.tables.get('vm1-nic0')).toEqual(table);
  expect(dp.sas.has(SPI[K1]!)).toBe(true);
  expect(agent.status().ports.map((p) => [p.name, p.workload_if, p.rules])).toEqual([['vm1-nic0', 'tap-vm1', table!.rules.length]]);
  // The refused file is not half-kept: inventory and the next controller version use the running workloads.
  expect(agent.inventory().display_name).toBe('h1');
  expect(agent.inventory().workloads[0]!.vnics[0]!.workload_if).toBe('tap-vm1');
  await agent.handleResponse(response(2, hostConfig([[K1, 'active'], [K2, 'receive']])));
  expect(agent.version).toBe(2);
  expect(dp.ports.get('vm1-nic0')!.workloadIf).toBe('tap-vm1');
  // A fixed file is taken.
  dp.missingInterfaces.clear();
  await agent.reloadWorkloads(next);
  expect(dp.ports.get('vm1-nic0')!.workloadIf).toBe('w1-nope');
});
