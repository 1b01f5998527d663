/**
 * The master key and the envelope: where the key may come from (a 0600 file
 * owned by us, or the environment), AES-256-GCM sealing bound to the row, and
 * re-wrapping every key under a new master key in one transaction.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { keyAad, loadMasterKey, MasterKey, masterKeyFromEnv, masterKeyFromFile, generateMasterKeyFile } from '../../ts/keymanager/master-key';
import { KeyService } from '../../ts/keymanager/service';
import { SqliteKeyStore } from '../../ts/keymanager/sqlite-store';
import { client, closeAgents, grantFor, makePki, startKm, TestPki, tmpDir } from './helpers';

const dir = tmpDir('mk');

function keyFile(name: string, content: Buffer | string, mode = 0o600): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, content, { mode });
  fs.chmodSync(f, mode);
  return f;
}

describe('loading', () => {
  const k = randomBytes(32);

  test('hex or raw file, 0600, owned by us', () => {
    expect(masterKeyFromFile(keyFile('hex', k.toString('hex') + '\n')).id).toBe(new MasterKey(k).id);
    expect(masterKeyFromFile(keyFile('raw', k)).id).toBe(new MasterKey(k).id);
    expect(masterKeyFromFile(keyFile('ro', k.toString('hex'), 0o400)).id).toBe(new MasterKey(k).id);
  });

  test.each([0o644, 0o640, 0o604, 0o660])('mode %o is refused with the fix in the message', (mode) => {
    const f = keyFile(`m${mode.toString(8)}`, k.toString('hex'), mode);
    expect(() => masterKeyFromFile(f)).toThrow(
      `refusing the master key file: ${f} has mode 0${mode.toString(8)}; it must not be readable by group or others (chmod 600 ${f})`,
    );
  });

  test('a file owned by someone else is refused', () => {
    if (process.getuid?.() !== 0) return; // needs root to chown
    const f = keyFile('nobody', k.toString('hex'));
    fs.chownSync(f, 65534, 65534);
    expect(() => masterKeyFromFile(f)).toThrow(`refusing the master key file: ${f} is owned by uid 65534, not by the user running dne (uid 0)`);
  });

  test('wrong sizes, missing files, the environment, and nothing at all', () => {
    expect(() => masterKeyFromFile(keyFile('short', randomBytes(16)))).toThrow(/must hold 32 raw bytes or 64 hex digits \(it holds 16 bytes\)/);
    expect(() => masterKeyFromFile(path.join(dir, 'absent'))).toThrow(/cannot read .*absent: ENOENT/);
    expect(masterKeyFromEnv(k.toString('hex')).id).toBe(new MasterKey(k).id);
    expect(() => masterKeyFromEnv('abc')).toThrow('DNE_KM_MASTER_KEY must be 64 hex digits');
    expect(loadMasterKey({ env: { DNE_KM_MASTER_KEY: k.toString('hex') } }).id).toBe(new MasterKey(k).id);
    const other = randomBytes(32);
    expect(loadMasterKey({ file: keyFile('pref', other.toString('hex')), env: { DNE_KM_MASTER_KEY: k.toString('hex') } }).id).toBe(new MasterKey(other).id);
    expect(() => loadMasterKey({ env: {} })).toThrow('no master key: set masterKeyFile in the config (or --master-key-file), or DNE_KM_MASTER_KEY');
  });

  test('generated files are 0600 and never overwritten without force', () => {
    const f = path.join(dir, 'gen.key');
    generateMasterKeyFile(f);
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
    const id = masterKeyFromFile(f).id;
    expect(() => generateMasterKeyFile(f)).toThrow(/exists; refusing to replace a master key/);
    expect(masterKeyFromFile(f).id).toBe(id);
  });
});

describe('envelope', () => {
  const mk = new MasterKey(randomBytes(32));
  const plain = randomBytes(36);
  const aad = keyAad('11111111-1111-4111-8111-111111111111', 'p', 'AES_GCM_256');

  test('round trip, fresh nonce each time', () => {
    const a = mk.seal(plain, aad);
    const b = mk.seal(plain, aad);
    expect(a.equals(b)).toBe(false);
    expect(a.length).toBe(1 + 12 + 36 + 16);
    expect(mk.open(a, aad).equals(plain)).toBe(true);
  });

  test('another row (keyId, policy or algorithm), another master key, or one flipped bit: no plaintext', () => {
    const s = mk.seal(plain, aad);
    expect(() => mk.open(s, keyAad('22222222-2222-4222-8222-222222222222', 'p', 'AES_GCM_256'))).toThrow();
    expect(() => mk.open(s, keyAad('11111111-1111-4111-8111-111111111111', 'q', 'AES_GCM_256'))).toThrow();
    expect(() => mk.open(s, keyAad('11111111-1111-4111-8111-111111111111', 'p', 'AES_GCM_128'))).toThrow();
    expect(() => new MasterKey(randomBytes(32)).open(s, aad)).toThrow();
    for (const i of [0, 5, 20, s.length - 1]) {
      const t = Buffer.from(s);
      t[i] ^= 1;
      expect(() => mk.open(t, aad)).toThrow();
    }
  });

  test('destroy wipes the key', () => {
    const m = new MasterKey(randomBytes(32));
    const s = m.seal(plain, aad);
    m.destroy();
    expect(() => m.open(s, aad)).toThrow();
  });
});

describe('rewrap', () => {
  let pki: TestPki;
  beforeAll(async () => {
    pki = await makePki();
  });
  afterAll(() => closeAgents());

  test('every key re-sealed under the new master key in one go; the old key stops working; bytes unchanged', async () => {
    const km = await startKm(pki);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await client(km.port, pki, 'controller/c1')('POST', '/v1/keys', { policyId: `rw-${i}`, algorithm: 'AES_GCM_256' })).body.keyId);
    const before = await client(km.port, pki, 'host/h1')('POST', '/v1/release', { grant: grantFor(pki, 'h1', ids), count: 1 });
    expect(before.status).toBe(200);
    await km.close();

    const oldKey = new MasterKey(km.masterKey);
    const newBytes = randomBytes(32);
    const wrong = new MasterKey(randomBytes(32));
    const store = new SqliteKeyStore(km.dbFile);
    try {
      // With the wrong "old" key nothing changes.
      await expect(KeyService.rewrap(store, wrong, new MasterKey(newBytes))).rejects.toThrow(
        `the old master key (id ${wrong.id}) is not the one this database is sealed with (id ${oldKey.id})`,
      );
      expect(await KeyService.rewrap(store, oldKey, new MasterKey(newBytes))).toBe(5);
      await expect(KeyService.rewrap(store, new MasterKey(newBytes), new MasterKey(newBytes))).rejects.toThrow('the new master key is the same as the old one');
    } finally {
      await store.close();
    }

    await expect(startKm(pki, { dbFile: km.dbFile, masterKey: km.masterKey })).rejects.toThrow(
      /^the master key \(id [0-9a-f]{16}\) is not the one this database's keys are sealed with \(id [0-9a-f]{16}\); use the right key or 'dne keymanager rewrap'$/,
    );
    const km2 = await startKm(pki, { dbFile: km.dbFile, masterKey: newBytes });
    try {
      const after = await client(km2.port, pki, 'host/h1')('POST', '/v1/release', { grant: grantFor(pki, 'h1', ids), count: 1 });
      expect(after.status).toBe(200);
      expect(after.body.keys.map((k: { key: string; salt: string }) => k.key + k.salt)).toEqual(before.body.keys.map((k: { key: string; salt: string }) => k.key + k.salt));
      const audit = await client(km2.port, pki, 'admin/ops')('GET', '/v1/audit?limit=1000');
      const rw = audit.body.entries.filter((e: { action: string }) => e.action === 'rewrap');
      expect(rw).toHaveLength(1);
      expect(rw[0].detail).toEqual({ keys: 5, fromMasterKeyId: oldKey.id, toMasterKeyId: new MasterKey(newBytes).id });
    } finally {
      await km2.close();
    }
  });
});
