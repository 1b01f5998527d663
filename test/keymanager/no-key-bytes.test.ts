/**
 * Acceptance 4: the database (main file and WAL) and the logs never contain
 * key bytes. Every key and salt the key manager generated is recovered by
 * opening the store with the master key, then searched for as raw bytes,
 * hex (both cases), base64 and base64url, alone and as key ‖ salt.
 */
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { keyAad, MasterKey } from '../../ts/keymanager/master-key';
import { SqliteKeyStore } from '../../ts/keymanager/sqlite-store';
import { KEY_BYTES, KeyRow } from '../../ts/keymanager/store';
import { client, closeAgents, encodings, grantFor, LogCapture, makePki, startKm, TestPki } from './helpers';

let pki: TestPki;

beforeAll(async () => {
  pki = await makePki();
});

afterAll(() => closeAgents());

interface Material {
  keyId: string;
  key: Buffer;
  salt: Buffer;
}

function findAll(haystacks: { name: string; data: Buffer }[], secrets: Material[]): string[] {
  const hits: string[] = [];
  for (const s of secrets) {
    const forms = [
      ...encodings(s.key).map((e) => ({ ...e, what: 'key' })),
      ...encodings(s.salt).map((e) => ({ ...e, what: 'salt' })),
      ...encodings(Buffer.concat([s.key, s.salt])).map((e) => ({ ...e, what: 'key‖salt' })),
    ];
    for (const h of haystacks) for (const f of forms) if (h.data.indexOf(f.bytes) >= 0) hits.push(`${f.what} of ${s.keyId} as ${f.name} in ${h.name}`);
  }
  return hits;
}

test('no key or salt bytes in the database file, its WAL, or the logs (trace level)', async () => {
  const logs = new LogCapture();
  const km = await startKm(pki, { logs, logLevel: 'trace' });
  const c1 = client(km.port, pki, 'controller/c1');
  const h1 = client(km.port, pki, 'host/h1');
  const released = new Map<string, Material>();
  try {
    const keyIds: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await c1('POST', '/v1/keys', { policyId: `nkb-${i}`, algorithm: i % 2 ? 'AES_GCM_128' : 'AES_GCM_256' });
      expect(r.status).toBe(201);
      keyIds.push(r.body.keyId);
    }
    for (let i = 0; i < 4; i++) {
      const r = await c1('POST', `/v1/policies/nkb-${i}/rotate`, {});
      expect(r.status).toBe(201);
      keyIds.push(r.body.key.keyId);
    }
    expect((await c1('POST', `/v1/keys/${keyIds[7]}/revoke`, { reason: 'compromised' })).status).toBe(200);
    for (let round = 0; round < 3; round++) {
      const r = await h1('POST', '/v1/release', { grant: grantFor(pki, 'h1', keyIds.slice(0, 7).concat(keyIds.slice(8))), count: 4 });
      expect(r.status).toBe(200);
      for (const k of r.body.keys) released.set(k.keyId, { keyId: k.keyId, key: Buffer.from(k.key, 'base64'), salt: Buffer.from(k.salt, 'base64') });
    }
    // Refusals get logged and audited too: make some that carry a grant.
    expect((await h1('POST', '/v1/release', { grant: grantFor(pki, 'h1', [keyIds[7]]), count: 1 })).status).toBe(403);
    expect((await client(km.port, pki, 'host/h2')('POST', '/v1/release', { grant: grantFor(pki, 'h1', [keyIds[0]]), count: 1 })).status).toBe(403);
    expect((await h1('POST', '/v1/release', `{"grant": "${grantFor(pki, 'h1', [keyIds[0]])}", "count": 1,`)).status).toBe(400);
    expect((await c1('GET', '/v1/audit')).status).toBe(403);
    expect((await client(km.port, pki, 'admin/ops')('GET', '/v1/audit?limit=1000')).status).toBe(200);

    // Every key ever generated, from the store itself.
    const reader = new SqliteKeyStore(km.dbFile, { readonly: true });
    const master = new MasterKey(km.masterKey);
    let rows: KeyRow[] = [];
    try {
      rows = await reader.read((tx) => tx.listKeys({ limit: 1000 }));
    } finally {
      await reader.close();
    }
    expect(rows).toHaveLength(12);
    const all: Material[] = rows.map((r) => {
      const m = master.open(r.sealed, keyAad(r.keyId, r.policyId, r.algorithm));
      const n = KEY_BYTES[r.algorithm];
      return { keyId: r.keyId, key: m.subarray(0, n), salt: m.subarray(n) };
    });
    // What hosts received is exactly what is stored.
    expect(released.size).toBe(11);
    for (const [keyId, m] of released) {
      const s = all.find((a) => a.keyId === keyId)!;
      expect(s.key.equals(m.key) && s.salt.equals(m.salt)).toBe(true);
    }

    // While running: main file + WAL.
    const files = () =>
      [km.dbFile, `${km.dbFile}-wal`, `${km.dbFile}-shm`].filter((f) => fs.existsSync(f)).map((f) => ({ name: f, data: fs.readFileSync(f) }));
    const running = files();
    expect(running.find((f) => f.name.endsWith('-wal'))!.data.length).toBeGreaterThan(0);
    const logText = { name: 'logs', data: Buffer.from(logs.text) };
    // the logs are really there: every request, the refusals with their reasons
    expect(logs.lines.filter((l) => l.includes('"msg":"incoming request"')).length).toBeGreaterThanOrEqual(20);
    expect(logs.lines.filter((l) => l.includes('"msg":"refused release"'))).toHaveLength(2);
    expect(findAll([...running, logText], all)).toEqual([]);

    // The search itself works: the sealed blobs are there, and a planted key is found.
    for (const r of rows) expect(running.some((f) => f.data.indexOf(r.sealed) >= 0)).toBe(true);
    const planted = { keyId: 'planted', key: randomBytes(16), salt: randomBytes(4) };
    expect(findAll([{ name: 'x', data: Buffer.concat([randomBytes(100), Buffer.from(planted.key.toString('hex')), randomBytes(100)]) }], [planted])).toEqual([
      'key of planted as hex in x',
    ]);

    // The master key is not in there either.
    expect(findAll([...running, logText], [{ keyId: 'master', key: km.masterKey, salt: km.masterKey.subarray(0, 4) }]).filter((h) => h.startsWith('key'))).toEqual([]);
  } finally {
    await km.close();
  }
  // After close (WAL checkpointed into the main file).
  expect(findAll([{ name: km.dbFile, data: fs.readFileSync(km.dbFile) }], [...released.values()])).toEqual([]);
});
