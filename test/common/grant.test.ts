/**
 * Key-access grants: form, Ed25519 signature, fields and times, each refusal
 * with its own reason and a message that never contains the grant.
 */
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createGrant, GrantError, signGrantPayload, trustedGrantKey, verifyGrant } from '../../ts/common/grant';

const signer = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const trusted = [trustedGrantKey(signer.publicKey.export({ type: 'spki', format: 'pem' }))];
const NOW = 1_900_000_000;
const k1 = randomUUID();
const jti = randomBytes(16).toString('base64url');

function payload(over: Record<string, unknown> = {}) {
  return { v: 1, host: 'h1', keyIds: [k1], iat: NOW, exp: NOW + 60, jti, ...over };
}

function refusal(token: unknown, opts: Partial<Parameters<typeof verifyGrant>[1]> = {}): GrantError {
  try {
    verifyGrant(token, { trusted, now: NOW, ...opts });
  } catch (err) {
    expect(err).toBeInstanceOf(GrantError);
    if (typeof token === 'string' && token.length > 20) expect((err as Error).message).not.toContain(token.slice(0, 20));
    return err as GrantError;
  }
  throw new Error('grant was accepted');
}

test('a grant made by createGrant verifies and names its signer', () => {
  const g = createGrant({ host: 'h1', keyIds: [k1.toUpperCase(), k1], ttlSeconds: 60, now: NOW }, signer.privateKey);
  const v = verifyGrant(g, { trusted, now: NOW + 10 });
  expect(v.payload).toEqual({ v: 1, host: 'h1', keyIds: [k1], iat: NOW, exp: NOW + 60, jti: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/) });
  expect(v.signer).toBe(trusted[0].id);
  expect(g.split('.')).toHaveLength(2);
});

test('any of several trusted controller keys is accepted', () => {
  const both = [trustedGrantKey(other.publicKey.export({ type: 'spki', format: 'pem' })), ...trusted];
  expect(verifyGrant(signGrantPayload(payload(), signer.privateKey), { trusted: both, now: NOW }).signer).toBe(trusted[0].id);
});

test.each([
  ['missing', undefined, 'missing', 'no grant was presented'],
  ['empty', '', 'missing', 'no grant was presented'],
  ['not a string', 42, 'malformed', 'the grant must be a string'],
  ['one part', 'abc', 'malformed', 'the grant is not base64url(payload).base64url(signature)'],
  ['three parts', 'a.b.c', 'malformed', 'the grant is not base64url(payload).base64url(signature)'],
  ['bad alphabet', 'a+b.c/d', 'malformed', 'the grant is not base64url(payload).base64url(signature)'],
  ['too long', `${'a'.repeat(9000)}.b`, 'malformed', 'the grant is longer than 8192 characters'],
])('%s → %s', (_n, token, reason, message) => {
  const e = refusal(token);
  expect(e.reason).toBe(reason);
  expect(e.message).toBe(message);
});

test('signature: another key, an edited payload, a truncated signature', () => {
  expect(refusal(signGrantPayload(payload(), other.privateKey)).reason).toBe('bad_signature');
  const [, sig] = signGrantPayload(payload(), signer.privateKey).split('.');
  expect(refusal(`${Buffer.from(JSON.stringify(payload({ host: 'h2' }))).toString('base64url')}.${sig}`).reason).toBe('bad_signature');
  const e = refusal(`${Buffer.from(JSON.stringify(payload())).toString('base64url')}.${sig.slice(0, 40)}`);
  expect(e.message).toBe('the grant signature is 30 bytes, an Ed25519 signature is 64');
});

test.each([
  [{ v: 2 }, 'the grant payload version must be 1'],
  [{ host: 'h 1' }, 'the grant payload host is not a valid host name'],
  [{ host: 7 }, 'the grant payload host is not a valid host name'],
  [{ keyIds: [] }, 'the grant payload keyIds must list 1..256 KeyIDs'],
  [{ keyIds: 'x' }, 'the grant payload keyIds must list 1..256 KeyIDs'],
  [{ keyIds: ['not-a-uuid'] }, 'the grant payload keyIds must be UUIDs'],
  [{ iat: 1.5 }, 'the grant payload iat and exp must be integer unix seconds'],
  [{ exp: '1900000060' }, 'the grant payload iat and exp must be integer unix seconds'],
  [{ jti: 'short' }, 'the grant payload jti must be 16..64 base64url characters'],
  [{ exp: NOW }, 'the grant payload exp must be after iat'],
  [{ role: 'admin' }, 'the grant payload has unknown field "role"'],
])('validly signed but %j → bad_payload', (over, message) => {
  const e = refusal(signGrantPayload(payload(over), signer.privateKey));
  expect(e.reason).toBe('bad_payload');
  expect(e.message).toBe(message);
});

test('a signed payload that is not a JSON object', () => {
  expect(refusal(signGrantPayload([1, 2], signer.privateKey)).message).toBe('the grant payload is not a JSON object');
});

test('times: lifetime cap, not yet valid, expired, with clock skew on both ends', () => {
  expect(refusal(signGrantPayload(payload({ exp: NOW + 301 }), signer.privateKey)).message).toBe('the grant lifetime is 301 s, at most 300 s is accepted');
  expect(verifyGrant(signGrantPayload(payload({ exp: NOW + 300 }), signer.privateKey), { trusted, now: NOW }).payload.exp).toBe(NOW + 300);
  expect(refusal(signGrantPayload(payload({ exp: NOW + 120 }), signer.privateKey), { maxLifetimeSeconds: 60 }).reason).toBe('lifetime_too_long');

  const future = signGrantPayload(payload({ iat: NOW + 31, exp: NOW + 90 }), signer.privateKey);
  expect(refusal(future).message).toBe('the grant was issued 31 s in the future (clock skew allowed: 30 s)');
  expect(verifyGrant(signGrantPayload(payload({ iat: NOW + 30, exp: NOW + 90 }), signer.privateKey), { trusted, now: NOW })).toBeDefined();

  const g = signGrantPayload(payload(), signer.privateKey);
  expect(verifyGrant(g, { trusted, now: NOW + 90 })).toBeDefined(); // exp + skew
  const e = refusal(g, { now: NOW + 91 });
  expect(e.reason).toBe('expired');
  expect(e.message).toBe('the grant expired 31 s ago');
  expect(refusal(g, { now: NOW + 61, clockSkewSeconds: 0 }).reason).toBe('expired');
});

test('only Ed25519 keys can be trusted or sign', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  expect(() => trustedGrantKey(ec.publicKey.export({ type: 'spki', format: 'pem' }))).toThrow('grant keys must be Ed25519, this one is ec');
  expect(() => trustedGrantKey('not pem')).toThrow(/not a PEM public key/);
});
