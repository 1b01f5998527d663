/**
 * `dne pki` and `dne keymanager` as an operator runs them: the built CLI,
 * real files, real processes.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes, X509Certificate } from 'node:crypto';
import { trustedGrantKey, verifyGrant } from '../../ts/common/grant';
import { tmpDir } from './helpers';
import { buildCli, dneSync, startKmProcess } from './spawn';

beforeAll(async () => {
  await buildCli();
}, 180_000);

function ok(args: string[], env?: NodeJS.ProcessEnv) {
  const r = dneSync(args, { env });
  if (r.status !== 0) throw new Error(`dne ${args.join(' ')} failed (${r.status}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

test('dne pki init and issue: what was written, modes, idempotence, refusal to overwrite, openssl agrees', () => {
  const dir = path.join(tmpDir('clipki'), 'pki');
  expect(ok(['pki', 'init', '--dir', dir])).toBe(`wrote ${dir}/ca.key (0600)\nwrote ${dir}/ca.crt (0644)\n`);
  const caBefore = fs.readFileSync(path.join(dir, 'ca.crt'));
  expect(ok(['pki', 'init', '--dir', dir])).toMatch(/^kept {2}.*ca\.crt.*\nkept {2}.*ca\.key/);
  expect(fs.readFileSync(path.join(dir, 'ca.crt')).equals(caBefore)).toBe(true);

  expect(ok(['pki', 'issue', '--dir', dir, '--role', 'controller', '--name', 'c1'])).toBe(
    [`wrote ${dir}/controller-c1.key (0600)`, `wrote ${dir}/controller-c1.crt (0644)`, `wrote ${dir}/controller-c1.grant.key (0600)`, `wrote ${dir}/controller-c1.grant.pub (0644)`, ''].join('\n'),
  );
  expect(ok(['pki', 'issue', '--dir', dir, '--role', 'host', '--name', 'h1', '--ip', '10.0.0.5', '--dns', 'h1.example'])).toMatch(/host-h1\.crt/);
  for (const f of ['ca.key', 'controller-c1.key', 'controller-c1.grant.key', 'host-h1.key']) expect(fs.statSync(path.join(dir, f)).mode & 0o777).toBe(0o600);

  // Same request again: kept. A different one: refused without --force, then replaced with it.
  expect(ok(['pki', 'issue', '--dir', dir, '--role', 'host', '--name', 'h1', '--ip', '10.0.0.5', '--dns', 'h1.example'])).toMatch(/^kept/);
  const r = dneSync(['pki', 'issue', '--dir', dir, '--role', 'host', '--name', 'h1']);
  expect(r.status).toBe(2);
  expect(r.stderr).toBe(`dne: ERR_DNE_PKI: ${dir}/host-h1.crt already exists and does not match the request (${dir}/host-h1.crt has other DNS/IP SANs); use --force to replace it\n`);
  expect(ok(['pki', 'issue', '--dir', dir, '--role', 'host', '--name', 'h1', '--force'])).toMatch(/^wrote/);

  const bad = dneSync(['pki', 'issue', '--dir', dir, '--role', 'wizard', '--name', 'x']);
  expect(bad.status).not.toBe(0);
  expect(bad.stderr).toMatch(/argument 'wizard' is invalid. Allowed choices are keymanager, controller, manager, host, admin/);
  const badName = dneSync(['pki', 'issue', '--dir', dir, '--role', 'host', '--name', '../etc']);
  expect(badName.stderr).toMatch(/name "\.\.\/etc" must be 1\.\.128 characters/);

  const v = spawnSync('openssl', ['verify', '-CAfile', path.join(dir, 'ca.crt'), path.join(dir, 'controller-c1.crt'), path.join(dir, 'host-h1.crt')], { encoding: 'utf8' });
  expect(v.stdout).toBe(`${dir}/controller-c1.crt: OK\n${dir}/host-h1.crt: OK\n`);
  const host = new X509Certificate(fs.readFileSync(path.join(dir, 'host-h1.crt')));
  expect(host.subjectAltName).toBe('URI:dne://host/h1');
});

test('dne keymanager: a YAML config, a refused master key, a clean SIGTERM; master-key, grant and rewrap tools', async () => {
  const dir = tmpDir('clikm');
  const pki = path.join(dir, 'pki');
  ok(['pki', 'init', '--dir', pki]);
  for (const [role, name] of [['keymanager', 'km1'], ['controller', 'c1'], ['host', 'h1']]) ok(['pki', 'issue', '--dir', pki, '--role', role, '--name', name]);
  expect(ok(['keymanager', 'master-key', '--out', path.join(dir, 'master.key')])).toMatch(/^wrote .*master\.key \(0600\), master key id [0-9a-f]{16}\n$/);
  fs.writeFileSync(
    path.join(dir, 'km.yaml'),
    `instanceId: km1
listen: { host: 127.0.0.1, port: 0 }
tls: { cert: pki/keymanager-km1.crt, key: pki/keymanager-km1.key, ca: pki/ca.crt }
store: { driver: sqlite, path: km.db }
masterKeyFile: master.key
grants: { trustedKeys: [pki/controller-c1.grant.pub] }
`,
  );

  // The master key file must be private.
  fs.chmodSync(path.join(dir, 'master.key'), 0o644);
  const refused = dneSync(['keymanager', '--config', path.join(dir, 'km.yaml')]);
  expect(refused.status).toBe(2);
  expect(refused.stderr).toBe(
    `dne: ERR_DNE_MASTER_KEY: refusing the master key file: ${dir}/master.key has mode 0644; it must not be readable by group or others (chmod 600 ${dir}/master.key)\n`,
  );
  fs.chmodSync(path.join(dir, 'master.key'), 0o600);

  // Or the environment, when the config names no file.
  const envKey = randomBytes(32).toString('hex');
  fs.writeFileSync(path.join(dir, 'env.yaml'), fs.readFileSync(path.join(dir, 'km.yaml'), 'utf8').replace('masterKeyFile: master.key\n', '').replace('km.db', 'env.db'));
  const envKm = await startKmProcess(['--config', path.join(dir, 'env.yaml')], { ...process.env, DNE_KM_MASTER_KEY: envKey });
  envKm.child.kill('SIGTERM');
  expect(await envKm.exited).toEqual({ code: 0, signal: null });

  const km = await startKmProcess(['--config', path.join(dir, 'km.yaml')]);
  let keyId: string;
  try {
    const curl = (who: string, ...args: string[]) =>
      spawnSync(
        'curl',
        ['-sS', '--cacert', path.join(pki, 'ca.crt'), '--cert', path.join(pki, `${who}.crt`), '--key', path.join(pki, `${who}.key`), ...args],
        { encoding: 'utf8' },
      );
    const created = curl('controller-c1', '-X', 'POST', '-H', 'content-type: application/json', '-d', '{"policyId":"cli","algorithm":"AES_GCM_128"}', `https://localhost:${km.port}/v1/keys`);
    keyId = JSON.parse(created.stdout).keyId;
    const grant = ok(['keymanager', 'grant', '--signing-key', path.join(pki, 'controller-c1.grant.key'), '--host', 'h1', '--key-ids', keyId, '--ttl', '30']).trim();
    expect(verifyGrant(grant, { trusted: [trustedGrantKey(fs.readFileSync(path.join(pki, 'controller-c1.grant.pub')))] }).payload).toMatchObject({ host: 'h1', keyIds: [keyId] });
    const rel = curl('host-h1', '-X', 'POST', '-H', 'content-type: application/json', '-d', JSON.stringify({ grant, count: 2 }), `https://localhost:${km.port}/v1/release`);
    expect(JSON.parse(rel.stdout).keys[0].senderIds).toEqual([1, 2]);
  } finally {
    km.child.kill('SIGTERM');
  }
  expect(await km.exited).toEqual({ code: 0, signal: null });

  // Rewrap offline; then the service starts only with the new key.
  ok(['keymanager', 'master-key', '--out', path.join(dir, 'new.key')]);
  const again = dneSync(['keymanager', 'master-key', '--out', path.join(dir, 'new.key')]);
  expect(again.stderr).toMatch(/new\.key exists; refusing to replace a master key/);
  expect(ok(['keymanager', 'rewrap', '--db', path.join(dir, 'km.db'), '--old-master', path.join(dir, 'master.key'), '--new-master', path.join(dir, 'new.key')])).toMatch(
    /^re-wrapped 1 key\(s\) in .*km\.db: master key id [0-9a-f]{16} -> [0-9a-f]{16}\n$/,
  );
  const stale = dneSync(['keymanager', '--config', path.join(dir, 'km.yaml')]);
  expect(stale.status).toBe(2);
  expect(stale.stderr).toMatch(/ERR_DNE_MASTER_KEY: the master key \(id [0-9a-f]{16}\) is not the one this database's keys are sealed with/);
  const missing = dneSync(['keymanager', 'rewrap', '--db', path.join(dir, 'nope.db'), '--old-master', path.join(dir, 'master.key'), '--new-master', path.join(dir, 'new.key')]);
  expect(missing.stderr).toMatch(/ERR_DNE_STORE: database .*nope\.db does not exist/);
  expect(fs.existsSync(path.join(dir, 'nope.db'))).toBe(false);
}, 120_000);

test('dne keymanager --pki-dir trusts only the controllers named with --trust-controller; a restored database needs --accept-restored-store', async () => {
  const dir = tmpDir('clitrust');
  const pki = path.join(dir, 'pki');
  ok(['pki', 'init', '--dir', pki]);
  for (const [role, name] of [['keymanager', 'km1'], ['controller', 'c1'], ['controller', 'c-old'], ['host', 'h1']]) ok(['pki', 'issue', '--dir', pki, '--role', role, '--name', name]);
  ok(['keymanager', 'master-key', '--out', path.join(dir, 'master.key')]);
  const db = path.join(dir, 'km.db');
  const args = ['--pki-dir', pki, '--name', 'km1', '--db', db, '--master-key-file', path.join(dir, 'master.key'), '--port', '0'];

  const none = dneSync(['keymanager', ...args]);
  expect(none.status).toBe(2);
  expect(none.stderr).toBe(
    `dne: ERR_DNE_CONFIG: --pki-dir trusts the grant keys of the controllers you name: give --trust-controller NAME (repeatable) for controller-NAME.grant.pub in ${pki}, or --grant-key FILE\n`,
  );

  const curl = (port: number, who: string, urlPath: string, body: unknown) =>
    JSON.parse(
      spawnSync(
        'curl',
        ['-sS', '--cacert', path.join(pki, 'ca.crt'), '--cert', path.join(pki, `${who}.crt`), '--key', path.join(pki, `${who}.key`), '-H', 'content-type: application/json', '-d', JSON.stringify(body), `https://localhost:${port}${urlPath}`],
        { encoding: 'utf8' },
      ).stdout,
    );
  const grant = (signer: string, keyId: string) => ok(['keymanager', 'grant', '--signing-key', path.join(pki, `controller-${signer}.grant.key`), '--host', 'h1', '--key-ids', keyId]).trim();

  const km = await startKmProcess(['--trust-controller', 'c1', ...args]);
  let keyId = '';
  const released: number[] = [];
  try {
    keyId = curl(km.port, 'controller-c1', '/v1/keys', { policyId: 'cli-trust', algorithm: 'AES_GCM_128' }).keyId;
    released.push(...curl(km.port, 'host-h1', '/v1/release', { grant: grant('c1', keyId), count: 4 }).keys[0].senderIds);
    // A grant signed by another controller issued from the same directory is refused.
    const other = curl(km.port, 'host-h1', '/v1/release', { grant: grant('c-old', keyId), count: 1 });
    expect(other).toMatchObject({ statusCode: 403, code: 'ERR_DNE_GRANT_REFUSED' });
  } finally {
    km.child.kill('SIGTERM');
  }
  expect(await km.exited).toEqual({ code: 0, signal: null });

  // Backup (the process is stopped: the database file is complete), then more releases.
  fs.copyFileSync(db, path.join(dir, 'backup.db'));
  const km2 = await startKmProcess(['--trust-controller', 'c1', ...args]);
  try {
    released.push(...curl(km2.port, 'host-h1', '/v1/release', { grant: grant('c1', keyId), count: 4 }).keys[0].senderIds);
  } finally {
    km2.child.kill('SIGTERM');
  }
  expect(await km2.exited).toEqual({ code: 0, signal: null });
  expect(released).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);

  // Restore the backup: refused; accepted with the flag, and the IDs go on above 8.
  fs.copyFileSync(path.join(dir, 'backup.db'), db);
  for (const ext of ['-wal', '-shm']) fs.rmSync(db + ext, { force: true });
  const refused = dneSync(['keymanager', '--trust-controller', 'c1', ...args]);
  expect(refused.status).toBe(2);
  expect(refused.stderr).toMatch(/^dne: ERR_DNE_STORE: the database is behind its sender-ID high-water mark .*km\.db\.km1\.hwm \(allocation 1 of 2; 1 key counter\(s\) behind\): it was restored from a backup .*--accept-restored-store/);
  const km3 = await startKmProcess(['--trust-controller', 'c1', '--accept-restored-store', ...args]);
  try {
    expect(curl(km3.port, 'host-h1', '/v1/release', { grant: grant('c1', keyId), count: 2 }).keys[0].senderIds).toEqual([9, 10]);
  } finally {
    km3.child.kill('SIGTERM');
  }
  expect(await km3.exited).toEqual({ code: 0, signal: null });
}, 120_000);
