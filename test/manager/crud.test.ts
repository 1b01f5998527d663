/**
 * Acceptance 1: every resource through app.inject — create, read, update,
 * delete, list — with `_revision` and the audit trail; ordering of sections
 * and rules (insert top/bottom/before/after, revise); first-match semantics
 * checked through explain.
 */
import { harness, Harness, ok, ref, seed, vnic } from './helpers';

let h: Harness;
beforeEach(async () => {
  h = await harness();
  await seed(h);
});
afterEach(() => h.close());

interface Case {
  path: string;
  create: Record<string, unknown>;
  change: Record<string, unknown>;
}

const CASES: Case[] = [
  { path: '/key-managers', create: { id: 'km1', display_name: 'km one', url: 'https://km1.example:8443' }, change: { display_name: 'km uno', url: 'https://km1.example:9443' } },
  {
    path: '/key-policies',
    create: { id: 'kp-x', display_name: 'x', encrypt_algorithm: 'AES_GCM_256', rekey_frequency: 3600, lifetime: 7200 },
    change: { display_name: 'x2', encrypt_algorithm: 'AES_GCM_256', rekey_frequency: 600, lifetime: 7200, replay_window: 8192 },
  },
  { path: '/groups', create: { id: 'g-x', display_name: 'g', expressions: [{ tag: 'web' }], ip_set_ids: ['mgmt'] }, change: { display_name: 'g2', workload_ids: ['db1'] } },
  { path: '/ip-sets', create: { id: 'ips-x', display_name: 'ips', ip_addresses: ['10.9.0.0/16', 'fd00:9::/64'] }, change: { display_name: 'ips2', ip_addresses: ['10.10.0.1'] } },
  { path: '/hosts', create: { id: 'h9', display_name: 'host 9' }, change: { display_name: 'host nine' } },
  {
    path: '/workloads',
    create: { id: 'w9', display_name: 'w9', host_id: 'h1', vnics: [vnic('w9-n0', ['10.0.9.9'])], tags: [{ scope: 'tier', tag: 'web' }] },
    change: { display_name: 'w9', host_id: 'h2', vnics: [vnic('w9-n0', ['10.0.9.10'])], tags: [] },
  },
];

describe.each(CASES)('$path', (c) => {
  test('create, read, list, update with _revision, delete', async () => {
    const before = ok(await h.req('GET', c.path)).result_count as number;
    const created = ok(await h.req('POST', c.path, c.create), 201);
    expect(created).toMatchObject({ ...c.create, id: c.create.id, _revision: 0, _create_user: 'token:ops' });
    expect(ok(await h.req('GET', `${c.path}/${String(c.create.id)}`))).toEqual(created);
    const list = ok(await h.req('GET', c.path));
    expect(list.result_count).toBe(before + 1);
    expect(list.results.map((o: { id: string }) => o.id)).toContain(c.create.id);

    const updated = ok(await h.req('PUT', `${c.path}/${String(c.create.id)}`, { ...c.change, _revision: 0 }));
    expect(updated).toMatchObject({ ...c.change, _revision: 1, _create_time: created._create_time });
    // The same _revision again is stale now.
    const stale = await h.req('PUT', `${c.path}/${String(c.create.id)}`, { ...c.change, _revision: 0 });
    expect(stale.status).toBe(409);
    expect(stale.body.message).toMatch(/_revision 0 is stale: .* is at _revision 1/);

    expect((await h.req('DELETE', `${c.path}/${String(c.create.id)}`)).status).toBe(204);
    const gone = await h.req('GET', `${c.path}/${String(c.create.id)}`);
    expect(gone.status).toBe(404);
    expect(gone.body.message).toMatch(new RegExp(`"${String(c.create.id)}" does not exist`));
    expect(ok(await h.req('GET', c.path)).result_count).toBe(before);

    const audit = ok(await h.req('GET', '/audit?limit=1000')).results.filter((e: { object_id: string }) => e.object_id === c.create.id);
    expect(audit.map((e: { action: string }) => e.action)).toEqual(['create', 'update', 'delete']);
    expect(audit[1].before._revision).toBe(0);
    expect(audit[1].after._revision).toBe(1);
    expect(audit[2].after).toBeNull();
    expect(audit.every((e: { actor: string }) => e.actor === 'token:ops')).toBe(true);
  });
});

test('a server-generated id is a UUID', async () => {
  const o = ok(await h.req('POST', '/ip-sets', { display_name: 'anon', ip_addresses: ['10.1.1.1'] }), 201);
  expect(o.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  expect(o.resource_type).toBe('DneIPSet');
});

test('global config: defaults, update with _revision, stale refused', async () => {
  const c = ok(await h.req('GET', '/config'));
  expect(c).toMatchObject({ rekey_margin: 3600, default_action: 'ALLOW_IN_CLEAR', _revision: 0 });
  const u = ok(await h.req('PUT', '/config', { rekey_margin: 120, default_action: 'DROP', _revision: 0 }));
  expect(u).toMatchObject({ rekey_margin: 120, default_action: 'DROP', _revision: 1 });
  expect((await h.req('PUT', '/config', { rekey_margin: 5, default_action: 'DROP', _revision: 0 })).status).toBe(409);
  expect(ok(await h.req('GET', '/config'))).toMatchObject({ rekey_margin: 120, _revision: 1 });
});

const ids = async (url: string): Promise<string[]> => ok(await h.req('GET', url)).results.map((o: { id: string }) => o.id);

test('sections: create at top/bottom/before/after, revise to move, enable/disable, delete takes the rules', async () => {
  ok(await h.req('POST', '/sections', { id: 'a', display_name: 'A' }), 201);
  ok(await h.req('POST', '/sections', { id: 'b', display_name: 'B' }), 201);
  ok(await h.req('POST', '/sections?operation=insert_top', { id: 'top', display_name: 'top' }), 201);
  ok(await h.req('POST', '/sections?operation=insert_before&id=b', { id: 'beforeb', display_name: 'x' }), 201);
  ok(await h.req('POST', '/sections?operation=insert_after&id=top', { id: 'aftertop', display_name: 'x' }), 201);
  expect(await ids('/sections')).toEqual(['top', 'aftertop', 'a', 'beforeb', 'b']);

  const moved = ok(await h.req('POST', '/sections/b?action=revise&operation=insert_top'));
  expect(moved._revision).toBe(1);
  expect(await ids('/sections')).toEqual(['b', 'top', 'aftertop', 'a', 'beforeb']);
  ok(await h.req('POST', '/sections/b?action=revise&operation=insert_after&id=a'));
  expect(await ids('/sections')).toEqual(['top', 'aftertop', 'a', 'b', 'beforeb']);
  ok(await h.req('POST', '/sections/top?action=revise&operation=insert_bottom'));
  expect(await ids('/sections')).toEqual(['aftertop', 'a', 'b', 'beforeb', 'top']);

  const s = ok(await h.req('GET', '/sections/a'));
  const dis = ok(await h.req('PUT', '/sections/a', { display_name: 'A', disabled: true, key_policy_identifier: 'kp-enc', applied_tos: [ref('NSGroup', 'web')], _revision: s._revision }));
  expect(dis).toMatchObject({ disabled: true, key_policy_identifier: 'kp-enc', rule_count: 0 });

  const withRules = ok(
    await h.req('POST', '/sections?action=create_with_rules&operation=insert_before&id=a', {
      id: 'wr',
      display_name: 'with rules',
      rules: [
        { id: 'wr1', display_name: 'one', action: 'ALLOW_IN_CLEAR' },
        { id: 'wr2', display_name: 'two', action: 'ENCRYPT', sources: [ref('NSGroup', 'web')] },
      ],
    }),
    201,
  );
  expect(withRules.rules.map((r: { id: string; section_id: string }) => [r.id, r.section_id])).toEqual([
    ['wr1', 'wr'],
    ['wr2', 'wr'],
  ]);
  expect(withRules.rule_count).toBe(2);
  expect(await ids('/sections')).toEqual(['aftertop', 'wr', 'a', 'b', 'beforeb', 'top']);
  expect(await ids('/sections/wr/rules')).toEqual(['wr1', 'wr2']);

  expect((await h.req('DELETE', '/sections/wr')).status).toBe(204);
  expect((await h.req('GET', '/sections/wr/rules/wr1')).status).toBe(404);
  expect(await ids('/sections')).toEqual(['aftertop', 'a', 'b', 'beforeb', 'top']);
});

test('rules: CRUD under a section, ordering, revise within the section', async () => {
  ok(await h.req('POST', '/sections', { id: 's', display_name: 'S' }), 201);
  const r1 = ok(
    await h.req('POST', '/sections/s/rules', {
      id: 'r1',
      display_name: 'web to db',
      sources: [ref('NSGroup', 'web')],
      destinations: [ref('NSGroup', 'db')],
      services: [{ protocol: 'TCP', destination_ports: ['5432', '6000-6010'] }],
      ip_protocol: 'IPV4',
      applied_tos: [ref('Workload', 'web1')],
      key_policy_identifier: 'kp-enc',
      action: 'ENCRYPT',
      logged: true,
      rule_tag: 'pci',
      notes: 'card data',
    }),
    201,
  );
  expect(r1).toMatchObject({ id: 'r1', section_id: 's', _revision: 0, logged: true, rule_tag: 'pci', disabled: false });
  ok(await h.req('POST', '/sections/s/rules', { id: 'r2', display_name: 'two', action: 'ALLOW_IN_CLEAR' }), 201);
  ok(await h.req('POST', '/sections/s/rules?operation=insert_top', { id: 'r0', display_name: 'zero', action: 'ALLOW_IN_CLEAR' }), 201);
  ok(await h.req('POST', '/sections/s/rules?operation=insert_after&id=r1', { id: 'r1b', display_name: 'x', action: 'ALLOW_IN_CLEAR' }), 201);
  ok(await h.req('POST', '/sections/s/rules?operation=insert_before&id=r0', { id: 'first', display_name: 'x', action: 'ALLOW_IN_CLEAR' }), 201);
  expect(await ids('/sections/s/rules')).toEqual(['first', 'r0', 'r1', 'r1b', 'r2']);
  ok(await h.req('POST', '/sections/s/rules/r2?action=revise&operation=insert_before&id=r1'));
  expect(await ids('/sections/s/rules')).toEqual(['first', 'r0', 'r2', 'r1', 'r1b']);

  expect(ok(await h.req('GET', '/sections/s/rules/r1'))).toEqual(r1);
  const u = ok(await h.req('PUT', '/sections/s/rules/r1', { ...r1, id: undefined, section_id: undefined, resource_type: undefined, _create_time: undefined, _create_user: undefined, _last_modified_time: undefined, _last_modified_user: undefined, disabled: true }));
  expect(u).toMatchObject({ disabled: true, _revision: 1 });
  expect(ok(await h.req('GET', '/sections/s')).rule_count).toBe(5);
  // Rule ids are unique across sections.
  ok(await h.req('POST', '/sections', { id: 't', display_name: 'T' }), 201);
  const dup = await h.req('POST', '/sections/t/rules', { id: 'r1', display_name: 'dup', action: 'ALLOW_IN_CLEAR' });
  expect(dup.status).toBe(409);
  expect(dup.body.message).toBe('rule "r1" already exists (rule ids are unique across sections)');
  // A rule is addressed under its own section only.
  expect((await h.req('GET', '/sections/t/rules/r1')).status).toBe(404);
  expect((await h.req('DELETE', '/sections/t/rules/r1')).body.message).toBe('rule "r1" does not exist in section "t"');
  expect((await h.req('DELETE', '/sections/s/rules/r1')).status).toBe(204);
  expect(await ids('/sections/s/rules')).toEqual(['first', 'r0', 'r2', 'r1b']);
  expect(ok(await h.req('GET', '/key-policies/kp-enc/rules')).result_count).toBe(0);
});

test('key policy /rules lists the rules whose effective key policy it is', async () => {
  ok(await h.req('POST', '/sections', { id: 's', display_name: 'S' }), 201);
  ok(await h.req('POST', '/sections', { id: 't', display_name: 'T', key_policy_identifier: 'kp-enc' }), 201);
  ok(await h.req('POST', '/sections/s/rules', { id: 'own', display_name: 'x', action: 'ENCRYPT', key_policy_identifier: 'kp-enc' }), 201);
  ok(await h.req('POST', '/sections/s/rules', { id: 'other', display_name: 'x', action: 'INTEGRITY_ONLY', key_policy_identifier: 'kp-int' }), 201);
  ok(await h.req('POST', '/sections/t/rules', { id: 'viasection', display_name: 'x', action: 'ENCRYPT' }), 201);
  expect(await ids('/key-policies/kp-enc/rules')).toEqual(['own', 'viasection']);
  expect(await ids('/key-policies/kp-int/rules')).toEqual(['other']);
});

describe('first match through explain', () => {
  const flow = { source_ip: '10.0.0.1', destination_ip: '10.0.1.1', protocol: 'TCP', source_port: 40000, destination_port: 5432 };
  const explain = async (extra: Record<string, unknown> = {}) => ok(await h.req('POST', '/explain', { workload_id: 'web1', ...flow, ...extra }));

  beforeEach(async () => {
    ok(await h.req('POST', '/sections', { id: 's1', display_name: 'first' }), 201);
    ok(await h.req('POST', '/sections', { id: 's2', display_name: 'second' }), 201);
    ok(await h.req('POST', '/sections/s1/rules', { id: 'integrity', display_name: 'integrity', sources: [ref('NSGroup', 'web')], destinations: [ref('NSGroup', 'db')], action: 'INTEGRITY_ONLY', key_policy_identifier: 'kp-int' }), 201);
    ok(await h.req('POST', '/sections/s2/rules', { id: 'encrypt', display_name: 'encrypt', sources: [ref('NSGroup', 'web')], destinations: [ref('NSGroup', 'db')], services: [{ protocol: 'TCP', destination_ports: ['5432'] }], action: 'ENCRYPT' }), 201);
  });

  test('the earlier section wins; moving sections and disabling rules changes the answer', async () => {
    expect(await explain()).toMatchObject({ section_id: 's1', rule_id: 'integrity', action: 'INTEGRITY_ONLY', key_policy_id: 'kp-int', matched: true });
    ok(await h.req('POST', '/sections/s2?action=revise&operation=insert_top'));
    expect(await explain()).toMatchObject({ section_id: 's2', rule_id: 'encrypt', action: 'ENCRYPT', key_policy_id: 'kp-enc' });
    // Another port: the rule matches only tcp/5432, so the s1 rule applies.
    expect(await explain({ destination_port: 80 })).toMatchObject({ rule_id: 'integrity' });
    // The reply direction of the conversation matches the same rule (DESIGN §2).
    expect(await explain({ source_ip: '10.0.1.1', destination_ip: '10.0.0.1', source_port: 5432, destination_port: 40000 })).toMatchObject({ rule_id: 'encrypt' });
    const s2 = ok(await h.req('GET', '/sections/s2'));
    ok(await h.req('PUT', '/sections/s2', { display_name: 'second', disabled: true, applied_tos: [], _revision: s2._revision }));
    expect(await explain()).toMatchObject({ rule_id: 'integrity' });
    const r = ok(await h.req('GET', '/sections/s1/rules/integrity'));
    ok(await h.req('PUT', '/sections/s1/rules/integrity', { display_name: 'integrity', sources: r.sources, destinations: r.destinations, action: 'INTEGRITY_ONLY', key_policy_identifier: 'kp-int', disabled: true, _revision: r._revision }));
    const none = await explain();
    expect(none).toMatchObject({ matched: false, rule_id: null, action: 'ALLOW_IN_CLEAR', key_policy_id: null });
    expect(none.explanation).toMatch(/default action ALLOW_IN_CLEAR/);
    const cfg = ok(await h.req('GET', '/config'));
    ok(await h.req('PUT', '/config', { rekey_margin: 3600, default_action: 'DROP', _revision: cfg._revision }));
    expect(await explain()).toMatchObject({ matched: false, action: 'DROP' });
  });

  test('rule order inside a section decides; a section key policy overrides the rule\'s', async () => {
    ok(await h.req('POST', '/sections/s1/rules?operation=insert_top', { id: 'clear', display_name: 'clear', sources: [ref('IPAddress', '10.0.0.0/24')], action: 'ALLOW_IN_CLEAR' }), 201);
    expect(await explain()).toMatchObject({ rule_id: 'clear', action: 'ALLOW_IN_CLEAR', key_policy_id: null });
    ok(await h.req('POST', '/sections/s1/rules/clear?action=revise&operation=insert_bottom'));
    expect(await explain()).toMatchObject({ rule_id: 'integrity' });
    ok(await h.req('POST', '/key-policies', { id: 'kp-int2', display_name: 'integrity 2', encrypt_type: 'INTEGRITY_ONLY' }), 201);
    const s1 = ok(await h.req('GET', '/sections/s1'));
    ok(await h.req('PUT', '/sections/s1', { display_name: 'first', key_policy_identifier: 'kp-int2', _revision: s1._revision }));
    const v = await explain();
    expect(v).toMatchObject({ rule_id: 'integrity', key_policy_id: 'kp-int2' });
    expect(v.explanation).toMatch(/\(the section's\)/);
  });

  test('applied-to: a rule not enforced at this workload is skipped there; host and port name the workload', async () => {
    ok(await h.req('POST', '/sections/s1/rules?operation=insert_top', { id: 'only-db', display_name: 'x', action: 'ALLOW_IN_CLEAR', applied_tos: [ref('Workload', 'db1')] }), 201);
    const atWeb = await explain();
    expect(atWeb).toMatchObject({ rule_id: 'integrity', first_match_elsewhere: { section_id: 's1', rule_id: 'only-db' } });
    const atDb = ok(await h.req('POST', '/explain', { host_id: 'h2', port: 'db1-n0', ...flow }));
    expect(atDb).toMatchObject({ workload_id: 'db1', rule_id: 'only-db', action: 'ALLOW_IN_CLEAR' });
    const bad = await h.req('POST', '/explain', { host_id: 'h1', port: 'db1-n0', ...flow });
    expect(bad.status).toBe(404);
    expect(bad.body.message).toBe('host "h1" has no port "db1-n0" (a vNIC id or filter port name) in the draft');
  });

  test('explain a published revision, unchanged by later draft edits', async () => {
    const pub = ok(await h.req('POST', '/publish', {}), 201);
    ok(await h.req('POST', '/sections/s2?action=revise&operation=insert_top'));
    expect(await explain({ revision: pub.revision })).toMatchObject({ revision: 1, rule_id: 'integrity' });
    expect(await explain()).toMatchObject({ revision: 'draft', rule_id: 'encrypt' });
    const missing = await h.req('POST', '/explain', { ...flow, revision: 7 });
    expect(missing.status).toBe(404);
    expect(missing.body.message).toBe('revision 7 does not exist');
  });
});
