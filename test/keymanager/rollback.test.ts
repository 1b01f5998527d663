/**
 * Rollback guard (high-water-mark.ts): a key manager started on a database
 * restored from a backup, or on a copy, would hand out sender IDs again that
 * hosts already use (AES-GCM nonce reuse). It refuses to start, unless the
 * operator accepts the restored store: then every ID it hands out is above
 * every ID handed out before.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { highWaterMarkFile } from '../../ts/keymanager/high-water-mark';
import { client, closeAgents, grantFor, makePki, startKm, TestPki, tmpDir } from './helpers';

let pki: TestPki;

beforeAll(async () => {
  pki = await makePki();
});

afterAll(() => closeAgents());

/** Copies a database (checkpointed: the main file holds everything) without its WAL/SHM. */
function copyDb(from: string, to: string): void {
  fs.copyFileSync(from, to);
  for (const ext of ['-wal', '-shm']) fs.rmSync(to + ext, { force: true });
}

async function release(port: number, keyId: string, count: number): Promise<number[]> {
  const r = await client(port, pki, 'host/h1')('POST', '/v1/release', { grant: grantFor(pki, 'h1', [keyId]), count });
  expect(r.status).toBe(200);
  return r.body.keys[0].senderIds as number[];
}

test('the high-water mark is a 0600 file next to the database, on disk before the release answers', async () => {
  const dbFile = path.join(tmpDir('hwm'), 'km.db');
  const km = await startKm(pki, { dbFile });
  try {
    const keyId = (await client(km.port, pki, 'controller/c1')('POST', '/v1/keys', { policyId: 'hwm-1', algorithm: 'AES_GCM_128' })).body.keyId;
    const file = highWaterMarkFile(dbFile, 'km1');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    for (let i = 1; i <= 3; i++) {
      const ids = await release(km.port, keyId, 5);
      const marks = JSON.parse(fs.readFileSync(file, 'utf8'));
      expect(marks).toMatchObject({ v: 1, instanceId: 'km1', range: [1, 2 ** 24], seq: i });
      expect(marks.next[keyId]).toBe(ids[4] + 1);
    }
  } finally {
    await km.close();
  }
});

test('restored from a backup: the start is refused; with --accept-restored-store the next IDs are above every ID released before', async () => {
  const dir = tmpDir('hwm-restore');
  const dbFile = path.join(dir, 'km.db');
  const backup = path.join(dir, 'backup.db');
  const km = await startKm(pki, { dbFile });
  const masterKey = km.masterKey;
  const c1 = client(km.port, pki, 'controller/c1');
  const keyId = (await c1('POST', '/v1/keys', { policyId: 'hwm-2', algorithm: 'AES_GCM_256' })).body.keyId as string;
  const other = (await c1('POST', '/v1/keys', { policyId: 'hwm-3', algorithm: 'AES_GCM_128' })).body.keyId as string;
  const handedOut: number[] = [];
  handedOut.push(...(await release(km.port, keyId, 8)));
  await km.store.checkpoint();
  copyDb(dbFile, backup); // the nightly backup
  for (let i = 0; i < 5; i++) handedOut.push(...(await release(km.port, keyId, 8)));
  handedOut.push(...(await release(km.port, other, 3))); // a key the backup never released
  await km.close();

  copyDb(backup, dbFile); // the operator restores it; the high-water mark stays where it was
  await expect(startKm(pki, { dbFile, masterKey })).rejects.toThrow(
    /the database is behind its sender-ID high-water mark .*km\.db\.km1\.hwm \(allocation 1 of 7; 2 key counter\(s\) behind\): it was restored from a backup or replaced\. Serving it would hand out again sender IDs that hosts already use \(AES-GCM nonce reuse\)\. Rotate every key .*--accept-restored-store/,
  );

  const km2 = await startKm(pki, { dbFile, masterKey, settings: { acceptRestoredStore: true } });
  try {
    const next = await release(km2.port, keyId, 8);
    expect(Math.min(...next)).toBeGreaterThan(Math.max(...handedOut));
    // The key whose only release the backup does not hold: raised too (the file recorded it).
    expect(await release(km2.port, other, 3)).toEqual([4, 5, 6]);
    const audit = await client(km2.port, pki, 'admin/ops')('GET', '/v1/audit?limit=1000');
    const accepted = audit.body.entries.find((e: { action: string }) => e.action === 'accept-restored-store');
    expect(accepted).toMatchObject({ actor: 'dne://keymanager/km1', outcome: 'ok', detail: { databaseSeq: 1, fileSeq: 7, countersRaised: 2, keysClosed: 0 } });
  } finally {
    await km2.close();
  }
  // Once accepted, the database and the file agree again: a plain restart is fine.
  const km3 = await startKm(pki, { dbFile, masterKey });
  await km3.close();
});

test('a copied database (no high-water mark next to it) is refused; with the flag its keys get no more IDs from this instance', async () => {
  const dirA = tmpDir('hwm-a');
  const dbA = path.join(dirA, 'km.db');
  const km = await startKm(pki, { dbFile: dbA });
  const masterKey = km.masterKey;
  const c1 = client(km.port, pki, 'controller/c1');
  const keyId = (await c1('POST', '/v1/keys', { policyId: 'hwm-4', algorithm: 'AES_GCM_128' })).body.keyId as string;
  await release(km.port, keyId, 4);
  await km.store.checkpoint();
  const dbB = path.join(tmpDir('hwm-b'), 'km.db');
  copyDb(dbA, dbB);
  await km.close();

  await expect(startKm(pki, { dbFile: dbB, masterKey })).rejects.toThrow(
    /the database has sender IDs allocated by instance km1 \(1 key\(s\)\) but its high-water-mark file .*km\.db\.km1\.hwm is missing: the database was copied \(or the file deleted\)\. Serving it would hand out again/,
  );
  const kmB = await startKm(pki, { dbFile: dbB, masterKey, settings: { acceptRestoredStore: true } });
  try {
    const r = await client(kmB.port, pki, 'host/h1')('POST', '/v1/release', { grant: grantFor(pki, 'h1', [keyId]), count: 1 });
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('ERR_DNE_SENDER_IDS_EXHAUSTED');
    // The way on is a rotation: the new key is released normally.
    const rot = await client(kmB.port, pki, 'controller/c1')('POST', '/v1/policies/hwm-4/rotate', {});
    expect(await release(kmB.port, rot.body.key.keyId, 2)).toEqual([1, 2]);
  } finally {
    await kmB.close();
  }
  // The original is untouched and starts as before.
  const again = await startKm(pki, { dbFile: dbA, masterKey });
  try {
    expect(await release(again.port, keyId, 1)).toEqual([5]);
  } finally {
    await again.close();
  }
});

test('a high-water mark behind the database (crash between COMMIT and the write) is no refusal', async () => {
  const dbFile = path.join(tmpDir('hwm-behind'), 'km.db');
  const km = await startKm(pki, { dbFile });
  const masterKey = km.masterKey;
  const keyId = (await client(km.port, pki, 'controller/c1')('POST', '/v1/keys', { policyId: 'hwm-5', algorithm: 'AES_GCM_128' })).body.keyId as string;
  await release(km.port, keyId, 2);
  const file = highWaterMarkFile(dbFile, 'km1');
  const older = fs.readFileSync(file);
  await release(km.port, keyId, 2);
  await km.close();
  fs.writeFileSync(file, older);
  const km2 = await startKm(pki, { dbFile, masterKey });
  try {
    expect(await release(km2.port, keyId, 2)).toEqual([5, 6]);
  } finally {
    await km2.close();
  }
});
