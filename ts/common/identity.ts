/**
 * Component identity in certificates (DESIGN §6). Every dne certificate names
 * its holder twice: subject CN = name, and exactly one URI SAN
 * `dne://<role>/<name>`. Services authorise on the URI SAN of the verified
 * peer certificate, never on the CN or on anything the client sends.
 */
import type { X509Certificate } from 'node:crypto';

export const ROLES = ['keymanager', 'controller', 'manager', 'host', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface Identity {
  role: Role;
  name: string;
}

/** Names are DNS-label-like so they fit a URI path segment and a file name. */
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';
const NAME_RE = new RegExp(NAME_PATTERN);

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

export function isValidName(s: string): boolean {
  return NAME_RE.test(s);
}

export function identityUri(id: Identity): string {
  return `dne://${id.role}/${id.name}`;
}

/** `dne://role/name` -> Identity, or null when it is not a well-formed dne identity. */
export function parseIdentityUri(uri: string): Identity | null {
  const m = /^dne:\/\/([a-z]+)\/([^/]+)$/.exec(uri);
  if (!m || !isRole(m[1]) || !isValidName(m[2])) return null;
  return { role: m[1], name: m[2] };
}

/**
 * Splits node's `subjectAltName` string ("DNS:a, URI:dne://host/h1, IP
 * Address:127.0.0.1") into "TYPE:value" entries. Node JSON-quotes a value
 * that contains a separator (`URI:"a, URI:b"`, since the CVE-2021-44532 fix);
 * such a value stays one entry, unquoted, and can never pass as — or smuggle
 * in — a second identity.
 */
export function splitSubjectAltName(san: string | undefined): string[] {
  if (!san) return [];
  const out: string[] = [];
  let i = 0;
  while (i < san.length) {
    const colon = san.indexOf(':', i);
    if (colon < 0) break;
    const type = san.slice(i, colon + 1);
    let value: string;
    let next: number;
    if (san[colon + 1] === '"') {
      let j = colon + 2;
      while (j < san.length && san[j] !== '"') j += san[j] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(san.slice(colon + 1, j + 1)) as string;
      } catch {
        value = san.slice(colon + 1, j + 1);
      }
      next = san.indexOf(', ', j + 1);
    } else {
      next = san.indexOf(', ', colon + 1);
      value = san.slice(colon + 1, next < 0 ? san.length : next);
    }
    out.push(type + value);
    if (next < 0) break;
    i = next + 2;
  }
  return out;
}

export type PeerIdentityResult = { ok: true; identity: Identity } | { ok: false; reason: string };

/** The dne identity of a (verified) certificate: exactly one dne:// URI SAN. */
export function identityFromCertificate(cert: Pick<X509Certificate, 'subjectAltName'> | undefined): PeerIdentityResult {
  if (!cert) return { ok: false, reason: 'no client certificate' };
  const uris = splitSubjectAltName(cert.subjectAltName)
    .filter((e) => e.startsWith('URI:'))
    .map((e) => e.slice(4))
    .filter((u) => u.startsWith('dne:'));
  if (uris.length === 0) return { ok: false, reason: 'the certificate carries no dne:// URI SAN' };
  if (uris.length > 1) return { ok: false, reason: `the certificate carries ${uris.length} dne:// URI SANs; exactly one is allowed` };
  const id = parseIdentityUri(uris[0]);
  if (!id) return { ok: false, reason: `the certificate's URI SAN ${JSON.stringify(uris[0])} is not dne://<role>/<name>` };
  return { ok: true, identity: id };
}
