/**
 * The host identity files, checked once at start (docs/agent.md
 * "Configuration", DESIGN §6). Every mistake here would otherwise show up
 * only as a refused TLS handshake that the agent retries forever: a key
 * file that is not a key, a key of another certificate, a certificate from
 * another CA (or expired), a certificate naming another host. Each is a
 * configuration error naming the setting, the file and the problem — never
 * the file's content (a key must not reach a log).
 */
import * as fs from 'node:fs';
import { createPrivateKey, KeyObject, X509Certificate } from 'node:crypto';
import { DneError, ErrorCodes } from '../common/errors';
import { identityFromCertificate, identityUri } from '../common/identity';
import type { TlsMaterial } from '../common/mtls-client';
import { privateFileProblem } from '../common/secure-files';

export interface HostTlsFiles {
  cert: string;
  key: string;
  ca: string;
}

function tlsError(message: string): DneError {
  return new DneError(ErrorCodes.config, message);
}

/** The PEM certificates of a file (a CA bundle may hold several; a certificate file may carry its chain). */
function certificates(what: string, file: string, pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw tlsError(`${what} ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch {
      throw tlsError(`${what} ${file}: certificate ${i + 1} cannot be parsed`);
    }
  });
}

const WHY: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'a directory, not a file' };

function read(setting: string, what: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw tlsError(`${setting}: cannot read ${what} ${file}: ${code}${WHY[code] ? ` (${WHY[code]})` : ''}`);
  }
}

function issuedBy(c: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return c.checkIssued(issuer) && c.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * Reads and checks `tls.cert`, `tls.key` and `tls.ca` for host `hostId`;
 * returns what the mTLS clients use. Throws a DneError (ERR_DNE_CONFIG)
 * with one line naming the setting, the file and the problem.
 */
export function loadHostTls(hostId: string, f: HostTlsFiles, now = Date.now()): TlsMaterial {
  // Missing files first, each by its setting, then the key's mode.
  const cert = read('config/tls/cert', 'the host certificate', f.cert);
  const key = read('config/tls/key', 'the host key', f.key);
  const ca = read('config/tls/ca', 'the CA bundle', f.ca);
  const problem = privateFileProblem(f.key);
  if (problem) throw tlsError(`config/tls/key: refusing the host key: ${problem}`);

  const chain = certificates('config/tls/cert: the host certificate', f.cert, cert);
  const leaf = chain[0]!;
  const cas = certificates('config/tls/ca: the CA bundle', f.ca, ca);
  let priv: KeyObject;
  try {
    priv = createPrivateKey(key);
  } catch {
    throw tlsError(`config/tls/key: the host key ${f.key} is not a private key (PEM or DER PKCS#8, PKCS#1 or SEC1)`);
  }
  if (!leaf.checkPrivateKey(priv)) throw tlsError(`config/tls/key: the host key ${f.key} does not belong to the certificate ${f.cert}`);

  // The certificate must chain to a CA of the bundle: directly, or through intermediates sent along in the cert file.
  let at = leaf;
  const seen = new Set<X509Certificate>([leaf]);
  for (;;) {
    if (cas.some((c) => issuedBy(at, c))) break;
    const up = chain.find((c) => !seen.has(c) && issuedBy(at, c));
    if (!up) throw tlsError(`config/tls/cert: the host certificate ${f.cert} was not issued by the CA in ${f.ca} (issuer: ${at.issuer.replace(/\n/g, ', ')})`);
    seen.add(up);
    at = up;
  }
  if (Date.parse(leaf.validTo) <= now) throw tlsError(`config/tls/cert: the host certificate ${f.cert} expired on ${new Date(leaf.validTo).toISOString()}`);
  if (Date.parse(leaf.validFrom) > now) throw tlsError(`config/tls/cert: the host certificate ${f.cert} is not valid before ${new Date(leaf.validFrom).toISOString()}`);

  const want = identityUri({ role: 'host', name: hostId });
  const id = identityFromCertificate(leaf);
  if (!id.ok) throw tlsError(`config/tls/cert: the host certificate ${f.cert} is not a dne host certificate: ${id.reason} (want ${want})`);
  const have = identityUri(id.identity);
  if (have !== want) throw tlsError(`config/tls/cert: the host certificate ${f.cert} is ${have}, but config/hostId is ${hostId} (want ${want})`);
  return { cert, key, ca };
}
