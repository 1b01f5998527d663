/**
 * Test PKI and clients for the key manager suites: every test talks real
 * HTTPS with mutual TLS to a key manager listening on 127.0.0.1 (port 0).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { createPrivateKey, KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createGrant, loadGrantSigningKey, trustedGrantKey } from '../../ts/common/grant';
import { Role } from '../../ts/common/identity';
import { loggerOptions } from '../../ts/common/logging';
import { initCa, issueCertificate } from '../../ts/common/pki';
import { buildKeyManagerApp, KeyManagerApp } from '../../ts/keymanager/app';
import { MasterKey } from '../../ts/keymanager/master-key';
import { KeyManagerSettings } from '../../ts/keymanager/service';
import { SqliteKeyStore } from '../../ts/keymanager/sqlite-store';
import { JsonResp, makeTmpDir, removedAfterAll, requestJson } from '../common/helpers';

// Temporary folders (PKIs, databases) go when the test file is done (this
// module is loaded at the top of every key manager test file).
const created = removedAfterAll();

export function tmpDir(prefix: string): string {
  return makeTmpDir(prefix, created);
}

export interface Creds {
  cert: Buffer;
  key: Buffer;
}

export interface TestPki {
  dir: string;
  ca: Buffer;
  creds: Record<string, Creds>;
  /** Grant signing key of controller c1 (trusted) and of an untrusted controller. */
  grantKey: KeyObject;
  untrustedGrantKey: KeyObject;
  grantPubFile: string;
}

/** One PKI per test file: km1, c1, m1, admin ops, hosts h1 h2; plus a foreign CA's h1 and a dne-CA cert without a dne identity. */
export async function makePki(): Promise<TestPki> {
  const dir = tmpDir('pki');
  await initCa({ dir });
  const ids: [Role, string][] = [
    ['keymanager', 'km1'],
    ['keymanager', 'km2'],
    ['controller', 'c1'],
    ['controller', 'evil'],
    ['manager', 'm1'],
    ['admin', 'ops'],
    ['host', 'h1'],
    ['host', 'h2'],
  ];
  for (const [role, name] of ids) await issueCertificate({ dir, role, name });
  const creds: Record<string, Creds> = {};
  for (const [role, name] of ids) {
    creds[`${role}/${name}`] = {
      cert: fs.readFileSync(path.join(dir, `${role}-${name}.crt`)),
      key: fs.readFileSync(path.join(dir, `${role}-${name}.key`)),
    };
  }
  // A different CA that issues a perfectly shaped host certificate for h1.
  const other = path.join(dir, 'other');
  await initCa({ dir: other, commonName: 'someone else' });
  await issueCertificate({ dir: other, role: 'host', name: 'h1' });
  creds['foreign/h1'] = { cert: fs.readFileSync(path.join(other, 'host-h1.crt')), key: fs.readFileSync(path.join(other, 'host-h1.key')) };
  creds['noid/x'] = await certWithoutIdentity(dir);
  return {
    dir,
    ca: fs.readFileSync(path.join(dir, 'ca.crt')),
    creds,
    grantKey: loadGrantSigningKey(fs.readFileSync(path.join(dir, 'controller-c1.grant.key'))),
    untrustedGrantKey: loadGrantSigningKey(fs.readFileSync(path.join(dir, 'controller-evil.grant.key'))),
    grantPubFile: path.join(dir, 'controller-c1.grant.pub'),
  };
}

/** Signed by the dne CA, clientAuth, but no dne:// URI SAN (CN=h1 alone must not be enough). */
async function certWithoutIdentity(dir: string): Promise<Creds> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const caKey = createPrivateKey(fs.readFileSync(path.join(dir, 'ca.key')));
  const caCert = new x509.X509Certificate(fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8'));
  const signingKey = await webcrypto.subtle.importKey('pkcs8', caKey.export({ type: 'pkcs8', format: 'der' }), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    subject: 'CN=h1, OU=host, O=dne',
    issuer: caCert.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86400_000),
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'h1' }]),
    ],
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { cert: Buffer.from(cert.toString('pem')), key: Buffer.from(x509.PemConverter.encode(der, 'PRIVATE KEY')) };
}

/** Collects every log line a key manager writes. */
export class LogCapture {
  readonly lines: string[] = [];
  readonly stream = new Writable({
    write: (chunk: Buffer, _enc, cb) => {
      this.lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  get text(): string {
    return this.lines.join('');
  }
}

export interface KmOptions {
  dbFile?: string;
  masterKey?: Buffer;
  name?: string;
  range?: { start: number; end: number };
  bits?: number;
  logs?: LogCapture;
  logLevel?: pino.LevelWithSilent;
  settings?: Partial<KeyManagerSettings>;
  now?: () => number;
  bodyLimit?: number;
}

export interface RunningKm {
  app: KeyManagerApp;
  port: number;
  dbFile: string;
  masterKey: Buffer;
  store: SqliteKeyStore;
  close(): Promise<void>;
}

export async function startKm(pki: TestPki, o: KmOptions = {}): Promise<RunningKm> {
  const dbFile = o.dbFile ?? path.join(tmpDir('kmdb'), 'km.db');
  const masterKey = o.masterKey ?? randomBytes(32);
  const name = o.name ?? 'km1';
  const creds = pki.creds[`keymanager/${name}`] ?? pki.creds['keymanager/km1'];
  const store = new SqliteKeyStore(dbFile);
  const logger = pino(loggerOptions('keymanager', (o.logLevel ?? 'silent') as 'info'), o.logs?.stream ?? new Writable({ write: (_c, _e, cb) => cb() }));
  const app = await buildKeyManagerApp({
    tls: { cert: creds.cert, key: creds.key, ca: pki.ca },
    store,
    masterKey: new MasterKey(masterKey),
    settings: {
      instanceId: name,
      senderIdBits: o.bits ?? 24,
      senderRange: o.range ?? { start: 1, end: 2 ** 24 },
      grantKeys: [trustedGrantKey(fs.readFileSync(pki.grantPubFile))],
      grantMaxLifetimeSeconds: 300,
      grantClockSkewSeconds: 30,
      ...o.settings,
    },
    logger,
    now: o.now,
    bodyLimit: o.bodyLimit,
    expirySweepMs: 0,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return { app, port, dbFile, masterKey, store, close: () => app.close() };
}

export type Resp = JsonResp;

export interface ClientOptions {
  creds?: Creds;
  ca?: Buffer;
}

const agents = new Map<string, https.Agent>();

/** A client with a given identity (creds undefined: no client certificate). */
export function client(port: number, pki: TestPki, who: string | null, o: { ca?: Buffer } = {}) {
  const creds = who ? pki.creds[who] : undefined;
  if (who && !creds) throw new Error(`no test credentials for ${who}`);
  const agentKey = `${port}/${who}/${o.ca ? 'x' : ''}`;
  let agent = agents.get(agentKey);
  if (!agent) {
    agent = new https.Agent({ keepAlive: true, maxSockets: 32, ca: o.ca ?? pki.ca, cert: creds?.cert, key: creds?.key });
    agents.set(agentKey, agent);
  }
  const a = agent;
  return function request(method: string, urlPath: string, body?: unknown, headers: Record<string, string> = {}): Promise<Resp> {
    return requestJson({ host: '127.0.0.1', port, method, path: urlPath, agent: a, headers }, body);
  };
}

export function closeAgents(): void {
  for (const a of agents.values()) a.destroy();
  agents.clear();
}

export function grantFor(pki: TestPki, host: string, keyIds: string[], ttlSeconds = 60, nowMs?: number): string {
  return createGrant({ host, keyIds, ttlSeconds, now: nowMs === undefined ? undefined : Math.floor(nowMs / 1000) }, pki.grantKey);
}

/** Every way a key or salt could be written down. */
export function encodings(b: Buffer): { name: string; bytes: Buffer }[] {
  return [
    { name: 'raw', bytes: b },
    { name: 'hex', bytes: Buffer.from(b.toString('hex')) },
    { name: 'HEX', bytes: Buffer.from(b.toString('hex').toUpperCase()) },
    { name: 'base64', bytes: Buffer.from(b.toString('base64')) },
    { name: 'base64url', bytes: Buffer.from(b.toString('base64url')) },
    // the part of the base64 text that does not depend on what follows the bytes (key ‖ salt encoded together)
    ...(b.length >= 12
      ? [
          { name: 'base64-prefix', bytes: Buffer.from(b.toString('base64').slice(0, 4 * Math.floor(b.length / 3))) },
          { name: 'base64url-prefix', bytes: Buffer.from(b.toString('base64url').slice(0, 4 * Math.floor(b.length / 3))) },
        ]
      : []),
  ];
}
