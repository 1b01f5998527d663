/**
 * Acceptance 5: kill -9 during a burst of creates and releases. After a
 * restart every acknowledged key is present and releases the same bytes, no
 * acknowledged sender ID is handed out again, and nothing is half-written
 * (integrity check, every row opens under the master key, every key has its
 * audit record, the audit hash chain holds). Runs the real `dne keymanager`
 * process over real HTTPS.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { keyAad, MasterKey } from '../../ts/keymanager/master-key';
import { SqliteKeyStore } from '../../ts/keymanager/sqlite-store';
import { AuditEntry, KeyRow, verifyAuditChain } from '../../ts/keymanager/store';
import { client, closeAgents, encodings, grantFor, makePki, TestPki, tmpDir } from './helpers';
import { buildCli, KmProcess, startKmProcess } from './spawn';

let pki: TestPki;

beforeAll(async () => {
  pki = await makePki();
  await buildCli();
}, 180_000);

afterAll(() => closeAgents());

interface Ack {
  keyId: string;
  key?: Buffer;
  salt?: Buffer;
  senderIds: number[];
}

test('kill -9 in the middle of a burst loses nothing that was acknowledged', async () => {
  const dir = tmpDir('crash');
  const master = randomBytes(32);
  fs.writeFileSync(path.join(dir, 'master.key'), master.toString('hex'), { mode: 0o600 });
  const dbFile = path.join(dir, 'km.db');
  fs.writeFileSync(
    path.join(dir, 'km.json'),
    JSON.stringify({
      instanceId: 'km1',
      listen: { host: '127.0.0.1', port: 0 },
      tls: { cert: path.join(pki.dir, 'keymanager-km1.crt'), key: path.join(pki.dir, 'keymanager-km1.key'), ca: path.join(pki.dir, 'ca.crt') },
      store: { driver: 'sqlite', path: 'km.db' },
      masterKeyFile: 'master.key',
      grants: { trustedKeys: [pki.grantPubFile] },
      logLevel: 'info',
    }),
  );
  const args = ['--config', path.join(dir, 'km.json')];

  let km: KmProcess = await startKmProcess(args);
  const acked = new Map<string, Ack>();
  let stop = false;
  let createAcks = 0;
  let releaseAcks = 0;
  let failures = 0;

  // 16 workers: create a key, release it twice, again and again, until the kill.
  const worker = async (w: number) => {
    const c1 = client(km.port, pki, 'controller/c1');
    const h1 = client(km.port, pki, 'host/h1');
    for (let i = 0; !stop; i++) {
      try {
        const r = await c1('POST', '/v1/keys', { policyId: `crash-${w}-${i}`, algorithm: i % 2 ? 'AES_GCM_128' : 'AES_GCM_256' });
        if (r.status !== 201) throw new Error(`create: ${r.status} ${r.text}`);
        const keyId = r.body.keyId as string;
        acked.set(keyId, { keyId, senderIds: [] });
        createAcks++;
        for (let j = 0; j < 2 && !stop; j++) {
          const rel = await h1('POST', '/v1/release', { grant: grantFor(pki, 'h1', [keyId]), count: 2 });
          if (rel.status !== 200) throw new Error(`release: ${rel.status} ${rel.text}`);
          const k = rel.body.keys[0];
          const a = acked.get(keyId)!;
          a.key = Buffer.from(k.key, 'base64');
          a.salt = Buffer.from(k.salt, 'base64');
          a.senderIds.push(...(k.senderIds as number[]));
          releaseAcks++;
        }
      } catch (err) {
        if (!stop) throw err;
        failures++; // in flight when the process died: not acknowledged, may or may not have committed
        return;
      }
    }
  };
  const workers = Array.from({ length: 16 }, (_, w) => worker(w));

  // Let the burst run, then kill -9 while requests are in flight.
  const t0 = Date.now();
  while (createAcks < 150 && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 10));
  km.child.kill('SIGKILL');
  stop = true;
  const exit = await km.exited;
  await Promise.all(workers);
  closeAgents();
  expect(exit.signal).toBe('SIGKILL');
  expect(createAcks).toBeGreaterThanOrEqual(150);
  expect(releaseAcks).toBeGreaterThan(100);
  expect(failures).toBeGreaterThan(0); // requests were in flight when it died

  // Offline: the file is consistent, and every row is whole.
  const store = new SqliteKeyStore(dbFile);
  const mk = new MasterKey(master);
  let rows: KeyRow[] = [];
  let audit: AuditEntry[] = [];
  try {
    expect(await store.integrityCheck()).toBe('ok');
    rows = await store.read((tx) => tx.listKeys({ limit: 100_000 }));
    audit = await store.read((tx) => tx.listAudit(0, 1_000_000));
  } finally {
    await store.close();
  }
  for (const r of rows) {
    const m = mk.open(r.sealed, keyAad(r.keyId, r.policyId, r.algorithm)); // throws if half-written or altered
    expect(m.length).toBe(r.algorithm === 'AES_GCM_128' ? 20 : 36);
  }
  for (const keyId of acked.keys()) expect(rows.some((r) => r.keyId === keyId)).toBe(true);
  expect(verifyAuditChain(audit)).toBeNull();
  const createdInAudit = new Set(audit.filter((e) => e.action === 'create').flatMap((e) => e.keyIds));
  for (const r of rows) expect(createdInAudit.has(r.keyId)).toBe(true); // key and its audit record committed together
  // Every acknowledged release has its audit record with exactly the IDs the host got.
  const releasedInAudit = new Map<string, number[]>();
  for (const e of audit.filter((x) => x.action === 'release' && x.outcome === 'ok')) {
    for (const [k, ids] of Object.entries(e.detail.senderIds as Record<string, number[]>)) releasedInAudit.set(k, [...(releasedInAudit.get(k) ?? []), ...ids]);
  }
  for (const a of acked.values()) for (const id of a.senderIds) expect(releasedInAudit.get(a.keyId)).toContain(id);

  // Restart: every acknowledged key is there and releases the same bytes, with sender IDs never seen before.
  const firstRun = km;
  km = await startKmProcess(args);
  try {
    const c1 = client(km.port, pki, 'controller/c1');
    const h1 = client(km.port, pki, 'host/h1');
    const acks = [...acked.values()];
    for (let i = 0; i < acks.length; i += 16) {
      await Promise.all(
        acks.slice(i, i + 16).map(async (a) => {
          const meta = await c1('GET', `/v1/keys/${a.keyId}`);
          expect(meta.status).toBe(200);
          expect(meta.body.state).toBe('active');
          const rel = await h1('POST', '/v1/release', { grant: grantFor(pki, 'h1', [a.keyId]), count: 2 });
          expect(rel.status).toBe(200);
          const k = rel.body.keys[0];
          if (a.key) {
            expect(Buffer.from(k.key, 'base64').equals(a.key)).toBe(true);
            expect(Buffer.from(k.salt, 'base64').equals(a.salt!)).toBe(true);
          }
          for (const id of k.senderIds as number[]) {
            expect(a.senderIds).not.toContain(id);
            expect(releasedInAudit.get(a.keyId) ?? []).not.toContain(id); // not even IDs committed but never acknowledged
          }
        }),
      );
    }
  } finally {
    km.child.kill('SIGTERM');
  }
  const graceful = await km.exited;
  expect(graceful).toEqual({ code: 0, signal: null });
  expect(km.output.some((l) => l.includes('"msg":"closed"'))).toBe(true);

  // The process's own logs (both runs) carry no key bytes either.
  const logText = Buffer.from([...firstRun.output, ...km.output].join('\n'));
  expect(firstRun.output.length).toBeGreaterThan(100);
  for (const a of acked.values()) {
    if (!a.key) continue;
    for (const e of [...encodings(a.key), ...encodings(Buffer.concat([a.key, a.salt!]))]) expect(logText.indexOf(e.bytes)).toBe(-1);
  }
}, 180_000);
