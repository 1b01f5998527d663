/**
 * Acceptance 4: publish refuses each kind of invalid draft with a message
 * naming the offending object (and stores nothing); a valid draft becomes an
 * immutable numbered revision, announced on the controller feed. Revisions
 * list, diff and roll back; inventory changes re-publish on their own.
 */
import type { Revision } from '../../ts/common/policy-model';
import { harness, Harness, ok, ref, seed, storeDigest, vnic } from './helpers';

let h: Harness;
beforeEach(async () => {
  h = await harness();
  await seed(h);
  ok(await h.req('POST', '/sections', { id: 's', display_name: 'S' }), 201);
  ok(await h.req('POST', '/sections/s/rules', { id: 'r', display_name: 'web-db', sources: [ref('NSGroup', 'web')], destinations: [ref('NSGroup', 'db')], action: 'ENCRYPT' }), 201);
});
afterEach(() => h.close());

async function expectRefused(pattern: { object_type: string; object_id: string; message: string | RegExp }) {
  const before = await storeDigest(h);
  const r = await h.req('POST', '/publish', {});
  expect(r.status).toBe(409);
  expect(r.body.code).toBe('ERR_DNE_CONFLICT');
  expect(r.body.message).toMatch(/^publish refused: the draft has \d+ problems?; first: /);
  expect(r.body.problems).toEqual(
    expect.arrayContaining([expect.objectContaining({ object_type: pattern.object_type, object_id: pattern.object_id, message: typeof pattern.message === 'string' ? pattern.message : expect.stringMatching(pattern.message) })]),
  );
  expect(await storeDigest(h)).toBe(before);
  // The draft endpoint reports the same problems without trying.
  expect(ok(await h.req('GET', '/draft')).problems).toEqual(r.body.problems);
}

async function put(url: string, change: Record<string, unknown>) {
  const cur = ok(await h.req('GET', url));
  const body: Record<string, unknown> = { ...cur, ...change };
  for (const k of ['id', 'resource_type', 'section_id', 'rule_count', 'reported_tags', '_create_time', '_create_user', '_last_modified_time', '_last_modified_user']) delete body[k];
  return ok(await h.req('PUT', url, body));
}

describe('refused drafts', () => {
  test('dangling reference: a workload an agent stopped reporting', async () => {
    ok(await h.req('POST', '/sections/s/rules', { id: 'pin', display_name: 'x', sources: [ref('Workload', 'web2')], action: 'ALLOW_IN_CLEAR' }), 201);
    expect((await h.req('DELETE', '/workloads/web2')).status).toBe(204);
    await expectRefused({ object_type: 'rule', object_id: 'pin', message: 'section "s" rule "pin" sources[0]: workload "web2" does not exist' });
  });

  test('dangling reference from a group', async () => {
    ok(await h.req('POST', '/groups', { id: 'pinned', display_name: 'p', workload_ids: ['db1'] }), 201);
    expect((await h.req('DELETE', '/workloads/db1')).status).toBe(204);
    await expectRefused({ object_type: 'group', object_id: 'pinned', message: 'group "pinned": workload "db1" does not exist' });
  });

  test('an encrypting rule with no usable key policy (no default)', async () => {
    await put('/key-policies/kp-enc', { is_default: false });
    await expectRefused({ object_type: 'rule', object_id: 'r', message: 'section "s" rule "r": ENCRYPT names no key policy and there is no default REGULAR ENCRYPTION_AND_INTEGRITY key policy' });
  });

  test('two defaults of one type', async () => {
    ok(await h.req('POST', '/key-policies', { id: 'kp-enc2', display_name: 'another default', is_default: true }), 201);
    await expectRefused({ object_type: 'key_policy', object_id: 'kp-enc2', message: 'key policy "kp-enc2": more than one default REGULAR ENCRYPTION_AND_INTEGRITY key policy ("kp-enc", "kp-enc2")' });
  });

  test('action inconsistent with the key policy type, after the policy changed', async () => {
    await put('/sections/s/rules/r', { key_policy_identifier: 'kp-enc' });
    await put('/key-policies/kp-enc', { encrypt_type: 'INTEGRITY_ONLY', is_default: false });
    await expectRefused({ object_type: 'rule', object_id: 'r', message: 'section "s" rule "r": ENCRYPT needs an ENCRYPTION_AND_INTEGRITY key policy, but its key policy "kp-enc" is INTEGRITY_ONLY' });
  });

  test('a section key policy of the wrong type for its rules', async () => {
    await put('/sections/s', { key_policy_identifier: 'kp-int' });
    await expectRefused({ object_type: 'rule', object_id: 'r', message: 'section "s" rule "r": ENCRYPT needs an ENCRYPTION_AND_INTEGRITY key policy, but section "s"\'s key policy "kp-int" is INTEGRITY_ONLY' });
  });

  test('a BUM_TRAFFIC key policy on a unicast rule', async () => {
    ok(await h.req('POST', '/key-policies', { id: 'kp-bum', display_name: 'bum', type: 'BUM_TRAFFIC' }), 201);
    await put('/sections/s/rules/r', { key_policy_identifier: 'kp-bum' });
    await expectRefused({ object_type: 'rule', object_id: 'r', message: 'section "s" rule "r": key policy "kp-bum" is a BUM_TRAFFIC policy (broadcast/multicast); a unicast rule needs a REGULAR one' });
  });

  test('a key policy naming a deleted key manager is impossible; one without a host for a workload is refused', async () => {
    // Workload on a host that was deleted directly in the store by another tool: still caught.
    await h.store.write(async (tx) => {
      const w = (await tx.get('workload', 'web1'))!;
      await tx.put({ ...w, body: { ...w.body, host_id: 'gone' } });
    });
    await expectRefused({ object_type: 'workload', object_id: 'web1', message: 'workload "web1": host "gone" does not exist' });
  });

  test('what only the controller translation refuses is refused too (vNIC address family)', async () => {
    await h.store.write(async (tx) => {
      const w = (await tx.get('workload', 'db1'))!;
      await tx.put({ ...w, body: { ...w.body, vnics: [{ ...vnic('db1-n0', ['10.0.1.1']), ipv6: ['10.9.9.9'] }] } });
    });
    await expectRefused({ object_type: 'workload', object_id: 'db1', message: 'workload "db1": "10.9.9.9" is not an IPv6 address' });
  });

  test('every problem is listed, not just the first', async () => {
    await put('/key-policies/kp-enc', { is_default: false });
    ok(await h.req('POST', '/sections/s/rules', { id: 'r2', display_name: 'x', action: 'ENCRYPT' }), 201);
    const r = await h.req('POST', '/publish', {});
    expect(r.status).toBe(409);
    expect(r.body.problems.map((p: { object_id: string }) => p.object_id)).toEqual(['r', 'r2']);
    expect(r.body.message).toMatch(/^publish refused: the draft has 2 problems; first: section "s" rule "r"/);
  });
});

describe('revisions', () => {
  test('publish numbers revisions, stores them immutably, and feeds them to controllers', async () => {
    const p1 = ok(await h.req('POST', '/publish', { description: 'first' }), 201);
    expect(p1).toMatchObject({ revision: 1, origin: 'publish', published_by: 'token:ops', section_count: 1, rule_count: 1, feed_seq: 1 });
    const rev1 = ok<Revision>(await h.req('GET', '/revisions/1'));
    expect(rev1.sections[0]!.rules[0]).toMatchObject({ id: 'r', action: 'ENCRYPT' });
    expect(rev1.workloads.find((w) => w.id === 'web1')!.tags).toEqual([{ scope: 'tier', tag: 'web' }]);

    await put('/sections/s/rules/r', { action: 'ALLOW_IN_CLEAR' });
    expect(ok(await h.req('GET', '/status')).draft_differs).toBe(true);
    // The published revision does not move with the draft.
    expect(ok<Revision>(await h.req('GET', '/revisions/1')).sections[0]!.rules[0]!.action).toBe('ENCRYPT');
    const p2 = ok(await h.req('POST', '/revisions?action=publish', {}), 201);
    expect(p2.revision).toBe(2);
    expect(ok(await h.req('GET', '/status'))).toMatchObject({ latest_revision: 2, draft_differs: false, feed_latest_seq: 2 });

    const list = ok(await h.req('GET', '/revisions'));
    expect(list.results.map((r: { revision: number }) => r.revision)).toEqual([2, 1]);
    const diff = ok(await h.req('GET', '/revisions/1/diff?to=2'));
    expect(diff.rules).toEqual({ added: [], removed: [], changed: ['r'] });
    expect(diff.sections).toEqual({ added: [], removed: [], changed: [] });
    ok(await h.req('POST', '/sections', { id: 't', display_name: 'T' }), 201);
    const toDraft = ok(await h.req('GET', '/revisions/2/diff?to=draft'));
    expect(toDraft).toMatchObject({ to: 'draft', sections: { added: ['t'], removed: [], changed: [] } });

    const audit = ok(await h.req('GET', '/audit?limit=1000')).results.filter((e: { action: string }) => e.action === 'publish');
    expect(audit.map((e: { object_id: string; detail: unknown }) => [e.object_id, e.detail])).toEqual([
      ['1', { description: 'first' }],
      ['2', {}],
    ]);
  });

  test('rollback publishes the old policy as a new revision and resets the draft to it', async () => {
    ok(await h.req('POST', '/publish', {}), 201);
    await put('/sections/s/rules/r', { action: 'ALLOW_IN_CLEAR' });
    ok(await h.req('POST', '/sections/s/rules', { id: 'extra', display_name: 'x', action: 'ALLOW_IN_CLEAR' }), 201);
    ok(await h.req('POST', '/publish', {}), 201);
    const rb = ok(await h.req('POST', '/revisions/1?action=rollback'), 201);
    expect(rb).toMatchObject({ revision: 3, origin: 'rollback', rolled_back_to: 1, rule_count: 1 });
    const r3 = ok<Revision>(await h.req('GET', '/revisions/3'));
    const r1 = ok<Revision>(await h.req('GET', '/revisions/1'));
    expect(r3.sections).toEqual(r1.sections);
    expect(await h.req('GET', '/sections/s/rules/extra')).toMatchObject({ status: 404 });
    const r = ok(await h.req('GET', '/sections/s/rules/r'));
    expect(r.action).toBe('ENCRYPT');
    expect(r._revision).toBe(2); // edited once, then restored: a client holding _revision 1 is stale
    expect(ok(await h.req('GET', '/status')).draft_differs).toBe(false);
  });

  test('inventory changes auto-publish (dynamic membership), and a change that breaks the policy is recorded, not published', async () => {
    ok(await h.req('POST', '/publish', {}), 201);
    // A new web workload joins the web group by its tag.
    ok(await h.req('POST', '/workloads', { id: 'web3', display_name: 'web 3', host_id: 'h1', vnics: [vnic('web3-n0', ['10.0.0.3'])], tags: [{ scope: 'tier', tag: 'web' }] }), 201);
    let st = ok(await h.req('GET', '/status'));
    expect(st).toMatchObject({ latest_revision: 2, last_auto_publish: { outcome: 'published', revision: 2, problems: [] } });
    const rev2 = ok<Revision>(await h.req('GET', '/revisions/2'));
    expect(rev2.workloads.map((w) => w.id)).toContain('web3');
    expect(ok(await h.req('GET', '/revisions')).results[0]).toMatchObject({ revision: 2, origin: 'auto' });
    const v = ok(await h.req('POST', '/explain', { workload_id: 'web3', source_ip: '10.0.0.3', destination_ip: '10.0.1.1', protocol: 'TCP', revision: 2 }));
    expect(v).toMatchObject({ rule_id: 'r', action: 'ENCRYPT' });

    // A rule pinned to a workload, published; then the workload goes away.
    ok(await h.req('POST', '/sections/s/rules', { id: 'pin', display_name: 'x', sources: [ref('Workload', 'web3')], action: 'ALLOW_IN_CLEAR' }), 201);
    ok(await h.req('POST', '/publish', {}), 201);
    expect((await h.req('DELETE', '/workloads/web3')).status).toBe(204);
    st = ok(await h.req('GET', '/status'));
    expect(st.latest_revision).toBe(3);
    expect(st.last_auto_publish).toMatchObject({ outcome: 'refused', revision: null });
    expect(st.last_auto_publish.problems[0]).toMatchObject({ object_type: 'rule', object_id: 'pin', message: 'section "s" rule "pin" sources[0]: workload "web3" does not exist' });
    const audit = ok(await h.req('GET', '/audit?limit=1000')).results;
    expect(audit[audit.length - 1]).toMatchObject({ action: 'auto-publish-refused', object_type: 'revision', object_id: '4' });
  });

  test('autoPublishInventory=false leaves revisions alone', async () => {
    const off = await harness({ autoPublishInventory: false });
    await seed(off);
    ok(await off.req('POST', '/publish', {}), 201);
    ok(await off.req('POST', '/workloads', { id: 'web3', display_name: 'web 3', host_id: 'h1', vnics: [], tags: [] }), 201);
    expect(ok(await off.req('GET', '/status'))).toMatchObject({ latest_revision: 1, last_auto_publish: null, auto_publish_inventory: false });
    await off.close();
  });
});
