/**
 * Configuration: JSON or YAML, paths relative to the file, flags win,
 * --pki-dir conveniences, and precise refusals of anything unknown or wrong.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadKeyManagerConfig } from '../../ts/keymanager/config';
import { tmpDir } from './helpers';

const base = { tls: { cert: 'km.crt', key: 'km.key', ca: 'ca.crt' }, grants: { trustedKeys: ['c1.grant.pub'] } };

function write(name: string, content: unknown): string {
  const dir = tmpDir('cfg');
  const f = path.join(dir, name);
  fs.writeFileSync(f, typeof content === 'string' ? content : JSON.stringify(content));
  return f;
}

test('defaults, with paths resolved next to the config file', () => {
  const f = write('km.json', base);
  const dir = path.dirname(f);
  expect(loadKeyManagerConfig({ config: f })).toEqual({
    instanceId: 'km1',
    listen: { host: '127.0.0.1', port: 8443 },
    tls: { cert: path.join(dir, 'km.crt'), key: path.join(dir, 'km.key'), ca: path.join(dir, 'ca.crt') },
    store: { driver: 'sqlite', path: path.join(dir, 'keymanager.db') },
    senderIds: { bits: 24, start: 1, end: 2 ** 24 },
    grants: { trustedKeys: [path.join(dir, 'c1.grant.pub')], maxLifetimeSeconds: 300, clockSkewSeconds: 30 },
    bodyLimitBytes: 65536,
    logLevel: 'info',
    expirySweepSeconds: 60,
  });
});

test('YAML, and flags override the file', () => {
  const f = write(
    'km.yaml',
    `instanceId: km-a
listen: { host: 0.0.0.0, port: 9443 }
tls: { cert: /etc/dne/km.crt, key: /etc/dne/km.key, ca: /etc/dne/ca.crt }
store: { driver: sqlite, path: /var/lib/dne/km.db }
masterKeyFile: master.key
senderIds: { bits: 16, start: 100, end: 200 }
grants:
  trustedKeys: [/etc/dne/c1.grant.pub]
  maxLifetimeSeconds: 120
`,
  );
  const c = loadKeyManagerConfig({ config: f, port: 0, senderIdRange: '300-400', logLevel: 'debug', grantKey: ['x.pub', 'y.pub'] }, '/work');
  expect(c.instanceId).toBe('km-a');
  expect(c.listen).toEqual({ host: '0.0.0.0', port: 0 });
  expect(c.masterKeyFile).toBe(path.join(path.dirname(f), 'master.key'));
  expect(c.senderIds).toEqual({ bits: 16, start: 300, end: 400 });
  expect(c.grants).toEqual({ trustedKeys: ['/work/x.pub', '/work/y.pub'], maxLifetimeSeconds: 120, clockSkewSeconds: 30 });
  expect(c.store.path).toBe('/var/lib/dne/km.db');
  expect(c.logLevel).toBe('debug');
});

test('--pki-dir takes the instance certificate and the CA, and trusts only the grant keys of the controllers named', () => {
  const dir = tmpDir('cfgpki');
  for (const f of ['controller-c1.grant.pub', 'controller-c2.grant.pub', 'controller-old.grant.pub', 'controller-c1.grant.key', 'host-h1.crt']) fs.writeFileSync(path.join(dir, f), '');
  const c = loadKeyManagerConfig({ pkiDir: dir, name: 'km7', db: 'x.db', trustController: ['c1'] }, '/srv');
  expect(c.instanceId).toBe('km7');
  expect(c.tls).toEqual({ cert: path.join(dir, 'keymanager-km7.crt'), key: path.join(dir, 'keymanager-km7.key'), ca: path.join(dir, 'ca.crt') });
  // controller-c2 and controller-old are in the directory but not named: not trusted.
  expect(c.grants.trustedKeys).toEqual([path.join(dir, 'controller-c1.grant.pub')]);
  expect(c.store.path).toBe('/srv/x.db');
  expect(loadKeyManagerConfig({ pkiDir: dir, trustController: ['c2', 'c1'] }).grants.trustedKeys).toEqual([
    path.join(dir, 'controller-c2.grant.pub'),
    path.join(dir, 'controller-c1.grant.pub'),
  ]);
  // An explicit key instead of names.
  expect(loadKeyManagerConfig({ pkiDir: dir, grantKey: ['k.pub'] }, '/srv').grants.trustedKeys).toEqual(['/srv/k.pub']);
});

test('--pki-dir with neither --trust-controller nor --grant-key refuses to start, and says what to give', () => {
  const dir = tmpDir('cfgpki2');
  fs.writeFileSync(path.join(dir, 'controller-c1.grant.pub'), '');
  expect(() => loadKeyManagerConfig({ pkiDir: dir })).toThrow(
    `--pki-dir trusts the grant keys of the controllers you name: give --trust-controller NAME (repeatable) for controller-NAME.grant.pub in ${dir}, or --grant-key FILE`,
  );
  expect(() => loadKeyManagerConfig({ pkiDir: dir, trustController: ['c9'] })).toThrow(
    `--trust-controller c9: ${path.join(dir, 'controller-c9.grant.pub')} does not exist (dne pki issue --dir ${dir} --role controller --name c9)`,
  );
  expect(() => loadKeyManagerConfig({ pkiDir: dir, trustController: ['../c1'] })).toThrow('--trust-controller "../c1" is not a valid controller name (1-128 of A-Za-z0-9._-)');
  expect(() => loadKeyManagerConfig({ config: write('km.json', base), trustController: ['c1'] })).toThrow(
    '--trust-controller needs --pki-dir (elsewhere, give the grant public key with --grant-key FILE)',
  );
});

test.each([
  [{ ...base, foo: 1 }, 'config/foo is not a known setting'],
  [{ ...base, tls: { cert: 'a', key: 'b' } }, 'config/tls/ca is required'],
  [{ ...base, tls: { ...base.tls, pin: 'x' } }, 'config/tls/pin is not a known setting'],
  [{ ...base, senderIds: { bits: 12 } }, 'config/senderIds/bits must be one of 8, 16, 24, 32'],
  [{ ...base, senderIds: { bits: 8, start: 0, end: 300 } }, 'config/senderIds: the range [0, 300) must be non-empty and within 2^8'],
  [{ ...base, senderIds: { start: 50, end: 50 } }, 'config/senderIds: the range [50, 50) must be non-empty and within 2^24'],
  [{ ...base, listen: { port: 'https' } }, 'config/listen/port must be integer'],
  [{ ...base, logLevel: 'loud' }, 'config/logLevel must be one of fatal, error, warn, info, debug, trace, silent'],
  [{ ...base, grants: { trustedKeys: [] } }, 'config/grants/trustedKeys must name at least one controller grant public key (PEM file)'],
  [{ ...base, instanceId: 'km 1' }, /^config\/instanceId must be string to match/],
  [{ ...base, store: { driver: 'postgres', path: 'x' } }, /^config\/store\/driver must be/],
])('refused: %j', (cfg, message) => {
  const f = write('km.json', cfg);
  expect(() => loadKeyManagerConfig({ config: f })).toThrow(message);
});

test('unreadable or malformed files', () => {
  expect(() => loadKeyManagerConfig({ config: '/nonexistent/km.json' })).toThrow('cannot read config /nonexistent/km.json: ENOENT');
  expect(() => loadKeyManagerConfig({ config: write('km.json', '{"tls": ') })).toThrow(/is not valid JSON/);
  expect(() => loadKeyManagerConfig({ config: write('km.yaml', 'tls: [unclosed') })).toThrow(/is not valid YAML/);
  expect(() => loadKeyManagerConfig({ config: write('km.json', '[1]') })).toThrow(/must be an object/);
  expect(() => loadKeyManagerConfig({ ...{ config: write('km.json', base) }, senderIdRange: '5..9' })).toThrow('--sender-id-range must be START-END (END exclusive), e.g. 1-8388608');
});
