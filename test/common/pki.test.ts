/**
 * dne pki: the development CA and leaf certificates (checked with node's
 * X509Certificate and with openssl, independently of the library that made
 * them), idempotence, and an operator's own CA made by openssl.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { identityFromCertificate } from '../../ts/common/identity';
import { certificateSans, initCa, issueCertificate } from '../../ts/common/pki';

const created: string[] = [];
afterAll(() => {
  for (const d of created) fs.rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'dne-pki-test-'));
  created.push(d);
  return d;
}

function openssl(...args: string[]) {
  return spawnSync('openssl', args, { encoding: 'utf8' });
}

function text(file: string): string {
  return openssl('x509', '-in', file, '-noout', '-text').stdout;
}

test('the CA: ECDSA P-256, CA:TRUE pathlen 0 critical, keyCertSign, key 0600; re-running keeps it', async () => {
  const dir = tmp();
  const r = await initCa({ dir });
  expect(r.written.map((w) => [path.basename(w.file), w.mode])).toEqual([
    ['ca.key', 0o600],
    ['ca.crt', 0o644],
  ]);
  expect(fs.statSync(path.join(dir, 'ca.key')).mode & 0o777).toBe(0o600);
  const t = text(path.join(dir, 'ca.crt'));
  expect(t).toMatch(/ASN1 OID: prime256v1/);
  expect(t).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
  expect(t).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
  expect(t).toMatch(/Subject: CN = dne development CA, O = dne/);

  const before = fs.readFileSync(path.join(dir, 'ca.key'));
  expect((await initCa({ dir })).kept).toHaveLength(2);
  expect(fs.readFileSync(path.join(dir, 'ca.key')).equals(before)).toBe(true);
  await initCa({ dir, force: true });
  expect(fs.readFileSync(path.join(dir, 'ca.key')).equals(before)).toBe(false);

  fs.rmSync(path.join(dir, 'ca.crt'));
  await expect(initCa({ dir })).rejects.toThrow(`${dir} holds only one of ca.crt and ca.key; remove it or use --force to create a new CA`);
});

test('server roles: serverAuth+clientAuth, localhost/127.0.0.1 by default; hosts and admins: clientAuth only', async () => {
  const dir = tmp();
  await initCa({ dir });
  await issueCertificate({ dir, role: 'keymanager', name: 'km1' });
  await issueCertificate({ dir, role: 'host', name: 'h1' });
  await issueCertificate({ dir, role: 'manager', name: 'm1', dns: ['mgr.example', 'localhost'], ip: ['10.1.2.3', '::1'] });

  const km = new X509Certificate(fs.readFileSync(path.join(dir, 'keymanager-km1.crt')));
  expect(km.subject).toBe('CN=km1\nOU=keymanager\nO=dne');
  expect(km.subjectAltName).toBe('URI:dne://keymanager/km1, DNS:localhost, IP Address:127.0.0.1');
  expect(km.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  expect(km.ca).toBe(false);
  expect(identityFromCertificate(km)).toEqual({ ok: true, identity: { role: 'keymanager', name: 'km1' } });

  const h = new X509Certificate(fs.readFileSync(path.join(dir, 'host-h1.crt')));
  expect(h.subjectAltName).toBe('URI:dne://host/h1');
  expect(h.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);

  const m = new X509Certificate(fs.readFileSync(path.join(dir, 'manager-m1.crt')));
  expect(certificateSans(m)).toEqual({ uri: ['dne://manager/m1'], dns: ['mgr.example', 'localhost'], ip: ['10.1.2.3', '0:0:0:0:0:0:0:1'] });

  const v = openssl('verify', '-CAfile', path.join(dir, 'ca.crt'), '-purpose', 'sslserver', path.join(dir, 'keymanager-km1.crt'));
  expect(v.stdout.trim()).toBe(`${dir}/keymanager-km1.crt: OK`);
  const vc = openssl('verify', '-CAfile', path.join(dir, 'ca.crt'), '-purpose', 'sslclient', path.join(dir, 'host-h1.crt'));
  expect(vc.stdout.trim()).toBe(`${dir}/host-h1.crt: OK`);
  const vs = openssl('verify', '-CAfile', path.join(dir, 'ca.crt'), '-purpose', 'sslserver', path.join(dir, 'host-h1.crt'));
  expect(vs.status).not.toBe(0); // a host certificate cannot serve TLS
  expect(text(path.join(dir, 'host-h1.crt'))).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
  expect(fs.statSync(path.join(dir, 'host-h1.key')).mode & 0o777).toBe(0o600);
});

test('controllers also get an Ed25519 grant-signing pair, kept across re-issues', async () => {
  const dir = tmp();
  await initCa({ dir });
  const r = await issueCertificate({ dir, role: 'controller', name: 'c1' });
  expect(r.written.map((w) => path.basename(w.file))).toEqual(['controller-c1.key', 'controller-c1.crt', 'controller-c1.grant.key', 'controller-c1.grant.pub']);
  expect(fs.readFileSync(path.join(dir, 'controller-c1.grant.key'), 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  expect(openssl('pkey', '-pubin', '-in', path.join(dir, 'controller-c1.grant.pub'), '-noout', '-text').stdout).toMatch(/ED25519 Public-Key/);
  const pub = fs.readFileSync(path.join(dir, 'controller-c1.grant.pub'));
  const again = await issueCertificate({ dir, role: 'controller', name: 'c1' });
  expect(again.written).toEqual([]);
  expect(fs.readFileSync(path.join(dir, 'controller-c1.grant.pub')).equals(pub)).toBe(true);
});

test('refusals: bad role, name, DNS, IP, days; another CA\'s certificate in the way; a CA key that is not the CA\'s', async () => {
  const dir = tmp();
  await initCa({ dir });
  await expect(issueCertificate({ dir, role: 'wizard' as 'host', name: 'x' })).rejects.toThrow('role must be one of keymanager, controller, manager, host, admin');
  await expect(issueCertificate({ dir, role: 'host', name: 'a/b' })).rejects.toThrow(/name "a\/b" must be 1\.\.128 characters/);
  await expect(issueCertificate({ dir, role: 'host', name: 'h', dns: ['bad_name!'] })).rejects.toThrow('--dns "bad_name!" is not a DNS name');
  await expect(issueCertificate({ dir, role: 'host', name: 'h', ip: ['10.0.0.300'] })).rejects.toThrow('--ip "10.0.0.300" is not an IPv4 or IPv6 address');
  await expect(issueCertificate({ dir, role: 'host', name: 'h', days: 0 })).rejects.toThrow('--days must be an integer from 1 to 36500');

  await issueCertificate({ dir, role: 'host', name: 'h1' });
  await initCa({ dir, force: true }); // a new CA: the old host certificate is no longer one of ours
  await expect(issueCertificate({ dir, role: 'host', name: 'h1' })).rejects.toThrow(`${dir}/host-h1.crt already exists and does not match the request (${dir}/host-h1.crt was not issued by this CA); use --force to replace it`);

  const other = tmp();
  await initCa({ dir: other });
  await expect(issueCertificate({ dir, role: 'host', name: 'h2', caKeyFile: path.join(other, 'ca.key') })).rejects.toThrow(`${other}/ca.key is not the private key of ${dir}/ca.crt`);
});

test("an operator's own CA (RSA, made by openssl) issues dne certificates", async () => {
  const dir = tmp();
  const ca = path.join(dir, 'corp-ca.crt');
  const key = path.join(dir, 'corp-ca.key');
  const r = openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', ca, '-days', '30', '-subj', '/CN=Corp Root/O=Corp', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  expect(r.status).toBe(0);
  await issueCertificate({ dir, role: 'host', name: 'h9', caCertFile: ca, caKeyFile: key });
  const v = openssl('verify', '-CAfile', ca, path.join(dir, 'host-h9.crt'));
  expect(v.stdout.trim()).toBe(`${dir}/host-h9.crt: OK`);
  const cert = new X509Certificate(fs.readFileSync(path.join(dir, 'host-h9.crt')));
  expect(cert.issuer).toBe('CN=Corp Root\nO=Corp');
  expect(cert.subjectAltName).toBe('URI:dne://host/h9');
  expect(text(path.join(dir, 'host-h9.crt'))).toMatch(/Signature Algorithm: sha256WithRSAEncryption/);

  // A certificate that is not a CA cannot sign.
  await expect(issueCertificate({ dir, role: 'host', name: 'h10', caCertFile: path.join(dir, 'host-h9.crt'), caKeyFile: path.join(dir, 'host-h9.key') })).rejects.toThrow(
    /is not a CA certificate/,
  );
});
