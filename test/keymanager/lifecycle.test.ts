/**
 * Key policy lifecycle over the API: create (one active key per policy),
 * rotate (new active, previous retired and still released to receivers),
 * revoke (never released again), expire (notAfter passed: computed at read
 * time, persisted and audited by the sweep), listing with a cursor, and the
 * audit log: one record per change, hash-chained, append-only.
 */
import Database from 'better-sqlite3';
import { AuditEntry, verifyAuditChain } from '../../ts/keymanager/store';
import { client, closeAgents, grantFor, makePki, RunningKm, startKm, TestPki } from './helpers';

let pki: TestPki;
let km: RunningKm;
let offset = 0; // the key manager's clock runs `offset` ms ahead of the test's
const clock = () => Date.now() + offset;

beforeAll(async () => {
  pki = await makePki();
  km = await startKm(pki, { now: clock });
});

afterAll(async () => {
  closeAgents();
  await km.close();
});

const c1 = () => client(km.port, pki, 'controller/c1');
const m1 = () => client(km.port, pki, 'manager/m1');
const h1 = () => client(km.port, pki, 'host/h1');
const admin = () => client(km.port, pki, 'admin/ops');

async function allAudit(): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  let since = 0;
  for (;;) {
    const r = await admin()('GET', `/v1/audit?since=${since}&limit=1000`);
    expect(r.status).toBe(200);
    if (r.body.entries.length === 0) return out;
    out.push(...r.body.entries.map((e: AuditEntry & { at: string }) => ({ ...e, at: Date.parse(e.at) })));
    since = r.body.next;
  }
}

test('create → metadata only, one active key per policy', async () => {
  const r = await c1()('POST', '/v1/keys', { policyId: 'life:1', algorithm: 'AES_GCM_256', notAfter: '2999-01-01T00:00:00.000Z' });
  expect(r.status).toBe(201);
  expect(r.body).toEqual({
    keyId: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
    policyId: 'life:1',
    algorithm: 'AES_GCM_256',
    state: 'active',
    senderIdBits: 24,
    notBefore: null,
    notAfter: '2999-01-01T00:00:00.000Z',
    createdAt: expect.any(String),
    createdBy: 'dne://controller/c1',
    retiredAt: null,
    revokedAt: null,
    revokeReason: null,
  });
  // The manager reads the metadata the controller's key got.
  expect((await m1()('GET', `/v1/keys/${r.body.keyId}`)).body).toEqual(r.body);
  const again = await c1()('POST', '/v1/keys', { policyId: 'life:1', algorithm: 'AES_GCM_256' });
  expect(again.status).toBe(409);
  expect(again.body.message).toBe(`policy life:1 already has an active key ${r.body.keyId}; rotate it with POST /v1/policies/life:1/rotate`);
});

test('rotate → a new active key; the old one is retired and still released to receivers', async () => {
  const first = (await c1()('POST', '/v1/keys', { policyId: 'life-2', algorithm: 'AES_GCM_128' })).body;
  const rot = await c1()('POST', '/v1/policies/life-2/rotate', {});
  expect(rot.status).toBe(201);
  expect(rot.body.retired).toEqual([first.keyId]);
  expect(rot.body.key).toMatchObject({ policyId: 'life-2', algorithm: 'AES_GCM_128', state: 'active' });
  const old = await c1()('GET', `/v1/keys/${first.keyId}`);
  expect(old.body.state).toBe('retired');
  expect(old.body.retiredAt).not.toBeNull();

  const rel = await h1()('POST', '/v1/release', { grant: grantFor(pki, 'h1', [first.keyId, rot.body.key.keyId]), count: 1 });
  expect(rel.status).toBe(200);
  expect(rel.body.keys.map((k: { state: string }) => k.state)).toEqual(['retired', 'active']);
  expect(rel.body.keys[0].key).not.toBe(rel.body.keys[1].key);

  // Rotation can change the algorithm.
  const rot2 = await c1()('POST', '/v1/policies/life-2/rotate', { algorithm: 'AES_GCM_256' });
  expect(rot2.body.key.algorithm).toBe('AES_GCM_256');
  expect(rot2.body.retired).toEqual([rot.body.key.keyId]);

  const list = await c1()('GET', '/v1/keys?policyId=life-2');
  expect(list.body.keys.map((k: { keyId: string; state: string }) => [k.keyId, k.state])).toEqual([
    [first.keyId, 'retired'],
    [rot.body.key.keyId, 'retired'],
    [rot2.body.key.keyId, 'active'],
  ]);
});

test('revoke → never released again; revoking twice is a conflict; a new key can follow', async () => {
  const k = (await c1()('POST', '/v1/keys', { policyId: 'life-3', algorithm: 'AES_GCM_128' })).body;
  const r = await c1()('POST', `/v1/keys/${k.keyId}/revoke`, { reason: 'host compromised' });
  expect(r.status).toBe(200);
  expect(r.body).toMatchObject({ state: 'revoked', revokeReason: 'host compromised' });
  const twice = await c1()('POST', `/v1/keys/${k.keyId}/revoke`);
  expect(twice.status).toBe(409);
  expect(twice.body.message).toMatch(new RegExp(`^key ${k.keyId} is already revoked \\(since .+\\)$`));
  const rel = await h1()('POST', '/v1/release', { grant: grantFor(pki, 'h1', [k.keyId]), count: 1 });
  expect(rel.status).toBe(403);
  // Rotation after a revocation: a fresh key, nothing to retire.
  const rot = await c1()('POST', '/v1/policies/life-3/rotate', {});
  expect(rot.status).toBe(201);
  expect(rot.body.retired).toEqual([]);
  expect((await c1()('GET', `/v1/keys/${k.keyId}`)).body.state).toBe('revoked');
});

test('expiry: computed at read time, refused for release, persisted and audited by the sweep', async () => {
  const notAfter = new Date(clock() + 60_000).toISOString();
  const k = (await c1()('POST', '/v1/keys', { policyId: 'life-4', algorithm: 'AES_GCM_128', notAfter })).body;
  const other = (await c1()('POST', '/v1/keys', { policyId: 'life-4b', algorithm: 'AES_GCM_128', notAfter })).body;
  expect((await h1()('POST', '/v1/release', { grant: grantFor(pki, 'h1', [k.keyId]), count: 1 })).status).toBe(200);

  offset += 120_000; // the key manager's clock passes notAfter
  expect((await c1()('GET', `/v1/keys/${k.keyId}`)).body.state).toBe('expired');
  const rel = await h1()('POST', '/v1/release', { grant: grantFor(pki, 'h1', [k.keyId], 60, clock()), count: 1 }); // a grant valid on that clock
  expect(rel.status).toBe(403);
  expect(rel.body.code).toBe('ERR_DNE_KEY_NOT_RELEASABLE');
  expect(rel.body.message).toBe(`key ${k.keyId} expired at ${notAfter}`);

  // An expired active key does not block a new key for its policy.
  const next = await c1()('POST', '/v1/keys', { policyId: 'life-4', algorithm: 'AES_GCM_128' });
  expect(next.status).toBe(201);

  // Creating persisted life-4's expiry; the sweep persists the other one, once.
  expect(await km.app.keyService.sweepExpired()).toBe(1);
  expect(await km.app.keyService.sweepExpired()).toBe(0);
  const expiries = (await allAudit()).filter((e) => e.action === 'expire');
  expect(expiries.map((e) => e.keyIds)).toEqual([[k.keyId], [other.keyId]]);
  expect(expiries[0].actor).toBe('dne://keymanager/km1');
  offset = 0;
});

test('a key with notBefore in the future is released ahead of time (receivers install before senders switch, DESIGN §5)', async () => {
  const notBefore = new Date(clock() + 3_600_000).toISOString();
  const k = (await c1()('POST', '/v1/keys', { policyId: 'life-5', algorithm: 'AES_GCM_128', notBefore })).body;
  const rel = await h1()('POST', '/v1/release', { grant: grantFor(pki, 'h1', [k.keyId]), count: 1 });
  expect(rel.status).toBe(200);
  expect(rel.body.keys[0].notBefore).toBe(notBefore);
});

test('listing pages with a cursor', async () => {
  for (let i = 0; i < 5; i++) await c1()('POST', '/v1/keys', { policyId: `page-${i}`, algorithm: 'AES_GCM_128' });
  const all = (await c1()('GET', '/v1/keys?limit=1000')).body.keys as { keyId: string }[];
  const seen: string[] = [];
  let after: string | undefined;
  for (;;) {
    const r = await c1()('GET', `/v1/keys?limit=2${after ? `&after=${after}` : ''}`);
    if (r.body.keys.length === 0) break;
    seen.push(...r.body.keys.map((k: { keyId: string }) => k.keyId));
    after = r.body.keys[r.body.keys.length - 1].keyId;
  }
  expect(seen).toEqual(all.map((k) => k.keyId));
});

test('the audit log: every change recorded once with who and what, hash-chained, never key bytes, append-only', async () => {
  const entries = await allAudit();
  expect(verifyAuditChain(entries)).toBeNull();
  const creates = entries.filter((e) => e.action === 'create' && e.outcome === 'ok');
  expect(creates.length).toBeGreaterThanOrEqual(10);
  for (const e of creates) expect(e.actor).toMatch(/^dne:\/\/(controller\/c1|manager\/m1)$/);
  expect(entries.filter((e) => e.action === 'rotate')).toHaveLength(3);
  expect(entries.filter((e) => e.action === 'revoke' && e.outcome === 'ok')).toHaveLength(1);
  const releases = entries.filter((e) => e.action === 'release' && e.outcome === 'ok');
  expect(releases.length).toBeGreaterThanOrEqual(3);
  for (const e of releases) {
    expect(e.actor).toBe('dne://host/h1');
    expect(e.detail).toEqual(expect.objectContaining({ jti: expect.any(String), grantSigner: expect.any(String), senderIds: expect.any(Object), count: 1 }));
    expect(JSON.stringify(e)).not.toMatch(/"key"|"salt"|"grant"/);
  }

  // Tampering is visible to the chain…
  const forged = entries.map((e) => (e.action === 'revoke' ? { ...e, actor: 'dne://admin/nobody' } : e));
  expect(verifyAuditChain(forged)).toBe(entries.find((e) => e.action === 'revoke')!.id);
  // …and the store refuses to edit or delete entries at all.
  const db = new Database(km.dbFile);
  try {
    expect(() => db.prepare("UPDATE audit SET actor = 'x' WHERE id = 1").run()).toThrow(/append-only/);
    expect(() => db.prepare('DELETE FROM audit').run()).toThrow(/append-only/);
  } finally {
    db.close();
  }
});

test('a row swapped into another key\'s place does not open (AAD binds keyId, policy and algorithm)', async () => {
  const a = (await c1()('POST', '/v1/keys', { policyId: 'swap-a', algorithm: 'AES_GCM_128' })).body.keyId;
  const b = (await c1()('POST', '/v1/keys', { policyId: 'swap-b', algorithm: 'AES_GCM_128' })).body.keyId;
  const db = new Database(km.dbFile);
  try {
    db.prepare('UPDATE keys SET sealed = (SELECT sealed FROM keys WHERE key_id = ?) WHERE key_id = ?').run(a, b);
  } finally {
    db.close();
  }
  const r = await h1()('POST', '/v1/release', { grant: grantFor(pki, 'h1', [b]), count: 1 });
  expect(r.status).toBe(500);
  expect(r.body).toEqual({ statusCode: 500, code: 'ERR_DNE_INTERNAL', error: 'Internal Server Error', message: 'internal error' });
  // and the failed release took nothing: a good key still releases normally
  expect((await h1()('POST', '/v1/release', { grant: grantFor(pki, 'h1', [a]), count: 1 })).status).toBe(200);
});
