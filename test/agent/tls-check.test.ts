/**
 * The agent's start-time checks of its identity files (docs/agent.md
 * "Configuration"): every mistake an operator can make with tls.cert,
 * tls.key, tls.ca and hostId ends the start with one line naming the
 * setting, the file and the problem — instead of an agent that starts and
 * retries refused handshakes forever. The built CLI exits non-zero.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startAgent } from '../../ts/agent/server';
import { loadHostTls } from '../../ts/agent/tls-check';
import { initCa, issueCertificate } from '../../ts/common/pki';
import { cliPath } from '../../ts/server/server';
import { FakeDataplane, FakeKeySource, memoryLogger } from './fakes';
import { agentConfig } from './helpers';

jest.setTimeout(60000);

let dir: string;
let pki: string;
let other: string;
const f = (name: string) => path.join(dir, name);

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dne-agent-tls-'));
  pki = path.join(dir, 'pki');
  other = path.join(dir, 'other');
  await initCa({ dir: pki });
  await issueCertificate({ dir: pki, role: 'host', name: 'h1' });
  await issueCertificate({ dir: pki, role: 'host', name: 'h2' });
  await issueCertificate({ dir: pki, role: 'keymanager', name: 'km1' });
  await initCa({ dir: other, commonName: 'someone else' });
  await issueCertificate({ dir: other, role: 'host', name: 'h1' });
  fs.writeFileSync(f('junk.key'), 'this is not a key\n', { mode: 0o600 });
  fs.copyFileSync(path.join(pki, 'host-h1.key'), f('open.key'));
  fs.chmodSync(f('open.key'), 0o644);
  fs.writeFileSync(f('junk.crt'), 'not a certificate\n');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const good = () => ({ cert: path.join(pki, 'host-h1.crt'), key: path.join(pki, 'host-h1.key'), ca: path.join(pki, 'ca.crt') });

test('good files: the material the mTLS clients use', () => {
  const m = loadHostTls('h1', good());
  expect(m.cert).toEqual(fs.readFileSync(good().cert));
  expect(m.ca).toEqual(fs.readFileSync(good().ca));
});

test.each<[string, () => [string, { cert: string; key: string; ca: string }], RegExp]>([
  ['missing certificate', () => ['h1', { ...good(), cert: f('nope.crt') }], /^config\/tls\/cert: cannot read the host certificate \S+nope\.crt: ENOENT \(no such file\)$/],
  ['missing key', () => ['h1', { ...good(), key: f('nope.key') }], /^config\/tls\/key: cannot read the host key \S+nope\.key: ENOENT \(no such file\)$/],
  ['missing CA', () => ['h1', { ...good(), ca: f('nope-ca.crt') }], /^config\/tls\/ca: cannot read the CA bundle \S+nope-ca\.crt: ENOENT \(no such file\)$/],
  ['key readable by others', () => ['h1', { ...good(), key: f('open.key') }], /^config\/tls\/key: refusing the host key: \S+open\.key has mode 0644/],
  ['junk key (mode 0600)', () => ['h1', { ...good(), key: f('junk.key') }], /^config\/tls\/key: the host key \S+junk\.key is not a private key/],
  ['junk certificate', () => ['h1', { ...good(), cert: f('junk.crt') }], /^config\/tls\/cert: the host certificate \S+junk\.crt holds no PEM certificate/],
  ['key of another certificate', () => ['h1', { ...good(), key: path.join(pki, 'host-h2.key') }], /^config\/tls\/key: the host key \S+host-h2\.key does not belong to the certificate \S+host-h1\.crt$/],
  ['certificate of another CA', () => ['h1', { cert: path.join(other, 'host-h1.crt'), key: path.join(other, 'host-h1.key'), ca: path.join(pki, 'ca.crt') }], /^config\/tls\/cert: the host certificate \S+other\/host-h1\.crt was not issued by the CA in \S+pki\/ca\.crt \(issuer: CN=someone else/],
  ['hostId other than the certificate', () => ['h2', good()], /^config\/tls\/cert: the host certificate \S+host-h1\.crt is dne:\/\/host\/h1, but config\/hostId is h2 \(want dne:\/\/host\/h2\)$/],
  ['certificate of another role', () => ['km1', { ...good(), cert: path.join(pki, 'keymanager-km1.crt'), key: path.join(pki, 'keymanager-km1.key') }], /is dne:\/\/keymanager\/km1, but config\/hostId is km1 \(want dne:\/\/host\/km1\)$/],
])('%s: refused with the setting, the file and the problem', (_name, args, msg) => {
  const [hostId, files] = args();
  let err: Error | undefined;
  try {
    loadHostTls(hostId, files);
  } catch (e) {
    err = e as Error;
  }
  expect(err?.message).toMatch(msg);
  expect((err as { code?: string }).code).toBe('ERR_DNE_CONFIG');
  expect(err!.message).not.toContain('\n');
});

test('an expired certificate is refused', () => {
  expect(() => loadHostTls('h1', good(), Date.now() + 3 * 365 * 86400_000)).toThrow(/^config\/tls\/cert: the host certificate \S+ expired on /);
});

test('startAgent refuses before it opens anything (no endpoint, no dataplane start)', async () => {
  const cfg = agentConfig({ tls: { ...good(), key: path.join(pki, 'host-h2.key') }, controller: 'https://127.0.0.1:1', manager: 'https://127.0.0.1:1' });
  const dp = new FakeDataplane(1);
  await expect(startAgent(cfg, { dataplane: dp, keys: new FakeKeySource(1), logger: memoryLogger().log })).rejects.toThrow(/does not belong to the certificate/);
  expect(dp.started).toBe(false);
});

test('dne agent with a hostId other than the certificate: exit status 2, one line on stderr', () => {
  const cli = cliPath();
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: build the CLI (npx tsc -p tsconfig.json)`);
  const g = good();
  fs.writeFileSync(f('agent.yaml'), `hostId: h2\ncontroller: https://127.0.0.1:1\nmanager: https://127.0.0.1:1\ntls: { cert: ${g.cert}, key: ${g.key}, ca: ${g.ca} }\nsyslog: { target: "off" }\nendpoint: { port: 0 }\n`);
  const r = spawnSync(process.execPath, [cli, 'agent', '--config', f('agent.yaml')], { encoding: 'utf8', timeout: 30000 });
  expect(r.status).toBe(2);
  expect(r.stderr.trim().split('\n')).toEqual([`dne: ERR_DNE_CONFIG: config/tls/cert: the host certificate ${g.cert} is dne://host/h1, but config/hostId is h2 (want dne://host/h2)`]);
});
