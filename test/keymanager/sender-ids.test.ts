/**
 * Acceptance 3: sender IDs (RFC 6054 §3, RFC 6407 §3.5) never repeat for a
 * key — across 10,000 releases, across a key manager restart, under
 * concurrent releases — and two instances with different ranges never
 * overlap, even on one shared store.
 */
import * as path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { MasterKey } from '../../ts/keymanager/master-key';
import { trustedGrantKey } from '../../ts/common/grant';
import { KeyService } from '../../ts/keymanager/service';
import { SqliteKeyStore } from '../../ts/keymanager/sqlite-store';
import * as fs from 'node:fs';
import { client, closeAgents, grantFor, makePki, RunningKm, startKm, TestPki, tmpDir } from './helpers';

let pki: TestPki;

beforeAll(async () => {
  pki = await makePki();
});

afterAll(() => closeAgents());

function addAll(seen: Set<number>, ids: number[], where: string): void {
  for (const id of ids) {
    if (seen.has(id)) throw new Error(`sender ID ${id} handed out twice (${where})`);
    seen.add(id);
  }
}

test('10,000 releases, a restart, and concurrent releases never repeat a sender ID', async () => {
  const dir = tmpDir('sid');
  const dbFile = path.join(dir, 'km.db');
  let km: RunningKm | undefined = await startKm(pki, { dbFile });
  const masterKey = km.masterKey;
  try {
    const c1 = client(km.port, pki, 'controller/c1');
    const keyId = (await c1('POST', '/v1/keys', { policyId: 'sid', algorithm: 'AES_GCM_128' })).body.keyId as string;
    const seen = new Set<number>();
    let releases = 0;

    // 300 releases over HTTPS, 20 at a time, from two hosts.
    for (let batch = 0; batch < 15; batch++) {
      const rs = await Promise.all(
        Array.from({ length: 20 }, (_, i) => {
          const host = i % 2 ? 'h1' : 'h2';
          return client(km!.port, pki, `host/${host}`)('POST', '/v1/release', { grant: grantFor(pki, host, [keyId]), count: 1 + (i % 4) });
        }),
      );
      for (const r of rs) {
        expect(r.status).toBe(200);
        addAll(seen, r.body.keys[0].senderIds, 'https');
        releases++;
      }
    }

    // 9,400 more through the service directly (same code path minus TLS), same key, same store.
    const service = km.app.keyService;
    const grant = grantFor(pki, 'h1', [keyId], 300);
    for (let i = 0; i < 9400; i++) {
      const r = await service.release({ role: 'host', name: 'h1' }, { grant, count: 1 + (i % 3) });
      addAll(seen, r[0].senderIds, 'direct');
      releases++;
    }

    // Restart: a new process image of the key manager on the same database continues, never reuses.
    await km.close();
    km = await startKm(pki, { dbFile, masterKey });
    const h1 = client(km.port, pki, 'host/h1');
    for (let i = 0; i < 100; i++) {
      const r = await h1('POST', '/v1/release', { grant: grantFor(pki, 'h1', [keyId]), count: 2 });
      expect(r.status).toBe(200);
      addAll(seen, r.body.keys[0].senderIds, 'after restart');
      releases++;
    }

    // 200 concurrent releases over HTTPS.
    const rs = await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        const host = i % 2 ? 'h1' : 'h2';
        return client(km!.port, pki, `host/${host}`)('POST', '/v1/release', { grant: grantFor(pki, host, [keyId]), count: 4 });
      }),
    );
    for (const r of rs) {
      expect(r.status).toBe(200);
      const ids = r.body.keys[0].senderIds as number[];
      expect(ids).toEqual([ids[0], ids[0] + 1, ids[0] + 2, ids[0] + 3]);
      addAll(seen, ids, 'concurrent');
      releases++;
    }
    expect(releases).toBe(10_000);
    expect(Math.min(...seen)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...seen)).toBeLessThan(2 ** 24);
  } finally {
    await km?.close();
  }
}, 240_000);

test('two instances with disjoint ranges on one shared store never overlap, even concurrently', async () => {
  const dbFile = path.join(tmpDir('sid2'), 'shared.db');
  const a = await startKm(pki, { dbFile, name: 'km1', range: { start: 1, end: 100_001 } });
  const b = await startKm(pki, { dbFile, name: 'km2', range: { start: 100_001, end: 200_001 }, masterKey: a.masterKey });
  try {
    const keyId = (await client(a.port, pki, 'controller/c1')('POST', '/v1/keys', { policyId: 'shared', algorithm: 'AES_GCM_256' })).body.keyId;
    const fromA: number[] = [];
    const fromB: number[] = [];
    const rs = await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        const km = i % 2 ? a : b;
        const host = i % 4 < 2 ? 'h1' : 'h2';
        return client(km.port, pki, `host/${host}`)('POST', '/v1/release', { grant: grantFor(pki, host, [keyId]), count: 8 }).then((r) => ({ r, km }));
      }),
    );
    let material: string | undefined;
    for (const { r, km } of rs) {
      expect(r.status).toBe(200);
      (km === a ? fromA : fromB).push(...r.body.keys[0].senderIds);
      material ??= r.body.keys[0].key;
      expect(r.body.keys[0].key).toBe(material); // same key from both replicas
    }
    expect(new Set([...fromA, ...fromB]).size).toBe(fromA.length + fromB.length);
    expect(fromA.every((id) => id >= 1 && id < 100_001)).toBe(true);
    expect(fromB.every((id) => id >= 100_001 && id < 200_001)).toBe(true);
  } finally {
    await b.close();
    await a.close();
  }

  // A third instance whose range overlaps one already registered in the store refuses to start.
  await expect(startKm(pki, { dbFile, name: 'km3', range: { start: 150_000, end: 250_000 }, masterKey: a.masterKey })).rejects.toThrow(
    /sender-ID range \[150000, 250000\) overlaps \[100001, 200001\) registered by instance km2 in this store; ranges must be disjoint/,
  );
});

test('two instances with different ranges on separate stores: same key, disjoint IDs (the shared-store model above is what replicas use)', async () => {
  // Replicas share keys through one store (PostgreSQL in production). Here the
  // same key row is copied into a second SQLite file to show the ranges alone
  // keep the two apart, whatever their counters do.
  const dirA = tmpDir('sidA');
  const a = await startKm(pki, { dbFile: path.join(dirA, 'a.db'), name: 'km1', range: { start: 1, end: 1001 } });
  const keyId = (await client(a.port, pki, 'controller/c1')('POST', '/v1/keys', { policyId: 'copied', algorithm: 'AES_GCM_128' })).body.keyId;
  await a.close();
  const bFile = path.join(tmpDir('sidB'), 'b.db');
  fs.copyFileSync(path.join(dirA, 'a.db'), bFile);
  for (const ext of ['-wal', '-shm']) if (fs.existsSync(path.join(dirA, 'a.db') + ext)) fs.copyFileSync(path.join(dirA, 'a.db') + ext, bFile + ext);
  const a2 = await startKm(pki, { dbFile: path.join(dirA, 'a.db'), name: 'km1', range: { start: 1, end: 1001 }, masterKey: a.masterKey });
  const b = await startKm(pki, { dbFile: bFile, name: 'km2', range: { start: 1001, end: 2001 }, masterKey: a.masterKey });
  try {
    const ids: number[][] = [[], []];
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        client([a2, b][i % 2].port, pki, 'host/h1')('POST', '/v1/release', { grant: grantFor(pki, 'h1', [keyId]), count: 5 }).then((r) => {
          expect(r.status).toBe(200);
          ids[i % 2].push(...r.body.keys[0].senderIds);
        }),
      ),
    );
    expect(new Set([...ids[0], ...ids[1]]).size).toBe(500);
    expect(Math.max(...ids[0])).toBeLessThan(1001);
    expect(Math.min(...ids[1])).toBeGreaterThanOrEqual(1001);
  } finally {
    await a2.close();
    await b.close();
  }
});

test('a used-up range is a 409 that tells the operator to rotate; nothing is half-allocated', async () => {
  const km = await startKm(pki, { range: { start: 10, end: 20 } });
  try {
    const keyId = (await client(km.port, pki, 'controller/c1')('POST', '/v1/keys', { policyId: 'tiny', algorithm: 'AES_GCM_128' })).body.keyId;
    const h1 = client(km.port, pki, 'host/h1');
    const rel = (count: number) => h1('POST', '/v1/release', { grant: grantFor(pki, 'h1', [keyId]), count });
    expect((await rel(4)).body.keys[0].senderIds).toEqual([10, 11, 12, 13]);
    expect((await rel(4)).body.keys[0].senderIds).toEqual([14, 15, 16, 17]);
    const r = await rel(4);
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('ERR_DNE_SENDER_IDS_EXHAUSTED');
    expect(r.body.message).toBe(`key ${keyId} has fewer than 4 sender IDs left in this instance's range [10, 20); rotate the key`);
    expect((await rel(2)).body.keys[0].senderIds).toEqual([18, 19]);
  } finally {
    await km.close();
  }
});

test('the allocation is persisted before the release returns (a second store sees it at once)', async () => {
  const dbFile = path.join(tmpDir('sid3'), 'km.db');
  const km = await startKm(pki, { dbFile });
  try {
    const keyId = (await client(km.port, pki, 'controller/c1')('POST', '/v1/keys', { policyId: 'persist', algorithm: 'AES_GCM_128' })).body.keyId;
    const r = await client(km.port, pki, 'host/h1')('POST', '/v1/release', { grant: grantFor(pki, 'h1', [keyId]), count: 3 });
    // Another connection (as another process would) reads the committed counter.
    const other = new SqliteKeyStore(dbFile);
    try {
      const service = new KeyService(
        other,
        new MasterKey(km.masterKey),
        {
          instanceId: 'km1',
          senderIdBits: 24,
          senderRange: { start: 1, end: 2 ** 24 },
          grantKeys: [trustedGrantKey(fs.readFileSync(pki.grantPubFile))],
          grantMaxLifetimeSeconds: 300,
          grantClockSkewSeconds: 30,
        },
        pino({ level: 'silent' }, new Writable({ write: (_c, _e, cb) => cb() })),
      );
      const next = await service.release({ role: 'host', name: 'h1' }, { grant: grantFor(pki, 'h1', [keyId]), count: 1 });
      expect(next[0].senderIds).toEqual([r.body.keys[0].senderIds[2] + 1]);
    } finally {
      await other.close();
    }
  } finally {
    await km.close();
  }
});
