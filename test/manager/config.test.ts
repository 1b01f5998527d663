/**
 * Manager configuration: flags alone are enough (how `dne server` starts
 * it), a file is validated as a whole, token files must be private.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hashToken } from '../../ts/manager/app';
import { adminTokensOf, loadManagerConfig } from '../../ts/manager/config';
import { tmpDir } from './helpers';

test('flags alone: --pki-dir, --name, --db, --port, token files', () => {
  const dir = tmpDir('mgrcfg');
  const c = loadManagerConfig({ pkiDir: 'pki', name: 'm7', db: 'm.db', port: 0, adminTokenFile: ['admin.token'] }, dir);
  expect(c).toEqual({
    name: 'm7',
    listen: { host: '127.0.0.1', port: 0 },
    tls: { cert: path.join(dir, 'pki/manager-m7.crt'), key: path.join(dir, 'pki/manager-m7.key'), ca: path.join(dir, 'pki/ca.crt') },
    store: { driver: 'sqlite', path: path.join(dir, 'm.db') },
    adminTokens: [],
    adminTokenFiles: [path.join(dir, 'admin.token')],
    autoPublishInventory: true,
    autoPublishMinIntervalSeconds: 2,
    trustedReportedTagScopes: [],
    bodyLimitBytes: 1024 * 1024,
    logLevel: 'info',
  });
  expect(loadManagerConfig({ pkiDir: 'pki' }, dir).listen.port).toBe(8444);
  expect(loadManagerConfig({ pkiDir: 'pki', autoPublishInventory: false }, dir).autoPublishInventory).toBe(false);
  const t = loadManagerConfig({ pkiDir: 'pki', trustReportedTagScope: ['os', 'rack'], autoPublishMinInterval: 0.5 }, dir);
  expect(t).toMatchObject({ trustedReportedTagScopes: ['os', 'rack'], autoPublishMinIntervalSeconds: 0.5 });
});

test('trusted reported tag scopes and the auto-publish interval: file, flags added to the file', () => {
  const dir = tmpDir('mgrcfg');
  fs.writeFileSync(path.join(dir, 'm.yaml'), 'tls: { cert: a, key: b, ca: c }\ntrustedReportedTagScopes: [os]\nautoPublishMinIntervalSeconds: 10\n');
  expect(loadManagerConfig({ config: 'm.yaml' }, dir)).toMatchObject({ trustedReportedTagScopes: ['os'], autoPublishMinIntervalSeconds: 10 });
  expect(loadManagerConfig({ config: 'm.yaml', trustReportedTagScope: ['rack'] }, dir).trustedReportedTagScopes).toEqual(['os', 'rack']);
});

test('a YAML file, paths relative to it, overridden by flags', () => {
  const dir = tmpDir('mgrcfg');
  fs.writeFileSync(
    path.join(dir, 'm.yaml'),
    'name: m2\nlisten: { host: 0.0.0.0, port: 9000 }\ntls: { cert: a.crt, key: a.key, ca: ca.crt }\nstore: { driver: sqlite, path: data/m.db }\nautoPublishInventory: false\n',
  );
  const c = loadManagerConfig({ config: 'm.yaml', port: 9001 }, dir);
  expect(c).toMatchObject({ name: 'm2', listen: { host: '0.0.0.0', port: 9001 }, tls: { cert: path.join(dir, 'a.crt') }, store: { path: path.join(dir, 'data/m.db') }, autoPublishInventory: false });
});

test.each([
  ['colour: red\n', 'config/colour is not a known setting'],
  ['logLevel: loud\n', 'config/logLevel must be one of fatal, error, warn, info, debug, trace, silent'],
  ['listen: { host: x, port: 70000 }\n', 'config/listen/port must be less or equal to 65535'],
  ['adminTokens: [{ name: ops, sha256: nothex }]\n', /^config\/adminTokens\/0\/sha256/],
  ['autoPublishMinIntervalSeconds: -1\n', 'config/autoPublishMinIntervalSeconds must be greater or equal to 0'],
  ['trustedReportedTagScopes: [""]\n', /^config\/trustedReportedTagScopes\/0/],
])('refused: %s', (yaml, message) => {
  const dir = tmpDir('mgrcfg');
  fs.writeFileSync(path.join(dir, 'm.yaml'), `tls: { cert: a, key: b, ca: c }\n${yaml}`);
  expect(() => loadManagerConfig({ config: 'm.yaml' }, dir)).toThrow(message);
});

test('no TLS files named: the message says how to name them', () => {
  expect(() => loadManagerConfig({}, tmpDir('mgrcfg'))).toThrow('config/tls/cert is required (give --pki-dir DIR, --tls-cert/--tls-key/--tls-ca, or tls in the config file)');
});

test('token files: hashed, named after the file, refused when others can read them', () => {
  const dir = tmpDir('mgrcfg');
  const f = path.join(dir, 'admin.token');
  fs.writeFileSync(f, 'a-very-secret-token-123\n', { mode: 0o600 });
  const c = loadManagerConfig({ pkiDir: 'pki', adminTokenFile: [f] }, dir);
  expect(adminTokensOf(c)).toEqual([{ name: 'admin', sha256: hashToken('a-very-secret-token-123') }]);
  fs.chmodSync(f, 0o644);
  expect(() => adminTokensOf(c)).toThrow(/refusing the admin token file: .* has mode 0644/);
  fs.writeFileSync(path.join(dir, 'short.token'), 'abc', { mode: 0o600 });
  expect(() => adminTokensOf(loadManagerConfig({ pkiDir: 'pki', adminTokenFile: [path.join(dir, 'short.token')] }, dir))).toThrow(/must hold one token of 16\.\.512 printable ASCII characters/);
});
