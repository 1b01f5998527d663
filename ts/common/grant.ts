/**
 * Key-access grants (DESIGN §5): the controller decides which host may fetch
 * which keys and says so in a short-lived, Ed25519-signed grant; the key
 * manager releases keys only to the TLS peer the grant names.
 *
 * Wire form (compact, JWS-like but not JWS: one algorithm, no header to
 * negotiate): `base64url(payload JSON) "." base64url(Ed25519 signature)`, the
 * signature taken over the exact payload bytes. Payload:
 *   { v: 1, host, keyIds: [uuid...], iat, exp, jti }   (times: unix seconds)
 * The key manager checks, in order: form, signature against a trusted
 * controller key, fields, lifetime (exp - iat <= maxLifetime), not issued in
 * the future and not expired (both with clock skew), then — in the service —
 * that `host` is the TLS peer and the requested KeyIDs are named.
 */
import { createPrivateKey, createPublicKey, createHash, KeyObject, randomBytes, sign, verify } from 'node:crypto';
import { isValidName } from './identity';

export interface GrantPayload {
  v: 1;
  host: string;
  keyIds: string[];
  iat: number;
  exp: number;
  jti: string;
}

export const GRANT_MAX_CHARS = 8192;
export const GRANT_MAX_KEY_IDS = 256;
export const DEFAULT_GRANT_MAX_LIFETIME_S = 300;
export const DEFAULT_GRANT_CLOCK_SKEW_S = 30;

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
const UUID_RE = new RegExp(UUID_PATTERN);
const B64URL_RE = /^[A-Za-z0-9_-]+$/;
const JTI_RE = /^[A-Za-z0-9_-]{16,64}$/;

export type GrantFailure =
  | 'missing'
  | 'malformed'
  | 'bad_signature'
  | 'bad_payload'
  | 'lifetime_too_long'
  | 'not_yet_valid'
  | 'expired';

/** Why a grant was refused. The message never contains the grant itself. */
export class GrantError extends Error {
  constructor(
    readonly reason: GrantFailure,
    message: string,
  ) {
    super(message);
    this.name = 'GrantError';
  }
}

export interface TrustedGrantKey {
  /** Short fingerprint of the public key (sha256 of the SPKI DER, 16 hex digits), for audit records. */
  id: string;
  key: KeyObject;
}

export function grantKeyFingerprint(pub: KeyObject): string {
  return createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

/** Loads a PEM Ed25519 public key (or derives it from a private key) as a trusted grant signer. */
export function trustedGrantKey(pem: string | Buffer): TrustedGrantKey {
  let pub: KeyObject;
  if (/PRIVATE KEY/.test(pem.toString())) {
    throw new Error('this is a private key: trust the controller grant PUBLIC key (controller-NAME.grant.pub)');
  }
  try {
    pub = createPublicKey(pem);
  } catch (err) {
    throw new Error(`not a PEM public key: ${(err as Error).message}`);
  }
  if (pub.asymmetricKeyType !== 'ed25519') {
    throw new Error(`grant keys must be Ed25519, this one is ${pub.asymmetricKeyType ?? 'unknown'}`);
  }
  return { id: grantKeyFingerprint(pub), key: pub };
}

export function loadGrantSigningKey(pem: string | Buffer): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`grant signing keys must be Ed25519, this one is ${key.asymmetricKeyType ?? 'unknown'}`);
  }
  return key;
}

/** Signs a payload as given (tests use this to build deliberately bad grants). */
export function signGrantPayload(payload: unknown, signingKey: KeyObject): string {
  const bytes = Buffer.from(JSON.stringify(payload), 'utf8');
  const sig = sign(null, bytes, signingKey);
  return `${bytes.toString('base64url')}.${sig.toString('base64url')}`;
}

export interface CreateGrantOptions {
  host: string;
  keyIds: string[];
  /** Lifetime in seconds (default 60). */
  ttlSeconds?: number;
  /** Unix seconds (default: now). */
  now?: number;
}

/** What the controller calls: a fresh grant with a random jti. */
export function createGrant(opts: CreateGrantOptions, signingKey: KeyObject): string {
  const iat = opts.now ?? Math.floor(Date.now() / 1000);
  const payload: GrantPayload = {
    v: 1,
    host: opts.host,
    keyIds: opts.keyIds.map((k) => k.toLowerCase()),
    iat,
    exp: iat + (opts.ttlSeconds ?? 60),
    jti: randomBytes(16).toString('base64url'),
  };
  return signGrantPayload(payload, signingKey);
}

export interface VerifyGrantOptions {
  trusted: readonly TrustedGrantKey[];
  /** Unix seconds (default: now). */
  now?: number;
  maxLifetimeSeconds?: number;
  clockSkewSeconds?: number;
}

export interface VerifiedGrant {
  payload: GrantPayload;
  /** Fingerprint of the trusted key that signed it. */
  signer: string;
}

const PAYLOAD_FIELDS = ['v', 'host', 'keyIds', 'iat', 'exp', 'jti'];

function isUnixSeconds(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/** Checks form, signature, fields and times. Throws GrantError with a precise, secret-free message. */
export function verifyGrant(token: unknown, opts: VerifyGrantOptions): VerifiedGrant {
  if (token === undefined || token === null || token === '') throw new GrantError('missing', 'no grant was presented');
  if (typeof token !== 'string') throw new GrantError('malformed', 'the grant must be a string');
  if (token.length > GRANT_MAX_CHARS) throw new GrantError('malformed', `the grant is longer than ${GRANT_MAX_CHARS} characters`);
  const parts = token.split('.');
  if (parts.length !== 2 || !B64URL_RE.test(parts[0]) || !B64URL_RE.test(parts[1])) {
    throw new GrantError('malformed', 'the grant is not base64url(payload).base64url(signature)');
  }
  const payloadBytes = Buffer.from(parts[0], 'base64url');
  const sig = Buffer.from(parts[1], 'base64url');
  if (sig.length !== 64) throw new GrantError('malformed', `the grant signature is ${sig.length} bytes, an Ed25519 signature is 64`);

  const signer = opts.trusted.find((t) => verify(null, payloadBytes, t.key, sig));
  if (!signer) throw new GrantError('bad_signature', 'the grant signature does not verify under any trusted controller key');

  let p: Record<string, unknown>;
  try {
    p = JSON.parse(payloadBytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new GrantError('bad_payload', 'the grant payload is not JSON');
  }
  if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new GrantError('bad_payload', 'the grant payload is not a JSON object');
  const extra = Object.keys(p).filter((k) => !PAYLOAD_FIELDS.includes(k));
  if (extra.length) throw new GrantError('bad_payload', `the grant payload has unknown field ${JSON.stringify(extra[0])}`);
  if (p.v !== 1) throw new GrantError('bad_payload', 'the grant payload version must be 1');
  if (typeof p.host !== 'string' || !isValidName(p.host)) throw new GrantError('bad_payload', 'the grant payload host is not a valid host name');
  if (!Array.isArray(p.keyIds) || p.keyIds.length === 0 || p.keyIds.length > GRANT_MAX_KEY_IDS) {
    throw new GrantError('bad_payload', `the grant payload keyIds must list 1..${GRANT_MAX_KEY_IDS} KeyIDs`);
  }
  if (!p.keyIds.every((k) => typeof k === 'string' && UUID_RE.test(k))) throw new GrantError('bad_payload', 'the grant payload keyIds must be UUIDs');
  if (!isUnixSeconds(p.iat) || !isUnixSeconds(p.exp)) throw new GrantError('bad_payload', 'the grant payload iat and exp must be integer unix seconds');
  if (typeof p.jti !== 'string' || !JTI_RE.test(p.jti)) throw new GrantError('bad_payload', 'the grant payload jti must be 16..64 base64url characters');
  if (p.exp <= p.iat) throw new GrantError('bad_payload', 'the grant payload exp must be after iat');

  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const maxLifetime = opts.maxLifetimeSeconds ?? DEFAULT_GRANT_MAX_LIFETIME_S;
  const skew = opts.clockSkewSeconds ?? DEFAULT_GRANT_CLOCK_SKEW_S;
  if (p.exp - p.iat > maxLifetime) {
    throw new GrantError('lifetime_too_long', `the grant lifetime is ${p.exp - p.iat} s, at most ${maxLifetime} s is accepted`);
  }
  if (p.iat > now + skew) throw new GrantError('not_yet_valid', `the grant was issued ${p.iat - now} s in the future (clock skew allowed: ${skew} s)`);
  if (now > p.exp + skew) throw new GrantError('expired', `the grant expired ${now - p.exp} s ago`);

  const keyIds = (p.keyIds as string[]).map((k) => k.toLowerCase());
  return {
    payload: { v: 1, host: p.host, keyIds: [...new Set(keyIds)], iat: p.iat, exp: p.exp, jti: p.jti },
    signer: signer.id,
  };
}
