/**
 * Acceptance 6: a bad-input matrix — wrong types, unknown fields, oversize
 * bodies, bad UUIDs, bad dates, wrong content types — gets 4xx with a precise
 * message and a stable code, is audited, and changes no key.
 */
import { randomUUID } from 'node:crypto';
import { client, closeAgents, grantFor, makePki, RunningKm, startKm, TestPki } from './helpers';

let pki: TestPki;
let km: RunningKm;
let keyId: string;

beforeAll(async () => {
  pki = await makePki();
  km = await startKm(pki);
  keyId = (await client(km.port, pki, 'controller/c1')('POST', '/v1/keys', { policyId: 'bad-input', algorithm: 'AES_GCM_128' })).body.keyId;
});

afterAll(async () => {
  closeAgents();
  await km.close();
});

const ghost = randomUUID();
const past = '2001-01-01T00:00:00Z';
const future = '2999-01-01T00:00:00Z';

type Body = unknown | (() => unknown);
type Case = [who: string, method: string, path: string, body: Body, status: number, code: string, message: string | RegExp, headers?: Record<string, string>];

const BAD_REQUEST = 'ERR_DNE_BAD_REQUEST';

const cases: Case[] = [
  // POST /v1/keys
  ['controller/c1', 'POST', '/v1/keys', {}, 400, BAD_REQUEST, "body must have required field 'policyId'"],
  ['controller/c1', 'POST', '/v1/keys', undefined, 400, BAD_REQUEST, "body must have required field 'policyId'"],
  ['controller/c1', 'POST', '/v1/keys', { policyId: 'p1' }, 400, BAD_REQUEST, "body must have required field 'algorithm'"],
  ['controller/c1', 'POST', '/v1/keys', { policyId: 'p1', algorithm: 'AES_GCM_512' }, 400, BAD_REQUEST, 'body/algorithm must be one of AES_GCM_128, AES_GCM_256'],
  ['controller/c1', 'POST', '/v1/keys', { policyId: 'p1', algorithm: 128 }, 400, BAD_REQUEST, 'body/algorithm must be string'],
  ['controller/c1', 'POST', '/v1/keys', { policyId: 12, algorithm: 'AES_GCM_128' }, 400, BAD_REQUEST, 'body/policyId must be string'],
  ['controller/c1', 'POST', '/v1/keys', { policyId: 'p1', algorithm: 'AES_GCM_128', owner: 'me' }, 400, BAD_REQUEST, "body has unknown field 'owner'"],
  ['controller/c1', 'POST', '/v1/keys', { policyId: 'web db', algorithm: 'AES_GCM_128' }, 400, BAD_REQUEST, 'body/policyId must be 1..128 characters of A-Z a-z 0-9 . _ : -'],
  ['controller/c1', 'POST', '/v1/keys', { policyId: 'p'.repeat(129), algorithm: 'AES_GCM_128' }, 400, BAD_REQUEST, 'body/policyId must be 1..128 characters of A-Z a-z 0-9 . _ : -'],
  ['controller/c1', 'POST', '/v1/keys', { policyId: '', algorithm: 'AES_GCM_128' }, 400, BAD_REQUEST, 'body/policyId must be 1..128 characters of A-Z a-z 0-9 . _ : -'],
  ['controller/c1', 'POST', '/v1/keys', { policyId: 'p1', algorithm: 'AES_GCM_128', notAfter: 'tomorrow' }, 400, BAD_REQUEST, 'body/notAfter must be an RFC 3339 date-time with time zone (e.g. 2030-01-01T00:00:00Z)'],
  ['controller/c1', 'POST', '/v1/keys', { policyId: 'p1', algorithm: 'AES_GCM_128', notAfter: '2030-01-01T00:00:00' }, 400, BAD_REQUEST, /^body\/notAfter must be an RFC 3339 date-time/],
  ['controller/c1', 'POST', '/v1/keys', { policyId: 'p1', algorithm: 'AES_GCM_128', notAfter: past }, 400, BAD_REQUEST, 'notAfter must be in the future'],
  ['controller/c1', 'POST', '/v1/keys', { policyId: 'p1', algorithm: 'AES_GCM_128', notBefore: future, notAfter: '2998-01-01T00:00:00Z' }, 400, BAD_REQUEST, 'notBefore must be before notAfter'],
  ['controller/c1', 'POST', '/v1/keys', [], 400, BAD_REQUEST, 'body must be object'],
  ['controller/c1', 'POST', '/v1/keys', 'null', 400, BAD_REQUEST, 'body must be object'],
  ['controller/c1', 'POST', '/v1/keys', '"AES_GCM_128"', 400, BAD_REQUEST, 'body must be object'],
  ['controller/c1', 'POST', '/v1/keys', '{"policyId": "p1", "algorithm": ', 400, BAD_REQUEST, 'body is not valid JSON, or it contains a __proto__ or constructor.prototype key'],
  ['controller/c1', 'POST', '/v1/keys', '{"policyId": "p1", "algorithm": "AES_GCM_128", "__proto__": {"admin": true}}', 400, BAD_REQUEST, /__proto__/],
  ['controller/c1', 'POST', '/v1/keys', '', 400, BAD_REQUEST, 'body is empty but content-type is application/json'],
  ['controller/c1', 'POST', '/v1/keys', 'policyId=p1', 415, 'ERR_DNE_UNSUPPORTED_MEDIA_TYPE', 'content-type must be application/json', { 'content-type': 'application/x-www-form-urlencoded' }],
  ['controller/c1', 'POST', '/v1/keys', { policyId: 'p1', algorithm: 'AES_GCM_128', pad: 'x'.repeat(70 * 1024) }, 413, 'ERR_DNE_BODY_TOO_LARGE', 'body is larger than 65536 bytes'],
  // GET /v1/keys, /v1/keys/:keyId
  ['controller/c1', 'GET', '/v1/keys/not-a-uuid', undefined, 400, BAD_REQUEST, 'params/keyId must be a UUID (8-4-4-4-12 hex digits)'],
  ['controller/c1', 'GET', `/v1/keys/${ghost}x`, undefined, 400, BAD_REQUEST, 'params/keyId must be a UUID (8-4-4-4-12 hex digits)'],
  ['controller/c1', 'GET', `/v1/keys/urn:uuid:${ghost}`, undefined, 400, BAD_REQUEST, 'params/keyId must be a UUID (8-4-4-4-12 hex digits)'],
  ['controller/c1', 'GET', `/v1/keys/${ghost}`, undefined, 404, 'ERR_DNE_NOT_FOUND', `key ${ghost} does not exist`],
  ['controller/c1', 'GET', '/v1/keys?limit=ten', undefined, 400, BAD_REQUEST, 'querystring/limit must be a non-negative integer'],
  ['controller/c1', 'GET', '/v1/keys?limit=0', undefined, 400, BAD_REQUEST, 'querystring/limit must be from 1 to 1000'],
  ['controller/c1', 'GET', '/v1/keys?owner=me', undefined, 400, BAD_REQUEST, "querystring has unknown field 'owner'"],
  ['controller/c1', 'GET', '/v1/keys?policyId=a%20b', undefined, 400, BAD_REQUEST, 'querystring/policyId must be 1..128 characters of A-Z a-z 0-9 . _ : -'],
  ['controller/c1', 'GET', '/v1/keys?after=xyz', undefined, 400, BAD_REQUEST, 'querystring/after must be a UUID (8-4-4-4-12 hex digits)'],
  // revoke, rotate
  ['controller/c1', 'POST', `/v1/keys/${ghost}/revoke`, {}, 404, 'ERR_DNE_NOT_FOUND', `key ${ghost} does not exist`],
  ['controller/c1', 'POST', '/v1/keys/{keyId}/revoke', { reason: 5 }, 400, BAD_REQUEST, 'body/reason must be string'],
  ['controller/c1', 'POST', '/v1/keys/{keyId}/revoke', { reason: 'r'.repeat(257) }, 400, BAD_REQUEST, 'body/reason must be at most 256 characters'],
  ['controller/c1', 'POST', '/v1/keys/{keyId}/revoke', { why: 'x' }, 400, BAD_REQUEST, "body has unknown field 'why'"],
  ['controller/c1', 'POST', '/v1/policies/nobody/rotate', {}, 404, 'ERR_DNE_NOT_FOUND', 'policy nobody has no keys; create its first key with POST /v1/keys'],
  ['controller/c1', 'POST', '/v1/policies/bad-input/rotate', { algorithm: 'DES' }, 400, BAD_REQUEST, 'body/algorithm must be one of AES_GCM_128, AES_GCM_256'],
  ['controller/c1', 'POST', '/v1/policies/bad%20input/rotate', {}, 400, BAD_REQUEST, 'params/policyId must be 1..128 characters of A-Z a-z 0-9 . _ : -'],
  ['controller/c1', 'POST', '/v1/policies/bad-input/rotate', { notAfter: past }, 400, BAD_REQUEST, 'notAfter must be in the future'],
  ['controller/c1', 'POST', '/v1/keys', { policyId: 'bad-input', algorithm: 'AES_GCM_128' }, 409, 'ERR_DNE_CONFLICT', /^policy bad-input already has an active key [0-9a-f-]{36}; rotate it with POST \/v1\/policies\/bad-input\/rotate$/],
  // release
  ['host/h1', 'POST', '/v1/release', () => ({ grant: grantFor(pki, 'h1', [keyId]), count: '1' }), 400, BAD_REQUEST, 'body/count must be integer'],
  ['host/h1', 'POST', '/v1/release', () => ({ grant: grantFor(pki, 'h1', [keyId]), count: 1.5 }), 400, BAD_REQUEST, 'body/count must be integer'],
  ['host/h1', 'POST', '/v1/release', () => ({ grant: grantFor(pki, 'h1', [keyId]), count: 0 }), 400, BAD_REQUEST, 'body/count must be >= 1'],
  ['host/h1', 'POST', '/v1/release', () => ({ grant: grantFor(pki, 'h1', [keyId]), count: 65 }), 400, BAD_REQUEST, 'body/count must be <= 64'],
  ['host/h1', 'POST', '/v1/release', () => ({ grant: grantFor(pki, 'h1', [keyId]) }), 400, BAD_REQUEST, "body must have required field 'count'"],
  ['host/h1', 'POST', '/v1/release', () => ({ grant: grantFor(pki, 'h1', [keyId]), keyIds: ['nope'], count: 1 }), 400, BAD_REQUEST, 'body/keyIds/0 must be a UUID (8-4-4-4-12 hex digits)'],
  ['host/h1', 'POST', '/v1/release', () => ({ grant: grantFor(pki, 'h1', [keyId]), keyIds: [], count: 1 }), 400, BAD_REQUEST, 'body/keyIds must have at least 1 item'],
  ['host/h1', 'POST', '/v1/release', () => ({ grant: grantFor(pki, 'h1', [keyId]), keyIds: [keyId, keyId], count: 1 }), 400, BAD_REQUEST, 'body/keyIds must not contain duplicates (items 0 and 1 are equal)'],
  ['host/h1', 'POST', '/v1/release', () => ({ grant: grantFor(pki, 'h1', [keyId]), keyIds: keyId, count: 1 }), 400, BAD_REQUEST, 'body/keyIds must be array'],
  ['host/h1', 'POST', '/v1/release', { grant: 42, count: 1 }, 400, BAD_REQUEST, 'body/grant must be string'],
  ['host/h1', 'POST', '/v1/release', { grant: 'g'.repeat(9000), count: 1 }, 400, BAD_REQUEST, 'body/grant must be at most 8192 characters'],
  ['host/h1', 'POST', '/v1/release', () => ({ grant: grantFor(pki, 'h1', [keyId]), count: 1, senderIds: [1] }), 400, BAD_REQUEST, "body has unknown field 'senderIds'"],
  // audit, routes
  ['admin/ops', 'GET', '/v1/audit?since=-1', undefined, 400, BAD_REQUEST, 'querystring/since must be a non-negative integer'],
  ['admin/ops', 'GET', '/v1/audit?limit=5000', undefined, 400, BAD_REQUEST, 'querystring/limit must be from 1 to 1000'],
  ['controller/c1', 'GET', '/v1/nope', undefined, 404, 'ERR_DNE_NOT_FOUND', 'no route GET /v1/nope'],
  ['controller/c1', 'DELETE', '/v1/keys/{keyId}', undefined, 404, 'ERR_DNE_NOT_FOUND', /^no route DELETE \/v1\/keys\/[0-9a-f-]{36}$/],
];

async function snapshot() {
  const r = await client(km.port, pki, 'controller/c1')('GET', '/v1/keys?limit=1000');
  expect(r.status).toBe(200);
  return JSON.stringify(r.body.keys);
}

async function auditCount(): Promise<number> {
  let since = 0;
  let n = 0;
  for (;;) {
    const r = await client(km.port, pki, 'admin/ops')('GET', `/v1/audit?since=${since}&limit=1000`);
    if (r.body.entries.length === 0) return n;
    n += r.body.entries.length;
    since = r.body.next;
  }
}

describe.each(cases)('%s %s %s', (who, method, path, body, status, code, message, headers) => {
  test(`→ ${status} ${code}`, async () => {
    const before = await snapshot();
    const audited = await auditCount();
    const b = typeof body === 'function' ? body() : body;
    const p = path.replace('{keyId}', keyId);
    const r = await client(km.port, pki, who)(method, p, b, headers);
    expect({ status: r.status, code: r.body?.code }).toEqual({ status, code });
    if (typeof message === 'string') expect(r.body.message).toBe(message);
    else expect(r.body.message).toMatch(message);
    expect(r.body.statusCode).toBe(status);
    expect(Object.keys(r.body).sort()).toEqual(['code', 'error', 'message', 'statusCode']);
    // The error never echoes what was sent (a grant or key pasted in the wrong place stays out of responses and logs).
    if (typeof b === 'object' && b && 'grant' in b && typeof (b as { grant: unknown }).grant === 'string') {
      expect(r.text).not.toContain((b as { grant: string }).grant.slice(0, 40));
    }
    expect(await snapshot()).toBe(before);
    expect(await auditCount()).toBe(audited + 1);
  });
});

test('a body just under the limit is accepted by the parser (the limit is the limit)', async () => {
  const r = await client(km.port, pki, 'controller/c1')('POST', '/v1/keys', `{"policyId":"p-big","algorithm":"AES_GCM_128"}${' '.repeat(64 * 1024 - 60)}`);
  expect(r.status).toBe(201);
});
