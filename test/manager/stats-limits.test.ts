/**
 * What a host may put in a stats report (security review): counters are
 * integers 0..2^53-1, rule and key policy ids must have been published, and
 * only a host's latest two agent starts (boot_id) are kept, so a host cannot
 * grow the database without bound or make totals unreadable. Host reports
 * need a host certificate (HTTPS); admin reads go through app.inject.
 */
import type { StatsReport } from '../../ts/common/contracts';
import { MANAGER_API } from '../../ts/common/contracts';
import { client, closeAgents, makePki, TestPki } from '../keymanager/helpers';
import { harness, Harness, ok, ref, seed, storeDigest } from './helpers';

const A = MANAGER_API;
let pki: TestPki;
let h: Harness;
let post: (r: unknown) => Promise<{ status: number; body: any }>; // eslint-disable-line @typescript-eslint/no-explicit-any

beforeAll(async () => {
  pki = await makePki();
  h = await harness({ tls: { cert: pki.creds['manager/m1']!.cert, key: pki.creds['manager/m1']!.key, ca: pki.ca } });
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = h.app.server.address();
  const h1 = client(typeof addr === 'object' && addr ? addr.port : 0, pki, 'host/h1');
  post = (r) => h1('POST', `${A}/agent/hosts/h1/stats`, r);
  await seed(h);
}, 60_000);
afterAll(async () => {
  closeAgents();
  await h.close();
});

function report(boot: string, n: number, o: { rule?: string; kp?: string; at?: string } = {}): StatsReport {
  return {
    boot_id: boot,
    at: o.at ?? '2030-01-01T00:00:00Z',
    config_version: 1,
    revision: 1,
    rules: [{ rule_id: o.rule ?? 'r1', packets_in: n, bytes_in: n, packets_out: n, bytes_out: n }],
    key_policies: [{ key_policy_id: o.kp ?? 'kp-enc', packets_encrypted: n, bytes_encrypted: n, packets_decrypted: n, bytes_decrypted: n, packets_dropped: 0, dropped_by_reason: {} }],
    drops: {},
  };
}

test('rule and key policy ids must have been published; retired ones still count', async () => {
  let before = await storeDigest(h);
  const early = await post(report('b0', 1));
  expect(early.status).toBe(400);
  expect(early.body.message).toBe('body/rules names rule ids that no published revision holds: "r1"');
  expect(await storeDigest(h)).toBe(before);

  ok(await h.req('POST', '/sections', { id: 's', display_name: 's' }), 201);
  ok(await h.req('POST', '/sections/s/rules', { id: 'r1', display_name: 'r1', sources: [ref('NSGroup', 'web')], action: 'ENCRYPT' }), 201);
  ok(await h.req('POST', '/publish', {}), 201);
  before = await storeDigest(h);
  const invented = await post({ ...report('b0', 1), rules: [...report('b0', 1).rules, { rule_id: 'zz-1', packets_in: 1, bytes_in: 1, packets_out: 1, bytes_out: 1 }] });
  expect(invented.status).toBe(400);
  expect(invented.body.message).toBe('body/rules names rule ids that no published revision holds: "zz-1"');
  const kp = await post(report('b0', 1, { kp: 'kp-nope' }));
  expect(kp.status).toBe(400);
  expect(kp.body.message).toBe('body/key_policies names key policy ids that no published revision holds: "kp-nope"');
  expect(await storeDigest(h)).toBe(before);
  expect((await post(report('b0', 1))).status).toBe(204);

  // r1 is removed and the policy republished: an agent still reporting r1's cumulative counters is accepted.
  ok(await h.req('POST', '/sections/s/rules', { id: 'r2', display_name: 'r2', sources: [ref('NSGroup', 'db')], action: 'ENCRYPT' }), 201);
  expect((await h.req('DELETE', '/sections/s/rules/r1')).status).toBe(204);
  ok(await h.req('POST', '/publish', {}), 201);
  expect((await post(report('b0', 2))).status).toBe(204);
  expect(ok(await h.req('GET', '/key-policies/kp-enc/stats')).packets_encrypted).toBe(2);
});

test('counters are integers from 0 to 2^53-1', async () => {
  const before = await storeDigest(h);
  for (const [value, field] of [
    [1e308, 'rules/0/packets_in'],
    [2 ** 53, 'rules/0/packets_in'],
    [1.5, 'rules/0/packets_in'],
  ] as const) {
    const r = report('b0', 1);
    r.rules[0]!.packets_in = value;
    const res = await post(r);
    expect([value, res.status]).toEqual([value, 400]);
    expect(res.body.message).toMatch(new RegExp(`^body/${field} must be`));
  }
  const big = report('b0', 1);
  big.key_policies[0]!.dropped_by_reason = { replay: 1e308 };
  expect((await post(big)).status).toBe(400);
  const junkReason = report('b0', 1);
  junkReason.drops = { 'not a reason!': 1 };
  const j = await post(junkReason);
  expect(j.status).toBe(400);
  expect(await storeDigest(h)).toBe(before);

  const max = report('b0', Number.MAX_SAFE_INTEGER);
  max.rules[0]!.rule_id = 'r2';
  expect((await post(max)).status).toBe(204);
  const s = ok(await h.req('GET', '/sections/s/rules/r2/stats'));
  expect(s.packets_in).toBe(Number.MAX_SAFE_INTEGER);
});

test("only a host's latest two agent starts are kept", async () => {
  for (const [i, boot] of ['c1', 'c2', 'c3', 'c4'].entries()) {
    expect((await post(report(boot, 10 ** i, { rule: 'r2', at: `2030-01-02T00:0${i}:00Z` }))).status).toBe(204);
  }
  const boots = await h.store.read(async (tx) => (await tx.listStats()).filter((r) => r.host_id === 'h1').map((r) => r.boot_id));
  expect(boots.sort()).toEqual(['c3', 'c4']);
  // Totals: the two kept boots only (100 + 1000).
  expect(ok(await h.req('GET', '/key-policies/kp-enc/stats')).packets_encrypted).toBe(1100);
});
