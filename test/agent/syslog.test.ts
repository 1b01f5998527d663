/**
 * Security events reach a real syslog listener: socat on a unix datagram
 * socket (what /dev/log is) and on UDP (RFC 5426), each datagram one
 * RFC 5424 message (acceptance 4, syslog part).
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatRfc5424, SecurityLog } from '../../ts/agent/syslog';
import { waitFor } from '../integration/netns';
import { hostConfig, K1, makeAgent, response } from './helpers';
import { agentConfig } from './helpers';

let dir: string;
const children: ChildProcess[] = [];
beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dne-agent-syslog-'))));
afterAll(() => {
  for (const c of children) if (c.pid && c.exitCode === null) process.kill(c.pid, 'SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
});

/** socat receiving datagrams; `-u ... STDOUT` writes each datagram's bytes as they come. */
function listen(address: string): { out: () => string; child: ChildProcess } {
  const child = spawn('socat', ['-u', address, 'STDOUT'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  return { out: () => out, child };
}

// RFC 5424 §6: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA SP MSG
const RFC5424 = /^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) (\S+) (\S+) (\d+) (\S+) (\[.*?\]|-) (.*)$/;

test('formatting: PRI from facility and severity, structured data escaped (RFC 5424 §6.3.3)', () => {
  const line = formatRfc5424(
    { kind: 'key-expired-in-use', severity: 'warning', message: 'key k expired', data: { key_policy: 'kp "a" ]\\', spi: 4352 } },
    { facility: 'authpriv', appName: 'dne-agent', hostname: 'h1', procId: 42, now: new Date('2030-01-01T00:00:00Z') },
  );
  expect(line).toBe('<84>1 2030-01-01T00:00:00.000Z h1 dne-agent 42 key-expired-in-use [dne@32473 key_policy="kp \\"a\\" \\]\\\\" spi="4352"] key k expired');
  expect(formatRfc5424({ kind: 'replay-burst', severity: 'notice', message: 'm' }, { facility: 'local0', appName: 'x y', hostname: 'h' })).toMatch(/^<133>1 \S+ h x_y \d+ replay-burst - m$/);
});

test('unix datagram socket (as /dev/log): an expired key in use reaches the listener', async () => {
  const sock = path.join(dir, 'log.sock');
  const l = listen(`UNIX-RECV:${sock}`);
  expect(await waitFor(() => fs.existsSync(sock), 5000)).toBe(true);
  let now = Date.parse('2030-01-01T00:00:00Z');
  const { agent } = makeAgent({ now: () => now, cfg: agentConfig({ syslog: { target: `unix:${sock}` } }) });
  await agent.handleResponse(response(1, hostConfig([[K1, 'active', '2030-01-01T00:05:00Z']])));
  now += 6 * 60_000;
  await agent.checkKeys();
  await agent.syslog.flush();
  expect(await waitFor(() => l.out().includes('key-expired-in-use'), 5000)).toBe(true);
  const m = RFC5424.exec(l.out().trim().split('\n')[0]!);
  expect(m).not.toBeNull();
  expect(Number(m![1])).toBe(10 * 8 + 4); // authpriv.warning
  expect(m![4]).toBe('dne-agent');
  expect(Number(m![5])).toBe(process.pid);
  expect(m![6]).toBe('key-expired-in-use');
  expect(m![7]).toContain(`key_id="${K1}"`);
  expect(m![7]).toContain('key_policy="kp-enc"');
  expect(m![8]).toMatch(/expired at 2030-01-01T00:05:00Z and is still in use/);
  expect(agent.syslog.stats.errors).toBe(0);
});

test('a unix socket nobody listens on: delivery fails, is counted, and nothing throws', async () => {
  const errors: string[] = [];
  const s = new SecurityLog({ target: `unix:${path.join(dir, 'nobody.sock')}`, appName: 'dne-agent', facility: 'authpriv', perMinute: 10 }, (e) => errors.push(e));
  s.emit({ kind: 'replay-burst', severity: 'warning', message: 'x' });
  await s.flush();
  expect(s.stats.errors).toBe(1);
  expect(errors[0]).toMatch(/nobody\.sock/);
});

test('UDP (RFC 5426): one RFC 5424 message per datagram; the rate limit holds per event kind', async () => {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const l = listen(`UDP4-RECV:${port},bind=127.0.0.1`);
  await new Promise((r) => setTimeout(r, 300));
  const s = new SecurityLog({ target: `udp://127.0.0.1:${port}`, appName: 'dne-agent', facility: 'auth', perMinute: 3 });
  for (let i = 0; i < 10; i++) s.emit({ kind: 'icv-failure-burst', severity: 'warning', message: `burst ${i}`, data: { count: 100 + i } });
  s.emit({ kind: 'key-revoked', severity: 'notice', message: 'revoked' });
  expect(await waitFor(() => (l.out().match(/<\d+>1 /g) ?? []).length >= 4, 5000)).toBe(true);
  await new Promise((r) => setTimeout(r, 300));
  const msgs = l.out().split(/(?=<\d+>1 )/).map((x) => x.trim());
  expect(msgs.length).toBe(4);
  for (const m of msgs) expect(m).toMatch(RFC5424);
  expect(msgs.filter((m) => m.includes(' icv-failure-burst ')).map((m) => RFC5424.exec(m)![8])).toEqual(['burst 0', 'burst 1', 'burst 2']);
  expect(msgs.find((m) => m.includes(' key-revoked '))).toMatch(/^<37>1 /); // auth.notice
  expect(s.stats.suppressed['icv-failure-burst']).toBe(7);
  s.close();
});
