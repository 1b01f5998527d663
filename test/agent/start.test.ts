/**
 * `startAgent` as `dne agent` runs it (fake dataplane and key source, real
 * identity files): the endpoint's unix socket in a directory that does not
 * exist yet (as /run/dne after a boot) is created 0750; a socket path that
 * cannot be used is refused with a message naming the directory.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { startAgent } from '../../ts/agent/server';
import { initCa, issueCertificate } from '../../ts/common/pki';
import { FakeDataplane, FakeKeySource, memoryLogger } from './fakes';
import { agentConfig } from './helpers';

let dir: string;
let tls: { cert: string; key: string; ca: string };

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dne-agent-start-'));
  const pki = path.join(dir, 'pki');
  await initCa({ dir: pki });
  await issueCertificate({ dir: pki, role: 'host', name: 'h1' });
  tls = { cert: path.join(pki, 'host-h1.crt'), key: path.join(pki, 'host-h1.key'), ca: path.join(pki, 'ca.crt') };
  fs.writeFileSync(path.join(dir, 'a-file'), 'x');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function start(socket: string) {
  // Nothing listens on port 1 of loopback: the clients fail at once and the tests only use the endpoint.
  const cfg = agentConfig({ tls, endpoint: { socket }, controller: 'https://127.0.0.1:1', manager: 'https://127.0.0.1:1' });
  return startAgent(cfg, { dataplane: new FakeDataplane(1), keys: new FakeKeySource(1), logger: memoryLogger().log });
}

function healthz(socketPath: string): Promise<{ status: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: '/healthz' }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve(JSON.parse(b)));
      })
      .on('error', reject);
  });
}

test('a socket in a directory that does not exist: the directory is created 0750, the socket 0660, and it answers', async () => {
  const sockDir = path.join(dir, 'run', 'dne');
  const sock = path.join(sockDir, 'agent.sock');
  const r = await start(sock);
  try {
    expect(r.endpoint).toBe(`unix:${sock}`);
    expect(fs.statSync(sockDir).mode & 0o777).toBe(0o750);
    expect(fs.statSync(sock).mode & 0o777).toBe(0o660);
    expect((await healthz(sock)).status).toBe('ok');
  } finally {
    await r.close();
  }
});

test.each([
  ['a path through a file', () => path.join(dir, 'a-file', 'sub', 'agent.sock'), /^config\/endpoint\/socket: cannot use the directory \S+a-file\/sub: ENOTDIR$/],
  ['a directory that is a file', () => path.join(dir, 'a-file', 'agent.sock'), /^config\/endpoint\/socket: \S+a-file is not a directory$/],
])('%s: refused naming the directory', async (_n, sock, msg) => {
  await expect(start(sock())).rejects.toThrow(msg);
});
