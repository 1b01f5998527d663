/**
 * `dne pki`: a development CA and the certificates of components and hosts
 * (DESIGN §6), built with @peculiar/x509 on node's WebCrypto — no hand-made
 * ASN.1. Operators can bring their own CA: point `issue` at its certificate
 * and key (ECDSA P-256/P-384/P-521 or RSA), or skip `dne pki` entirely and
 * give the services a CA bundle and certificates that follow the identity
 * convention in identity.ts.
 *
 * Layout of a PKI directory:
 *   ca.crt ca.key                          the CA (ECDSA P-256), key 0600
 *   <role>-<name>.crt <role>-<name>.key    a component or host, key 0600
 *   controller-<name>.grant.key/.grant.pub Ed25519 grant-signing pair (controllers only)
 */
import 'reflect-metadata'; // tsyringe (inside @peculiar/x509) needs it before the import below
import * as x509 from '@peculiar/x509';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  KeyObject,
  randomBytes,
  webcrypto,
  X509Certificate as NodeX509,
} from 'node:crypto';
import { DneError, ErrorCodes } from './errors';
import { Identity, identityFromCertificate, identityUri, isRole, isValidName, Role, ROLES } from './identity';
import { writeFileAtomic } from './secure-files';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const subtle = webcrypto.subtle;

/** Roles whose certificates also serve TLS (they listen). */
export const SERVER_ROLES: readonly Role[] = ['keymanager', 'controller', 'manager'];
export const DEFAULT_SERVER_DNS = ['localhost'];
export const DEFAULT_SERVER_IPS = ['127.0.0.1'];
export const DEFAULT_CA_DAYS = 3650;
export const DEFAULT_LEAF_DAYS = 365;
/** Certificates start a little in the past so a peer with a slow clock accepts them. */
const BACKDATE_MS = 5 * 60 * 1000;

const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

function pkiError(message: string): DneError {
  return new DneError(ErrorCodes.pki, message);
}

export interface PkiResult {
  /** Files written, with their modes. */
  written: { file: string; mode: number }[];
  /** Files that already existed and were kept as they were. */
  kept: string[];
}

export function certFileNames(dir: string, role: Role, name: string) {
  const base = path.join(dir, `${role}-${name}`);
  return {
    cert: `${base}.crt`,
    key: `${base}.key`,
    grantKey: role === 'controller' ? `${base}.grant.key` : undefined,
    grantPub: role === 'controller' ? `${base}.grant.pub` : undefined,
  };
}

function randomSerial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f; // positive INTEGER
  if (b[0] === 0) b[0] = 1; // and no leading zero octet to strip
  return b.toString('hex');
}

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key));
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

function exists(f: string): boolean {
  return fs.existsSync(f);
}

export interface InitCaOptions {
  dir: string;
  commonName?: string;
  days?: number;
  force?: boolean;
}

/** Creates ca.crt/ca.key in `dir`; an existing, consistent CA is kept unless `force`. */
export async function initCa(opts: InitCaOptions): Promise<PkiResult> {
  const crtFile = path.join(opts.dir, 'ca.crt');
  const keyFile = path.join(opts.dir, 'ca.key');
  fs.mkdirSync(opts.dir, { recursive: true, mode: 0o755 });
  if (!opts.force && (exists(crtFile) || exists(keyFile))) {
    if (!exists(crtFile) || !exists(keyFile)) {
      throw pkiError(`${opts.dir} holds only one of ca.crt and ca.key; remove it or use --force to create a new CA`);
    }
    loadCa(crtFile, keyFile); // throws if the pair is inconsistent
    return { written: [], kept: [crtFile, keyFile] };
  }
  const days = opts.days ?? DEFAULT_CA_DAYS;
  const keys = (await subtle.generateKey(P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [opts.commonName ?? 'dne development CA'] }, { O: ['dne'] }],
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + days * 86400_000),
    keys,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  // Key first: a crash between the two leaves a lone key, which init refuses to guess about.
  writeFileAtomic(keyFile, await pkcs8Pem(keys.privateKey), 0o600);
  writeFileAtomic(crtFile, cert.toString('pem') + '\n', 0o644);
  return {
    written: [
      { file: keyFile, mode: 0o600 },
      { file: crtFile, mode: 0o644 },
    ],
    kept: [],
  };
}

export interface LoadedCa {
  certPem: string;
  cert: NodeX509;
  key: KeyObject;
}

/** Reads a CA certificate and key and checks they belong together and the certificate is a CA. */
export function loadCa(certFile: string, keyFile: string): LoadedCa {
  let certPem: string;
  let cert: NodeX509;
  let key: KeyObject;
  try {
    certPem = fs.readFileSync(certFile, 'utf8');
    cert = new NodeX509(certPem);
  } catch (err) {
    throw pkiError(`cannot read the CA certificate ${certFile}: ${(err as Error).message}`);
  }
  try {
    key = createPrivateKey(fs.readFileSync(keyFile));
  } catch (err) {
    throw pkiError(`cannot read the CA key ${keyFile}: ${(err as Error).message}`);
  }
  if (!cert.ca) throw pkiError(`${certFile} is not a CA certificate (basicConstraints CA:FALSE or missing)`);
  const a = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const b = cert.publicKey.export({ type: 'spki', format: 'der' });
  if (!a.equals(b)) throw pkiError(`${keyFile} is not the private key of ${certFile}`);
  return { certPem, cert, key };
}

/** Imports a node private key into WebCrypto for signing, with the matching signature algorithm. */
async function signerFor(key: KeyObject): Promise<{ key: CryptoKey; alg: webcrypto.EcdsaParams | webcrypto.RsaHashedImportParams }> {
  const der = key.export({ type: 'pkcs8', format: 'der' });
  if (key.asymmetricKeyType === 'ec') {
    const curve = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }[key.asymmetricKeyDetails?.namedCurve ?? ''];
    if (!curve) throw pkiError(`unsupported CA curve ${key.asymmetricKeyDetails?.namedCurve ?? '?'} (P-256, P-384, P-521 are supported)`);
    const hash = curve === 'P-256' ? 'SHA-256' : curve === 'P-384' ? 'SHA-384' : 'SHA-512';
    const k = await subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: curve }, false, ['sign']);
    return { key: k, alg: { name: 'ECDSA', hash } };
  }
  if (key.asymmetricKeyType === 'rsa') {
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    return { key: await subtle.importKey('pkcs8', der, alg, false, ['sign']), alg };
  }
  throw pkiError(`unsupported CA key type ${key.asymmetricKeyType ?? '?'} (ECDSA or RSA are supported)`);
}

export interface IssueOptions {
  dir: string;
  role: Role;
  name: string;
  dns?: string[];
  ip?: string[];
  days?: number;
  force?: boolean;
  /** An operator's CA (default: dir/ca.crt and dir/ca.key). */
  caCertFile?: string;
  caKeyFile?: string;
}

const DNS_RE = /^(?=.{1,253}$)(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function validateIssueOptions(o: { role: string; name: string; dns?: string[]; ip?: string[]; days?: number }): void {
  if (!isRole(o.role)) throw pkiError(`role must be one of ${ROLES.join(', ')}`);
  if (!isValidName(o.name)) throw pkiError(`name ${JSON.stringify(o.name)} must be 1..128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit`);
  for (const d of o.dns ?? []) if (!DNS_RE.test(d)) throw pkiError(`--dns ${JSON.stringify(d)} is not a DNS name`);
  for (const a of o.ip ?? []) if (!net.isIP(a)) throw pkiError(`--ip ${JSON.stringify(a)} is not an IPv4 or IPv6 address`);
  if (o.days !== undefined && (!Number.isInteger(o.days) || o.days < 1 || o.days > 36500)) throw pkiError('--days must be an integer from 1 to 36500');
}

function sanList(o: IssueOptions): { dns: string[]; ip: string[] } {
  const server = SERVER_ROLES.includes(o.role);
  const dns = o.dns ?? (server ? DEFAULT_SERVER_DNS : []);
  const ip = o.ip ?? (server ? DEFAULT_SERVER_IPS : []);
  return { dns: [...new Set(dns)], ip: [...new Set(ip.map(canonicalIp))] };
}

function canonicalIp(a: string): string {
  // node prints IPv6 SANs fully expanded; compare in that form
  if (net.isIPv6(a)) {
    const sb = new net.SocketAddress({ address: a, family: 'ipv6' });
    return expandIpv6(sb.address);
  }
  return a;
}

function expandIpv6(a: string): string {
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = tail !== undefined ? new Array(8 - h.length - t.length).fill('0') : [];
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16).toString(16).toUpperCase()).join(':');
}

/** The SANs of a certificate as node reports them, split by kind. */
export function certificateSans(cert: NodeX509): { uri: string[]; dns: string[]; ip: string[] } {
  const out = { uri: [] as string[], dns: [] as string[], ip: [] as string[] };
  for (const e of (cert.subjectAltName ?? '').split(', ')) {
    if (e.startsWith('URI:')) out.uri.push(e.slice(4));
    else if (e.startsWith('DNS:')) out.dns.push(e.slice(4));
    else if (e.startsWith('IP Address:')) out.ip.push(canonicalIp(e.slice(11)));
  }
  return out;
}

function sameSet(a: string[], b: string[]): boolean {
  const x = [...new Set(a)].sort();
  const y = [...new Set(b)].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Why an existing certificate does not match what `issue` was asked for, or null if it does. */
function existingMismatch(o: IssueOptions, ca: LoadedCa, certFile: string, keyFile: string): string | null {
  let cert: NodeX509;
  try {
    cert = new NodeX509(fs.readFileSync(certFile));
  } catch {
    return `${certFile} is not a readable certificate`;
  }
  if (!cert.checkIssued(ca.cert) || !cert.verify(ca.cert.publicKey)) return `${certFile} was not issued by this CA`;
  if (new Date(cert.validTo).getTime() < Date.now() + 86400_000) return `${certFile} expires within a day`;
  const id = identityFromCertificate(cert);
  if (!id.ok || id.identity.role !== o.role || id.identity.name !== o.name) return `${certFile} names another identity`;
  const want = sanList(o);
  const have = certificateSans(cert);
  if (!sameSet(have.dns, want.dns) || !sameSet(have.ip, want.ip)) return `${certFile} has other DNS/IP SANs`;
  try {
    const pub = createPublicKey(createPrivateKey(fs.readFileSync(keyFile))).export({ type: 'spki', format: 'der' });
    if (!pub.equals(cert.publicKey.export({ type: 'spki', format: 'der' }))) return `${keyFile} does not match ${certFile}`;
  } catch {
    return `${keyFile} is not a readable private key`;
  }
  return null;
}

/**
 * Issues `<role>-<name>.crt/.key` (and a grant-signing pair for controllers).
 * Re-running with the same arguments keeps matching files; anything else that
 * exists is refused unless `force`.
 */
export async function issueCertificate(o: IssueOptions): Promise<PkiResult> {
  validateIssueOptions(o);
  const ca = loadCa(o.caCertFile ?? path.join(o.dir, 'ca.crt'), o.caKeyFile ?? path.join(o.dir, 'ca.key'));
  const files = certFileNames(o.dir, o.role, o.name);
  const result: PkiResult = { written: [], kept: [] };

  const haveCert = exists(files.cert) || exists(files.key);
  let writeCert = true;
  if (haveCert && !o.force) {
    const why = exists(files.cert) && exists(files.key) ? existingMismatch(o, ca, files.cert, files.key) : 'only one of the certificate and key exists';
    if (why) throw pkiError(`${files.cert} already exists and does not match the request (${why}); use --force to replace it`);
    result.kept.push(files.cert, files.key);
    writeCert = false;
  }

  if (writeCert) {
    const signer = await signerFor(ca.key);
    const keys = (await subtle.generateKey(P256, true, ['sign', 'verify'])) as CryptoKeyPair;
    const { dns, ip } = sanList(o);
    const id: Identity = { role: o.role, name: o.name };
    const server = SERVER_ROLES.includes(o.role);
    const caX = new x509.X509Certificate(ca.certPem);
    const now = Date.now();
    const days = o.days ?? DEFAULT_LEAF_DAYS;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: [{ CN: [o.name] }, { OU: [o.role] }, { O: ['dne'] }],
      issuer: caX.subject,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(Math.min(now + days * 86400_000, new Date(ca.cert.validTo).getTime())),
      publicKey: keys.publicKey,
      signingKey: signer.key,
      signingAlgorithm: signer.alg,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension(
          server ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth] : [x509.ExtendedKeyUsage.clientAuth],
          false,
        ),
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: identityUri(id) },
          ...dns.map((value) => ({ type: 'dns' as const, value })),
          ...ip.map((value) => ({ type: 'ip' as const, value })),
        ]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(caX, false),
      ],
    });
    writeFileAtomic(files.key, await pkcs8Pem(keys.privateKey), 0o600);
    writeFileAtomic(files.cert, cert.toString('pem') + '\n', 0o644);
    result.written.push({ file: files.key, mode: 0o600 }, { file: files.cert, mode: 0o644 });
  }

  if (files.grantKey && files.grantPub) {
    const haveGrant = exists(files.grantKey) && exists(files.grantPub) && grantPairConsistent(files.grantKey, files.grantPub);
    if (haveGrant && !o.force) {
      result.kept.push(files.grantKey, files.grantPub);
    } else {
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      writeFileAtomic(files.grantKey, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
      writeFileAtomic(files.grantPub, publicKey.export({ type: 'spki', format: 'pem' }) as string, 0o644);
      result.written.push({ file: files.grantKey, mode: 0o600 }, { file: files.grantPub, mode: 0o644 });
    }
  }
  return result;
}

function grantPairConsistent(keyFile: string, pubFile: string): boolean {
  try {
    const k = createPrivateKey(fs.readFileSync(keyFile));
    const p = createPublicKey(fs.readFileSync(pubFile));
    return (
      k.asymmetricKeyType === 'ed25519' &&
      createPublicKey(k).export({ type: 'spki', format: 'der' }).equals(p.export({ type: 'spki', format: 'der' }))
    );
  } catch {
    return false;
  }
}
