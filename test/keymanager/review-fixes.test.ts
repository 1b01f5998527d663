/**
 * Defects found by a break-it review, each pinned by a test over real mTLS.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { trustedGrantKey } from '../../ts/common/grant';
import { client, closeAgents, makePki, RunningKm, startKm, TestPki, tmpDir } from './helpers';

type Req = ReturnType<typeof client>;
const post = (c: Req, url: string, body: unknown, headers?: Record<string, string>) => c('POST', url, body, headers);
const msg = (r: { body: unknown }) => String((r.body as { message?: string })?.message ?? '');

let pki: TestPki;
let km: RunningKm;
const dir = tmpDir('review');

beforeAll(async () => {
  pki = await makePki();
  km = await startKm(pki, { dbFile: path.join(dir, 'km.db') });
});

afterAll(async () => {
  await km?.close();
  closeAgents();
});

test('a policy id of 128 characters can be created and rotated', async () => {
  const c = client(km.port, pki, 'controller/c1');
  const policyId = 'p'.repeat(128);
  expect((await post(c, '/v1/keys', { policyId, algorithm: 'AES_GCM_128' })).status).toBe(201);
  const r = await post(c, `/v1/policies/${policyId}/rotate`, {});
  expect(r.status).toBe(201);
});

test('an instant no clock has (a :60 second) is a 400, not a 500', async () => {
  const c = client(km.port, pki, 'controller/c1');
  const r = await post(c, '/v1/keys', { policyId: 'leap', algorithm: 'AES_GCM_256', notAfter: '2032-12-31T23:59:60Z' });
  expect(r.status).toBe(400);
  expect(msg(r)).toMatch(/notAfter is not a valid instant/);
});

test('text/plain bodies get 415; unknown field names are clipped in messages', async () => {
  const c = client(km.port, pki, 'controller/c1');
  const r = await post(c, '/v1/keys', JSON.stringify({ policyId: 'x', algorithm: 'AES_GCM_128' }), { 'content-type': 'text/plain' });
  expect(r.status).toBe(415);
  const long = 'z'.repeat(3000);
  const u = await post(c, '/v1/keys', { policyId: 'x', algorithm: 'AES_GCM_128', [long]: 1 });
  expect(u.status).toBe(400);
  expect(msg(u)).toMatch(/unknown field 'z{64}\.\.\.'/);
  expect(msg(u).length).toBeLessThan(200);
});

test('policy ids "." and ".." are refused', async () => {
  const c = client(km.port, pki, 'controller/c1');
  for (const policyId of ['.', '..']) {
    const r = await post(c, '/v1/keys', { policyId, algorithm: 'AES_GCM_128' });
    expect(r.status).toBe(400);
  }
});

test('the database is created owner-only', () => {
  for (const f of ['km.db', 'km.db-wal']) {
    const p = path.join(dir, f);
    if (fs.existsSync(p)) expect(fs.statSync(p).mode & 0o077).toBe(0);
  }
  expect(fs.existsSync(path.join(dir, 'km.db'))).toBe(true);
});

test('a grant private key is not accepted as a trusted key', () => {
  const priv = fs.readFileSync(path.join(pki.dir, 'controller-c1.grant.key'));
  expect(() => trustedGrantKey(priv)).toThrow(/private key/);
});
