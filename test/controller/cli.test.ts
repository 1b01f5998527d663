/**
 * `dne controller` as a real child process started with flags only (as
 * `dne server` will start it): it reads a `dne pki` directory, follows the
 * manager feed, serves an agent its config over mutual TLS, refuses bad
 * configuration with a precise message, and exits cleanly on SIGTERM.
 * Plus the configuration loader's rules (file < --pki-dir < flags).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadControllerConfig } from '../../ts/controller/config';
import { buildCli, cliPath, dneSync } from '../keymanager/spawn';
import { FeedServer, makePki, Pki, SimAgent, startKm, tmpDir } from './harness';
import { fleetRevision, hostName } from './fleet';

const created: string[] = [];
let dir: string;
let pki: Pki;

beforeAll(async () => {
  dir = tmpDir('ctl-cli', created);
  pki = await makePki(path.join(dir, 'pki'), [hostName(0), hostName(1)]);
  await buildCli();
}, 180_000);

afterAll(() => {
  for (const d of created) fs.rmSync(d, { recursive: true, force: true });
});

test('dne controller --pki-dir: follows the feed, serves configs, stops cleanly on SIGTERM', async () => {
  const km = await startKm(pki, path.join(dir, 'km.db'));
  const feed = await FeedServer.start(pki);
  const db = path.join(dir, 'cli.db');
  const child = spawn(
    process.execPath,
    [cliPath, 'controller', '--pki-dir', pki.dir, '--name', 'c1', '--port', '0', '--db', db, '--manager-url', feed.url, '--keymanager-url', km.url, '--ack-timeout', '5'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no 'controller listening' in:\n${output.join('\n')}`)), 30_000);
    let buf = '';
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        output.push(line);
        try {
          const j = JSON.parse(line) as { msg?: string; port?: number };
          if (j.msg === 'controller listening') {
            clearTimeout(t);
            resolve(j.port!);
          }
        } catch {
          /* not JSON */
        }
      }
    });
    child.stderr!.on('data', (c: Buffer) => output.push(c.toString('utf8')));
  });
  const agents = [new SimAgent(hostName(0), pki, port, 5), new SimAgent(hostName(1), pki, port, 5)];
  try {
    for (const a of agents) a.start();
    feed.push({ type: 'revision', revision: fleetRevision(2, 1, { small: 1 }) });
    // v1: first keys receive-only; v2: active after both acks.
    await Promise.all(agents.map((a) => a.waitFor((x) => x.after === 2, 20_000)));
    expect(agents[0]!.latest!.config.keys.map((k) => [k.keyPolicyId, k.state])).toEqual([
      ['kp-enc', 'active'],
      ['kp-small', 'active'],
    ]);
    expect(agents[1]!.latest!.config.keys.map((k) => k.keyPolicyId)).toEqual(['kp-enc']);
    expect(agents[0]!.keyManagers).toEqual([km.url]);
    expect(fs.statSync(db).mode & 0o777).toBe(0o600);
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await feed.close();
    await km.app.close();
  }
  expect(output.join('\n')).toContain('"msg":"closed"');
}, 60_000);

test('dne controller refuses a missing grant key and a world-readable TLS key with the reason', async () => {
  const bare = path.join(dir, 'bare');
  fs.mkdirSync(bare);
  fs.copyFileSync(path.join(pki.dir, 'ca.crt'), path.join(bare, 'ca.crt'));
  for (const ext of ['crt', 'key']) fs.copyFileSync(path.join(pki.dir, `controller-c1.${ext}`), path.join(bare, `controller-c1.${ext}`));
  fs.chmodSync(path.join(bare, 'controller-c1.key'), 0o600);
  let r = dneSync(['controller', '--pki-dir', bare, '--port', '0', '--db', path.join(dir, 'x.db')]);
  expect(r.status).toBe(2);
  expect(r.stderr).toContain('ERR_DNE_CONFIG: refusing the grant signing key: cannot read');
  fs.copyFileSync(path.join(pki.dir, 'controller-c1.grant.key'), path.join(bare, 'controller-c1.grant.key'));
  fs.chmodSync(path.join(bare, 'controller-c1.grant.key'), 0o600);
  fs.chmodSync(path.join(bare, 'controller-c1.key'), 0o644);
  r = dneSync(['controller', '--pki-dir', bare, '--port', '0', '--db', path.join(dir, 'x.db')]);
  expect(r.status).toBe(2);
  expect(r.stderr).toContain('refusing the TLS key');
  expect(r.stderr).toContain('chmod 600');
  r = dneSync(['controller', '--pki-dir', bare, '--manager-url', 'http://localhost:8444']);
  expect(r.status).toBe(2);
  expect(r.stderr).toContain('config/managerUrl must be an https:// URL');
});

describe('configuration', () => {
  test('flags alone, with --pki-dir, give a complete configuration with the documented defaults', () => {
    const c = loadControllerConfig({ pkiDir: 'pki', name: 'c7' }, '/srv');
    expect(c).toEqual({
      instanceId: 'c7',
      listen: { host: '127.0.0.1', port: 8445 },
      tls: { cert: '/srv/pki/controller-c7.crt', key: '/srv/pki/controller-c7.key', ca: '/srv/pki/ca.crt' },
      grantKey: '/srv/pki/controller-c7.grant.key',
      store: { driver: 'sqlite', path: '/srv/controller.db' },
      managerUrl: 'https://localhost:8444',
      keyManagerUrls: ['https://localhost:8443'],
      ackTimeoutSeconds: 60,
      livenessSeconds: 90,
      grantTtlSeconds: 300,
      bodyLimitBytes: 65536,
      logLevel: 'info',
    });
  });

  test('a YAML file with paths relative to it; flags win', () => {
    const f = path.join(dir, 'conf', 'controller.yaml');
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(
      f,
      ['instanceId: c2', 'tls: { cert: a.crt, key: a.key, ca: ca.crt }', 'grantKey: g.key', 'store: { path: state/c.db }', 'keyManagerUrls: [https://km1:8443, https://km2:8443]', 'ackTimeoutSeconds: 30'].join('\n'),
    );
    const c = loadControllerConfig({ config: f, port: 9000, ackTimeout: 45 });
    expect(c.tls.cert).toBe(path.join(dir, 'conf', 'a.crt'));
    expect(c.store.path).toBe(path.join(dir, 'conf', 'state', 'c.db'));
    expect(c.keyManagerUrls).toEqual(['https://km1:8443', 'https://km2:8443']);
    expect(c.listen.port).toBe(9000);
    expect(c.ackTimeoutSeconds).toBe(45);
  });

  test.each([
    [{ tlsCert: 'a', tlsKey: 'b', tlsCa: 'c' }, 'config/grantKey is required (controller-NAME.grant.key; or use --pki-dir)'],
    [{ pkiDir: 'p', ackTimeout: 0 }, 'config/ackTimeoutSeconds must be'],
    [{ pkiDir: 'p', keymanagerUrl: ['ftp://x'] }, 'config/keyManagerUrls/0 must be an https:// URL'],
    [{ pkiDir: 'p', name: 'bad name' }, 'config/instanceId must be'],
  ])('refused: %j', (flags, message) => {
    expect(() => loadControllerConfig(flags, '/srv')).toThrow(message);
  });

  test('unknown settings in a file are refused', () => {
    const f = path.join(dir, 'unknown.json');
    fs.writeFileSync(f, JSON.stringify({ grantKey: 'g', tls: { cert: 'a', key: 'b', ca: 'c' }, ackTimeout: 5 }));
    expect(() => loadControllerConfig({ config: f })).toThrow('config/ackTimeout is not a known setting');
  });
});

