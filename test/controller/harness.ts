/**
 * A whole controller deployment in one process, over real HTTPS with mutual
 * TLS everywhere: a test PKI (one CA; host certificates issued in memory so a
 * thousand take a second), the real key manager app, a small manager feed
 * server that speaks the contracts.ts wire protocol, the real controller app,
 * and simulated agents that long-poll, acknowledge, withhold acks, and
 * disconnect/reconnect. Used by the controller service tests and by
 * bench/controller-acks.ts.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { createPrivateKey, KeyObject, randomBytes, webcrypto } from 'node:crypto';
import Fastify from 'fastify';
import pino, { Logger } from 'pino';
import type { FeedEvent, HostConfigResponse, HostConfigVersion } from '../../ts/common/contracts';
import { MANAGER_API } from '../../ts/common/contracts';
import { loadGrantSigningKey, trustedGrantKey } from '../../ts/common/grant';
import { identityFromCertificate, Role } from '../../ts/common/identity';
import { initCa, issueCertificate } from '../../ts/common/pki';
import { buildControllerApp, ControllerApp } from '../../ts/controller/app';
import { Clock, ControllerService, ControllerSettings, DEFAULT_SETTINGS } from '../../ts/controller/service';
import { ControllerStore } from '../../ts/controller/store';
import { HttpsFeedSource, HttpsKeyAuthority } from '../../ts/controller/upstream';
import { buildKeyManagerApp, KeyManagerApp } from '../../ts/keymanager/app';
import { MasterKey } from '../../ts/keymanager/master-key';
import { SqliteKeyStore } from '../../ts/keymanager/sqlite-store';
import type { TLSSocket } from 'node:tls';
import { JsonResp, requestJson, testLogger } from '../common/helpers';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { makeTmpDir as tmpDir } from '../common/helpers';

export interface Creds {
  cert: Buffer;
  key: Buffer;
}

export interface Pki {
  dir: string;
  ca: Buffer;
  creds: Map<string, Creds>;
  grantKey: KeyObject;
  grantPubFile: string;
}

/** A CA, km1, controller c1 (with its grant key), manager m1, admin ops, and `hosts` host certificates. */
export async function makePki(dir: string, hosts: string[]): Promise<Pki> {
  await initCa({ dir });
  const ids: Array<[Role, string]> = [
    ['keymanager', 'km1'],
    ['controller', 'c1'],
    ['manager', 'm1'],
    ['admin', 'ops'],
  ];
  const creds = new Map<string, Creds>();
  for (const [role, name] of ids) {
    await issueCertificate({ dir, role, name });
    creds.set(`${role}/${name}`, { cert: fs.readFileSync(path.join(dir, `${role}-${name}.crt`)), key: fs.readFileSync(path.join(dir, `${role}-${name}.key`)) });
  }
  for (const [name, c] of await issueHostCreds(dir, hosts)) creds.set(`host/${name}`, c);
  return {
    dir,
    ca: fs.readFileSync(path.join(dir, 'ca.crt')),
    creds,
    grantKey: loadGrantSigningKey(fs.readFileSync(path.join(dir, 'controller-c1.grant.key'))),
    grantPubFile: path.join(dir, 'controller-c1.grant.pub'),
  };
}

/**
 * Host certificates in memory, shaped like `dne pki issue --role host`
 * (CN, URI SAN dne://host/NAME, clientAuth). They share one key pair: the
 * tests need many identities, not many keys, and ECDSA key generation is
 * what makes issuing slow.
 */
export async function issueHostCreds(caDir: string, names: string[]): Promise<Map<string, Creds>> {
  const caKey = createPrivateKey(fs.readFileSync(path.join(caDir, 'ca.key')));
  const caCert = new x509.X509Certificate(fs.readFileSync(path.join(caDir, 'ca.crt'), 'utf8'));
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const signingKey = await webcrypto.subtle.importKey('pkcs8', caKey.export({ type: 'pkcs8', format: 'der' }), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const keyPem = Buffer.from(x509.PemConverter.encode(Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), 'PRIVATE KEY'));
  const out = new Map<string, Creds>();
  for (const name of names) {
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
      subject: `CN=${name}, OU=host, O=dne`,
      issuer: caCert.subject,
      notBefore: new Date(Date.now() - 300_000),
      notAfter: new Date(Date.now() + 7 * 86400_000),
      publicKey: keys.publicKey,
      signingKey,
      signingAlgorithm: alg,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `dne://host/${name}` }]),
      ],
    });
    out.set(name, { cert: Buffer.from(cert.toString('pem')), key: keyPem });
  }
  return out;
}

export function silentLogger(level: pino.LevelWithSilent = 'silent', lines?: string[]): Logger {
  return testLogger('test', level, lines);
}

// ------------------------------------------------------------ key manager

export async function startKm(pki: Pki, dbFile: string): Promise<{ app: KeyManagerApp; url: string }> {
  const c = pki.creds.get('keymanager/km1')!;
  const app = await buildKeyManagerApp({
    tls: { cert: c.cert, key: c.key, ca: pki.ca },
    store: new SqliteKeyStore(dbFile),
    masterKey: new MasterKey(randomBytes(32)),
    settings: {
      instanceId: 'km1',
      senderIdBits: 24,
      senderRange: { start: 1, end: 2 ** 24 },
      grantKeys: [trustedGrantKey(fs.readFileSync(pki.grantPubFile))],
      grantMaxLifetimeSeconds: 300,
      grantClockSkewSeconds: 30,
    },
    logger: silentLogger(),
    expirySweepMs: 0,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const a = app.server.address();
  return { app, url: `https://localhost:${typeof a === 'object' && a ? a.port : 0}` };
}

// ------------------------------------------------------------ manager feed

/** A FeedEvent before the feed numbers it. */
export type NewFeedEvent = FeedEvent extends infer E ? (E extends FeedEvent ? Omit<E, 'seq' | 'at'> : never) : never;

/**
 * The manager's controller feed as contracts.ts defines it, and nothing
 * else: events with seq > after, oldest first, at most `limit`; a long-poll
 * of up to `wait` seconds when there are none; role controller only.
 */
export class FeedServer {
  readonly events: FeedEvent[] = [];
  private readonly waiters = new Set<() => void>();
  requests = 0;
  private constructor(
    readonly app: ReturnType<typeof Fastify>,
    readonly url: string,
  ) {}

  static async start(pki: Pki): Promise<FeedServer> {
    const c = pki.creds.get('manager/m1')!;
    const app = Fastify({ https: { cert: c.cert, key: c.key, ca: pki.ca, requestCert: true, rejectUnauthorized: true }, forceCloseConnections: true });
    let self: FeedServer;
    app.get(`${MANAGER_API}/internal/controller-feed`, async (req, reply) => {
      self.requests++;
      const id = identityFromCertificate((req.raw.socket as TLSSocket).getPeerX509Certificate());
      if (!id.ok || id.identity.role !== 'controller') return reply.status(403).send({ statusCode: 403, code: 'ERR_DNE_FORBIDDEN', error: 'Forbidden', message: 'controllers only' });
      const q = req.query as Record<string, string>;
      const after = Number(q.after ?? 0);
      const wait = Math.min(60, Number(q.wait ?? 25));
      const limit = Number(q.limit ?? 16);
      const pick = () => self.events.filter((e) => e.seq > after).slice(0, limit);
      let events = pick();
      if (events.length === 0 && wait > 0) {
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(t);
            self.waiters.delete(done);
            resolve();
          };
          const t = setTimeout(done, wait * 1000);
          self.waiters.add(done);
          reply.raw.once('close', done);
        });
        events = pick();
      }
      return { events, latest_seq: self.events.length ? self.events[self.events.length - 1]!.seq : 0 };
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const a = app.server.address();
    self = new FeedServer(app, `https://localhost:${typeof a === 'object' && a ? a.port : 0}`);
    return self;
  }

  get latestSeq(): number {
    return this.events.length ? this.events[this.events.length - 1]!.seq : 0;
  }

  /** Appends an event (seq assigned here) and wakes waiting polls. */
  push(ev: NewFeedEvent): FeedEvent {
    const e = { at: new Date().toISOString(), ...ev, seq: this.latestSeq + 1 } as FeedEvent;
    this.events.push(e);
    for (const w of [...this.waiters]) w();
    return e;
  }

  async close(): Promise<void> {
    for (const w of [...this.waiters]) w();
    await this.app.close();
  }
}

// ------------------------------------------------------------ controller

export class ManualClock implements Clock {
  constructor(public t = Date.now()) {}
  now(): number {
    return this.t;
  }
  advance(seconds: number): void {
    this.t += seconds * 1000;
  }
}

export interface RunningController {
  service: ControllerService;
  app: ControllerApp;
  store: ControllerStore;
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function startController(
  pki: Pki,
  o: { dbFile: string; kmUrl: string; feedUrl?: string; clock?: Clock; settings?: Partial<ControllerSettings>; tickMs?: number; logger?: Logger; feedWaitSeconds?: number },
): Promise<RunningController> {
  const c = pki.creds.get('controller/c1')!;
  const tls = { cert: c.cert, key: c.key, ca: pki.ca };
  const store = new ControllerStore(o.dbFile);
  const logger = o.logger ?? silentLogger();
  const service = new ControllerService({
    store,
    keys: new HttpsKeyAuthority([o.kmUrl], tls),
    feed: o.feedUrl ? new HttpsFeedSource(o.feedUrl, tls) : undefined,
    grantKey: pki.grantKey,
    settings: { ...DEFAULT_SETTINGS, instanceId: 'c1', ...o.settings },
    logger,
    clock: o.clock,
    tickMs: o.tickMs ?? 0,
    feedWaitSeconds: o.feedWaitSeconds ?? 5,
  });
  await service.start();
  const app = await buildControllerApp({ tls, service, logger });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const a = app.server.address();
  const port = typeof a === 'object' && a ? a.port : 0;
  return {
    service,
    app,
    store,
    port,
    url: `https://localhost:${port}`,
    close: async () => {
      await app.close();
      store.close();
    },
  };
}

// ------------------------------------------------------------ HTTPS client

export type Resp = JsonResp;

export function request(agent: https.Agent, port: number, method: string, urlPath: string, body?: unknown, signal?: AbortSignal): Promise<Resp> {
  return requestJson({ host: '127.0.0.1', port, method, path: urlPath, agent, signal, servername: 'localhost' }, body);
}

export function agentFor(pki: Pki, who: string, maxSockets = 4): https.Agent {
  const c = pki.creds.get(who);
  if (!c) throw new Error(`no test credentials for ${who}`);
  return new https.Agent({ keepAlive: true, maxSockets, ca: pki.ca, cert: c.cert, key: c.key });
}

// ------------------------------------------------------------ simulated agent

/**
 * What an agent does with the controller, without a dataplane: long-poll
 * `config?after=N`, take every version in order, and acknowledge the latest
 * with its key IDs as "installed". It records what it received so tests can
 * check order, gaps and duplicates.
 */
export class SimAgent extends EventEmitter {
  readonly received: HostConfigVersion[] = [];
  /** Versions that arrived although the agent already had them (must stay 0). */
  duplicates = 0;
  /** Responses with reset: true. */
  resets = 0;
  after = 0;
  withholdAck = false;
  lastGrant: string | undefined;
  keyManagers: string[] = [];
  /** Per version: when it arrived and when its ack was answered (performance.now ms). */
  readonly timing = new Map<number, { received: number; acked?: number }>();
  private agent: https.Agent;
  private running = false;
  private abort: AbortController | undefined;
  private loopDone: Promise<void> | undefined;
  errors = 0;

  constructor(
    readonly hostId: string,
    private readonly pki: Pki,
    private port: number,
    private readonly waitSeconds = 20,
  ) {
    super();
    this.setMaxListeners(0);
    this.agent = agentFor(pki, `host/${hostId}`, 2);
  }

  get latest(): HostConfigVersion | undefined {
    return this.received[this.received.length - 1];
  }

  start(port = this.port): void {
    this.port = port;
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      this.abort = new AbortController();
      try {
        const r = await request(this.agent, this.port, 'GET', `/v1/hosts/${this.hostId}/config?after=${this.after}&wait=${this.waitSeconds}`, undefined, this.abort.signal);
        if (r.status !== 200) throw new Error(`config poll: ${r.status} ${r.text}`);
        await this.take(r.body as HostConfigResponse);
      } catch {
        if (!this.running) break;
        this.errors++;
        await new Promise((res) => setTimeout(res, 50));
      }
    }
  }

  private async take(body: HostConfigResponse): Promise<void> {
    if (body.reset) this.resets++;
    this.lastGrant = body.grant;
    this.keyManagers = body.key_managers;
    const now = performance.now();
    for (const v of body.versions) {
      if (!body.reset && v.version <= this.after) {
        this.duplicates++;
        continue;
      }
      this.received.push(v);
      this.after = v.version;
      this.timing.set(v.version, { received: now });
    }
    if (body.versions.length === 0) return;
    const latest = this.latest!;
    this.emit('version', latest);
    if (!this.withholdAck) await this.ack(latest.version);
  }

  /** Acknowledges a version with its key IDs as installed. */
  async ack(version: number): Promise<Resp> {
    const v = this.received.find((x) => x.version === version);
    const keyIds = v ? v.config.keys.map((k) => k.keyId) : [];
    const r = await request(this.agent, this.port, 'POST', `/v1/hosts/${this.hostId}/ack`, { version, installed_key_ids: keyIds });
    const t = this.timing.get(version);
    if (t && r.status === 204) t.acked = performance.now();
    this.emit('acked', version);
    return r;
  }

  /** Drops the connection as a crashed or partitioned agent would. */
  async disconnect(): Promise<void> {
    this.running = false;
    this.abort?.abort();
    this.agent.destroy();
    await this.loopDone;
    this.agent = agentFor(this.pki, `host/${this.hostId}`, 2);
  }

  async stop(): Promise<void> {
    await this.disconnect();
    this.agent.destroy();
  }

  /** Resolves when `pred` holds (checked on every version, and now). */
  waitFor(pred: (a: SimAgent) => boolean, timeoutMs = 10_000): Promise<void> {
    if (pred(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pred(this)) {
          clearTimeout(t);
          this.off('version', check);
          this.off('acked', check);
          resolve();
        }
      };
      const t = setTimeout(() => {
        this.off('version', check);
        this.off('acked', check);
        reject(new Error(`${this.hostId}: condition not reached within ${timeoutMs} ms (after=${this.after})`));
      }, timeoutMs);
      this.on('version', check);
      this.on('acked', check);
    });
  }
}
