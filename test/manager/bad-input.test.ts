/**
 * Acceptance 2: a bad-input matrix. Each request is refused with the stated
 * status and a message that names the field and what it must be, and the
 * store (objects, revisions, audit log, feed, stats) is byte-for-byte what
 * it was before.
 */
import { harness, Harness, ok, ref, seed, storeDigest, TOKEN, vnic } from './helpers';

let h: Harness;
beforeAll(async () => {
  h = await harness({ bodyLimit: 4096 });
  await seed(h);
  ok(await h.req('POST', '/sections', { id: 's', display_name: 'S' }), 201);
  ok(await h.req('POST', '/sections/s/rules', { id: 'r', display_name: 'web-db', sources: [ref('NSGroup', 'web')], destinations: [ref('NSGroup', 'db')], action: 'ENCRYPT' }), 201);
  ok(await h.req('POST', '/sections/s/rules', { id: 'ri', display_name: 'mgmt', sources: [ref('IPSet', 'mgmt')], action: 'INTEGRITY_ONLY', key_policy_identifier: 'kp-int' }), 201);
  ok(await h.req('PUT', '/key-policies/kp-int', { display_name: 'integrity', encrypt_type: 'INTEGRITY_ONLY', _revision: 0 }));
});
afterAll(() => h.close());

type Row = [name: string, method: string, url: string, body: unknown, status: number, message: string | RegExp, headers?: Record<string, string>];

const rule = (extra: Record<string, unknown>) => ({ display_name: 'x', action: 'ALLOW_IN_CLEAR', ...extra });

const MATRIX: Row[] = [
  // wrong types, unknown and missing fields, enums
  ['wrong type', 'POST', '/key-policies', { display_name: 5 }, 400, 'body/display_name must be string'],
  ['wrong type in an array', 'POST', '/ip-sets', { display_name: 'x', ip_addresses: [1] }, 400, 'body/ip_addresses/0 must be string'],
  ['boolean as string', 'POST', '/sections', { display_name: 'x', disabled: 'yes' }, 400, 'body/disabled must be boolean'],
  ['unknown field', 'POST', '/groups', { display_name: 'g', colour: 'red' }, 400, "body has unknown field 'colour'"],
  ['unknown nested field', 'POST', '/sections/s/rules', rule({ sources: [{ target_type: 'NSGroup', target_id: 'web', extra: 1 }] }), 400, "body/sources/0 has unknown field 'extra'"],
  ['missing field', 'POST', '/sections/s/rules', { display_name: 'x' }, 400, "body must have required field 'action'"],
  ['bad enum', 'POST', '/sections/s/rules', rule({ action: 'ENCRYPTED' }), 400, 'body/action must be one of ENCRYPT, INTEGRITY_ONLY, ALLOW_IN_CLEAR'],
  ['bad target_type', 'POST', '/sections/s/rules', rule({ sources: [{ target_type: 'VM', target_id: 'x' }] }), 400, 'body/sources/0/target_type must be one of NSGroup, IPSet, Workload, IPAddress'],
  ['replay window not a multiple of 64', 'POST', '/key-policies', { display_name: 'x', replay_window: 100 }, 400, 'body/replay_window must be multiple of 64'],
  ['negative rekey frequency', 'POST', '/key-policies', { display_name: 'x', rekey_frequency: -1 }, 400, 'body/rekey_frequency must be >= 0'],
  ['rekey not before expiry', 'POST', '/key-policies', { display_name: 'x', rekey_frequency: 7200, lifetime: 3600 }, 400, 'body/rekey_frequency must be shorter than lifetime (3600 s), or keys expire before they rotate'],
  ['bad id', 'POST', '/ip-sets', { id: '../etc', display_name: 'x', ip_addresses: [] }, 400, /^body\/id must be an id: 1\.\.128 characters/],
  ['bad key manager URL', 'POST', '/key-managers', { display_name: 'k', url: 'http://km' }, 400, 'body/url must be an https:// URL'],
  ['bad MAC', 'POST', '/workloads', { display_name: 'w', host_id: 'h1', vnics: [{ ...vnic('z', []), mac: 'zz' }] }, 400, 'body/vnics/0/mac must be a MAC address like 02:00:00:00:00:01'],
  ['unknown query parameter', 'POST', '/sections?colour=red', { display_name: 'x' }, 400, "querystring has unknown field 'colour'"],
  ['bad operation', 'POST', '/sections?operation=insert_middle', { display_name: 'x' }, 400, 'querystring/operation must be one of insert_top, insert_bottom, insert_after, insert_before'],
  // missing references
  ['missing group', 'POST', '/sections/s/rules', rule({ sources: [ref('NSGroup', 'nope')] }), 400, 'body/sources/0/target_id names NSGroup "nope", which does not exist'],
  ['missing IP set', 'POST', '/sections/s/rules', rule({ destinations: [ref('IPSet', 'nope')] }), 400, 'body/destinations/0/target_id names IPSet "nope", which does not exist'],
  ['missing workload in applied-to', 'POST', '/sections/s/rules', rule({ applied_tos: [ref('Workload', 'nope')] }), 400, 'body/applied_tos/0/target_id names Workload "nope", which does not exist'],
  ['IP set as applied-to', 'POST', '/sections', { display_name: 'x', applied_tos: [ref('IPSet', 'mgmt')] }, 400, 'body/applied_tos/0/target_type must be NSGroup or Workload in an applied-to, not IPSet'],
  ['missing key policy', 'POST', '/sections/s/rules', rule({ action: 'ENCRYPT', key_policy_identifier: 'nope' }), 400, 'body/key_policy_identifier names key policy "nope", which does not exist'],
  ['action against key policy type', 'POST', '/sections/s/rules', rule({ action: 'ENCRYPT', key_policy_identifier: 'kp-int' }), 400, 'body/action ENCRYPT needs an ENCRYPTION_AND_INTEGRITY key policy, but key policy "kp-int" is INTEGRITY_ONLY'],
  ['key policy on a clear rule', 'POST', '/sections/s/rules', rule({ key_policy_identifier: 'kp-enc' }), 400, 'body/key_policy_identifier must not be set when action is ALLOW_IN_CLEAR (nothing is encrypted)'],
  ['missing workload in group', 'POST', '/groups', { display_name: 'g', workload_ids: ['nope'] }, 400, 'body/workload_ids/0 names workload "nope", which does not exist'],
  ['missing IP set in group', 'POST', '/groups', { display_name: 'g', ip_set_ids: ['nope'] }, 400, 'body/ip_set_ids/0 names IP set "nope", which does not exist'],
  ['empty tag expression', 'POST', '/groups', { display_name: 'g', expressions: [{}] }, 400, 'body/expressions/0 needs a scope, a tag or both'],
  ['missing host', 'POST', '/workloads', { display_name: 'w', host_id: 'nope' }, 400, 'body/host_id names host "nope", which does not exist'],
  ['missing key manager', 'POST', '/key-policies', { display_name: 'k', key_manager_id: 'nope' }, 400, 'body/key_manager_id names key manager "nope", which does not exist'],
  ['missing section', 'POST', '/sections/nope/rules', rule({}), 404, 'section "nope" does not exist'],
  ['insert after a missing sibling', 'POST', '/sections/s/rules?operation=insert_after&id=nope', rule({}), 400, 'querystring/id names rule "nope", which does not exist in section "s"'],
  ['insert after without id', 'POST', '/sections?operation=insert_after', { display_name: 'x' }, 400, 'querystring/id is required with operation=insert_after (the section to insert after)'],
  ['revise without operation', 'POST', '/sections/s?action=revise', undefined, 400, 'querystring/operation is required with action=revise (insert_top, insert_bottom, insert_after, insert_before)'],
  ['delete a referenced group', 'DELETE', '/groups/web', undefined, 409, 'group "web" is referenced by rule "r" sources'],
  ['delete a referenced key policy', 'DELETE', '/key-policies/kp-int', undefined, 409, 'key policy "kp-int" is referenced by rule "ri" key_policy_identifier'],
  ['delete a referenced IP set', 'DELETE', '/ip-sets/mgmt', undefined, 409, 'IP set "mgmt" is referenced by rule "ri" sources'],
  ['delete a host with workloads', 'DELETE', '/hosts/h2', undefined, 409, 'host "h2" still has workloads "db1", "web2"; delete or move them first'],
  ['duplicate id', 'POST', '/groups', { id: 'web', display_name: 'again' }, 409, 'group "web" already exists'],
  ['duplicate vNIC id', 'POST', '/workloads', { display_name: 'w', host_id: 'h1', vnics: [vnic('web1-n0', ['10.5.5.5'])] }, 409, 'body/vnics: vNIC id "web1-n0" already belongs to workload "web1"'],
  // optimistic concurrency
  ['stale _revision', 'PUT', '/key-policies/kp-int', { display_name: 'i', encrypt_type: 'INTEGRITY_ONLY', _revision: 0 }, 409, 'key policy "kp-int": _revision 0 is stale'.replace('key policy "kp-int": ', '') + ': key policy "kp-int" is at _revision 1; read it again and reapply the change'],
  ['missing _revision', 'PUT', '/groups/web', { display_name: 'web' }, 400, "body must have required field '_revision'"],
  ['id differs from the path', 'PUT', '/groups/web', { id: 'db', display_name: 'web', _revision: 0 }, 400, 'body/id "db" differs from the path\'s id "web"'],
  ['PUT of a missing object', 'PUT', '/groups/nope', { display_name: 'x', _revision: 0 }, 404, 'group "nope" does not exist'],
  // addresses and ports
  ['prefix too long', 'POST', '/ip-sets', { display_name: 'x', ip_addresses: ['10.0.0.0/33'] }, 400, 'body/ip_addresses/0 must be an IPv4/IPv6 address or CIDR (e.g. 10.0.0.0/8, fd00::/64)'],
  ['not an address', 'POST', '/ip-sets', { display_name: 'x', ip_addresses: ['10.0.0.256'] }, 400, 'body/ip_addresses/0 must be an IPv4/IPv6 address or CIDR (e.g. 10.0.0.0/8, fd00::/64)'],
  ['bad IPv6', 'POST', '/ip-sets', { display_name: 'x', ip_addresses: ['fd00:::1/64'] }, 400, 'body/ip_addresses/0 must be an IPv4/IPv6 address or CIDR (e.g. 10.0.0.0/8, fd00::/64)'],
  ['bad IPAddress reference', 'POST', '/sections/s/rules', rule({ sources: [ref('IPAddress', '300.1.1.1')] }), 400, 'body/sources/0/target_id must be an IPv4/IPv6 address or CIDR (e.g. 10.0.0.0/8, fd00::/64)'],
  ['IPv6 in ipv4', 'POST', '/workloads', { display_name: 'w', host_id: 'h1', vnics: [vnic('q', ['fd00::1'])] }, 400, 'body/vnics/0/ipv4/0 must be a valid ipv4'],
  ['port out of range', 'POST', '/sections/s/rules', rule({ services: [{ protocol: 'TCP', destination_ports: ['70000'] }] }), 400, 'body/services/0/destination_ports/0 must be a port "N" or a range "LO-HI" with LO <= HI <= 65535'],
  ['inverted range', 'POST', '/sections/s/rules', rule({ services: [{ protocol: 'UDP', destination_ports: ['90-80'] }] }), 400, 'body/services/0/destination_ports/0 must be a port "N" or a range "LO-HI" with LO <= HI <= 65535'],
  ['port not a number', 'POST', '/sections/s/rules', rule({ services: [{ protocol: 'TCP', destination_ports: ['http'] }] }), 400, 'body/services/0/destination_ports/0 must be a port "N" or a range "LO-HI" (0-65535)'],
  ['ports on ICMP', 'POST', '/sections/s/rules', rule({ services: [{ protocol: 'ICMPv4', destination_ports: ['80'] }] }), 400, 'body/services/0/destination_ports must be empty for protocol ICMPv4: it has no ports'],
  ['protocol number out of range', 'POST', '/sections/s/rules', rule({ services: [{ protocol: 300, destination_ports: [] }] }), 400, 'body/services/0/protocol must be TCP, UDP, ICMPv4, ICMPv6 or an IP protocol number 0-255'],
  ['protocol name unknown', 'POST', '/sections/s/rules', rule({ services: [{ protocol: 'SCTP', destination_ports: [] }] }), 400, 'body/services/0/protocol must be TCP, UDP, ICMPv4, ICMPv6 or an IP protocol number 0-255'],
  ['explain with mixed families', 'POST', '/explain', { source_ip: '10.0.0.1', destination_ip: 'fd00::1', protocol: 'TCP' }, 400, 'body/source_ip and body/destination_ip must be of the same IP version'],
  ['explain with a bad address', 'POST', '/explain', { source_ip: '10.0.0', destination_ip: '10.0.0.1', protocol: 'TCP' }, 400, 'body/source_ip must be an IPv4 or IPv6 address'],
  // payloads and media
  ['oversize payload', 'POST', '/ip-sets', { display_name: 'x', ip_addresses: Array.from({ length: 400 }, (_, i) => `10.${i >> 8}.${i & 255}.1`) }, 413, 'body is larger than 4096 bytes (the manager\'s bodyLimitBytes)'],
  ['not JSON', 'POST', '/groups', '{"display_name": ', 400, 'body is not valid JSON, or it contains a __proto__ or constructor.prototype key'],
  ['prototype pollution', 'POST', '/groups', '{"display_name":"x","__proto__":{"admin":true}}', 400, 'body is not valid JSON, or it contains a __proto__ or constructor.prototype key'],
  ['text/plain', 'POST', '/groups', 'display_name=x', 415, 'content-type must be application/json', { 'content-type': 'text/plain' }],
  // key actions and publish-time state
  ['rotate before any publish', 'POST', '/key-policies/kp-enc?action=rotate', undefined, 409, 'key policy "kp-enc" is not in a published revision, so it has no keys to rotate; publish first'],
  ['unknown key policy action', 'POST', '/key-policies/kp-enc?action=destroy', undefined, 400, 'querystring/action must be one of rotate, revoke'],
  ['rollback to a missing revision', 'POST', '/revisions/9?action=rollback', undefined, 404, 'revision 9 does not exist'],
  ['diff of a missing revision', 'GET', '/revisions/9/diff?to=draft', undefined, 404, 'revision 9 does not exist'],
  // credentials
  ['wrong token', 'GET', '/groups', undefined, 401, 'the bearer token is not valid', { authorization: 'Bearer not-the-token' }],
  ['malformed authorization', 'GET', '/groups', undefined, 401, 'the Authorization header must be "Bearer <token>"', { authorization: `Basic ${TOKEN}` }],
];

// Every row gets its headers argument: jest.each treats a missing trailing argument as a `done` callback.
const ROWS = MATRIX.map((r): Required<Row> => [r[0], r[1], r[2], r[3], r[4], r[5], r[6] ?? {}]);

test.each(ROWS)('%s: %s %s', async (_name, method, url, body, status, message, headers) => {
  const before = await storeDigest(h);
  const r = await h.req(method, url, body, headers);
  expect({ status: r.status, message: r.body?.message }).toEqual({ status, message: typeof message === 'string' ? message : expect.stringMatching(message) });
  expect(r.body.statusCode).toBe(status);
  expect(await storeDigest(h)).toBe(before);
});

test('no credentials at all is 401 with a hint, and changes nothing', async () => {
  const before = await storeDigest(h);
  const r = await h.app.inject({ method: 'POST', url: '/api/v1/network-encryption/groups', payload: { display_name: 'x' } });
  expect(r.statusCode).toBe(401);
  expect(r.headers['www-authenticate']).toBe('Bearer realm="dne manager"');
  expect(JSON.parse(r.body).message).toBe('no credentials: present a dne client certificate or an Authorization: Bearer token');
  expect(await storeDigest(h)).toBe(before);
});

test('a create_with_rules whose third rule is bad creates nothing, and names the rule', async () => {
  const before = await storeDigest(h);
  const r = await h.req('POST', '/sections?action=create_with_rules', {
    id: 'new',
    display_name: 'n',
    rules: [rule({ id: 'n1' }), rule({ id: 'n2' }), rule({ id: 'n3', sources: [ref('NSGroup', 'nope')] })],
  });
  expect(r.status).toBe(400);
  expect(r.body.message).toBe('body/rules/2/sources/0/target_id names NSGroup "nope", which does not exist');
  expect(await storeDigest(h)).toBe(before);
});
