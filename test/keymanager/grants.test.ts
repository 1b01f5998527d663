/**
 * Acceptance 2: forged, expired, replayed-for-another-host and wrong-KeyID
 * grants are refused (403), audited, and change nothing (the next good
 * release continues the sender-ID sequence exactly where it was).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { signGrantPayload } from '../../ts/common/grant';
import { client, closeAgents, grantFor, makePki, RunningKm, startKm, TestPki } from './helpers';

let pki: TestPki;
let km: RunningKm;
let keyA: string;
let keyB: string;
let revoked: string;

const now = () => Math.floor(Date.now() / 1000);
const jti = () => randomBytes(16).toString('base64url');

beforeAll(async () => {
  pki = await makePki();
  km = await startKm(pki);
  const c1 = client(km.port, pki, 'controller/c1');
  keyA = (await c1('POST', '/v1/keys', { policyId: 'grants-a', algorithm: 'AES_GCM_256' })).body.keyId;
  keyB = (await c1('POST', '/v1/keys', { policyId: 'grants-b', algorithm: 'AES_GCM_128' })).body.keyId;
  revoked = (await c1('POST', '/v1/keys', { policyId: 'grants-r', algorithm: 'AES_GCM_128' })).body.keyId;
  expect((await c1('POST', `/v1/keys/${revoked}/revoke`, { reason: 'test' })).status).toBe(200);
});

afterAll(async () => {
  closeAgents();
  await km.close();
});

async function auditTail(since: number) {
  const r = await client(km.port, pki, 'admin/ops')('GET', `/v1/audit?since=${since}&limit=1000`);
  expect(r.status).toBe(200);
  return r.body.entries as { id: number; actor: string; action: string; outcome: string; keyIds: string[]; detail: Record<string, unknown> }[];
}

async function lastAuditId(): Promise<number> {
  let since = 0;
  for (;;) {
    const e = await auditTail(since);
    if (e.length === 0) return since;
    since = e[e.length - 1].id;
  }
}

async function release(host: string, body: unknown) {
  return client(km.port, pki, `host/${host}`)('POST', '/v1/release', body);
}

/** The sender IDs a good release of keyA gets now. */
async function nextIds(): Promise<number[]> {
  const r = await release('h1', { grant: grantFor(pki, 'h1', [keyA]), count: 2 });
  expect(r.status).toBe(200);
  return r.body.keys[0].senderIds;
}

const cases: [string, () => { host: string; body: unknown }, number, RegExp, string][] = [
  [
    'forged: signed by a key the key manager does not trust',
    () => ({ host: 'h1', body: { grant: signGrantPayload({ v: 1, host: 'h1', keyIds: [keyA], iat: now(), exp: now() + 60, jti: jti() }, pki.untrustedGrantKey), count: 1 } }),
    403,
    /grant refused: the grant signature does not verify under any trusted controller key/,
    'bad_signature',
  ],
  [
    'forged: a valid grant for h2 with the payload edited to say h1',
    () => {
      const [, sig] = grantFor(pki, 'h2', [keyA]).split('.');
      const payload = Buffer.from(JSON.stringify({ v: 1, host: 'h1', keyIds: [keyA], iat: now(), exp: now() + 60, jti: jti() })).toString('base64url');
      return { host: 'h1', body: { grant: `${payload}.${sig}`, count: 1 } };
    },
    403,
    /signature does not verify/,
    'bad_signature',
  ],
  [
    'expired',
    () => ({ host: 'h1', body: { grant: signGrantPayload({ v: 1, host: 'h1', keyIds: [keyA], iat: now() - 200, exp: now() - 100, jti: jti() }, pki.grantKey), count: 1 } }),
    403,
    /grant refused: the grant expired 10[01] s ago/,
    'expired',
  ],
  [
    'lifetime longer than the key manager accepts',
    () => ({ host: 'h1', body: { grant: signGrantPayload({ v: 1, host: 'h1', keyIds: [keyA], iat: now(), exp: now() + 3600, jti: jti() }, pki.grantKey), count: 1 } }),
    403,
    /lifetime is 3600 s, at most 300 s is accepted/,
    'lifetime_too_long',
  ],
  [
    'issued in the future',
    () => ({ host: 'h1', body: { grant: signGrantPayload({ v: 1, host: 'h1', keyIds: [keyA], iat: now() + 120, exp: now() + 180, jti: jti() }, pki.grantKey), count: 1 } }),
    403,
    /issued 1(19|20) s in the future/,
    'not_yet_valid',
  ],
  [
    'replayed by another host (h1 presents the grant the controller gave h2)',
    () => ({ host: 'h1', body: { grant: grantFor(pki, 'h2', [keyA]), count: 1 } }),
    403,
    /grant refused: it names host h2, but the TLS peer is dne:\/\/host\/h1/,
    'other_host',
  ],
  [
    'wrong KeyID: asks for a key the grant does not name',
    () => ({ host: 'h1', body: { grant: grantFor(pki, 'h1', [keyA]), keyIds: [keyA, keyB], count: 1 } }),
    403,
    new RegExp(`grant refused: it does not name key ${'KEYB'}`),
    'key_not_granted',
  ],
  ['missing', () => ({ host: 'h1', body: { count: 1 } }), 403, /grant refused: no grant was presented/, 'missing'],
  ['malformed', () => ({ host: 'h1', body: { grant: 'not-a-grant', count: 1 } }), 403, /not base64url\(payload\)\.base64url\(signature\)/, 'malformed'],
  [
    'signature of the wrong length',
    () => ({ host: 'h1', body: { grant: `${Buffer.from('{}').toString('base64url')}.${randomBytes(32).toString('base64url')}`, count: 1 } }),
    403,
    /signature is 32 bytes/,
    'malformed',
  ],
  [
    'validly signed but with an unknown field',
    () => ({ host: 'h1', body: { grant: signGrantPayload({ v: 1, host: 'h1', keyIds: [keyA], iat: now(), exp: now() + 60, jti: jti(), admin: true }, pki.grantKey), count: 1 } }),
    403,
    /unknown field "admin"/,
    'bad_payload',
  ],
];

describe.each(cases)('a grant that is %s', (_name, make, status, message, reason) => {
  test('is refused, audited, and changes nothing', async () => {
    const before = await nextIds();
    const mark = await lastAuditId();
    const { host, body } = make();
    const r = await release(host, body);
    expect(r.status).toBe(status);
    expect(r.body.code).toBe('ERR_DNE_GRANT_REFUSED');
    expect(r.body.message).toMatch(new RegExp(message.source.replace('KEYB', keyB)));
    expect(r.text).not.toMatch(/"keys"/);

    const entries = await auditTail(mark);
    const refusal = entries.filter((e) => e.action === 'release' && e.outcome === 'refused');
    expect(refusal).toHaveLength(1);
    expect(refusal[0].actor).toBe(`dne://host/${host}`);
    expect(refusal[0].detail.reason).toBe(reason);
    expect(refusal[0].detail.code).toBe('ERR_DNE_GRANT_REFUSED');
    expect(JSON.stringify(refusal[0])).not.toMatch(/"grant":/);

    // No sender IDs were taken by the refused request.
    const after = await nextIds();
    expect(after[0]).toBe(before[before.length - 1] + 1);
  });
});

test('a grant naming a key that does not exist: 404, audited', async () => {
  const ghost = randomUUID();
  const mark = await lastAuditId();
  const r = await release('h1', { grant: grantFor(pki, 'h1', [ghost]), count: 1 });
  expect(r.status).toBe(404);
  expect(r.body.message).toBe(`key ${ghost} does not exist`);
  const e = (await auditTail(mark)).filter((x) => x.outcome === 'refused');
  expect(e.map((x) => x.keyIds)).toEqual([[ghost]]);
});

test('a revoked key is never released, even with a valid grant; the whole request fails', async () => {
  const before = await nextIds();
  const r = await release('h1', { grant: grantFor(pki, 'h1', [keyA, revoked]), count: 1 });
  expect(r.status).toBe(403);
  expect(r.body.code).toBe('ERR_DNE_KEY_NOT_RELEASABLE');
  expect(r.body.message).toBe(`key ${revoked} is revoked and is never released`);
  expect((await nextIds())[0]).toBe(before[1] + 1); // keyA's IDs were not consumed by the failed request
});

test('a good grant releases exactly the keys asked for, or all it names', async () => {
  const g = grantFor(pki, 'h1', [keyA, keyB]);
  const some = await release('h1', { grant: g, keyIds: [keyB], count: 3 });
  expect(some.status).toBe(200);
  expect(some.body.keys.map((k: { keyId: string }) => k.keyId)).toEqual([keyB]);
  expect(some.body.keys[0].senderIds).toHaveLength(3);
  const all = await release('h1', { grant: g, count: 1 });
  expect(all.body.keys.map((k: { keyId: string }) => k.keyId)).toEqual([keyA, keyB]);
  expect(all.body.keys[0]).toMatchObject({ policyId: 'grants-a', algorithm: 'AES_GCM_256', senderIdBits: 24, state: 'active' });
  expect(Buffer.from(all.body.keys[0].key, 'base64')).toHaveLength(32);
});
