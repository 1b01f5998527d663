/**
 * `dne server` as an operator runs it: the real CLI (dist/, built by
 * scripts/setup), three real child processes, curl against the REST API
 * with the admin token it generated.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cliPath } from '../../ts/server/server';
import { waitFor } from '../../ts/demo/netns';

jest.setTimeout(120_000);

const BASE = 20443 + (process.pid % 500) * 3;
const ports = { keymanager: BASE, manager: BASE + 1, controller: BASE + 2 };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface Run {
  child: ChildProcess;
  out: string[];
  exited: Promise<number | null>;
}

function startServer(dir: string, extra: string[] = []): Run {
  const child = spawn(process.execPath, [cliPath(), 'server', '--dir', dir, '--keymanager-port', String(ports.keymanager), '--manager-port', String(ports.manager), '--controller-port', String(ports.controller), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  child.stdout!.on('data', (d: Buffer) => out.push(...d.toString().split('\n').filter(Boolean)));
  child.stderr!.on('data', (d: Buffer) => out.push(...d.toString().split('\n').filter(Boolean)));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, out, exited };
}

function curl(dir: string, route: string, token: string) {
  const r = spawnSync('curl', ['-sS', '--cacert', path.join(dir, 'pki', 'ca.crt'), '-H', `Authorization: Bearer ${token}`, '-w', '\n%{http_code}', `https://127.0.0.1:${ports.manager}/api/v1/network-encryption${route}`], { encoding: 'utf8', timeout: 20_000 });
  const i = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
}

describe('dne server', () => {
  let dir: string;
  let run: Run | null = null;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dne-server-'));
  });
  afterAll(async () => {
    if (run && run.child.exitCode === null) {
      run.child.kill('SIGTERM');
      await run.exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('starts the three components with a generated PKI and an admin token that works with curl', async () => {
    run = startServer(path.join(dir, 'data'));
    expect(await waitFor(() => run!.out.some((l) => l.startsWith('ready.')), 60_000, 100)).toBe(true);
    const data = path.join(dir, 'data');
    expect(fs.statSync(path.join(data, 'admin.token')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(data, 'pki', 'ca.key')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(data, 'keymanager.master')).mode & 0o777).toBe(0o600);
    const state = JSON.parse(fs.readFileSync(path.join(data, 'server.json'), 'utf8'));
    for (const c of ['keymanager', 'manager', 'controller']) expect(alive(state.children[c])).toBe(true);
    const token = fs.readFileSync(path.join(data, 'admin.token'), 'utf8').trim();
    const ok = curl(data, '/status', token);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual(expect.any(Object));
    const bad = curl(data, '/status', 'not-the-token');
    expect(bad.status).toBe(401);
    // The token never appears in what the server printed or logged.
    const logs = fs.readdirSync(path.join(data, 'logs')).map((f) => fs.readFileSync(path.join(data, 'logs', f), 'utf8')).join('\n');
    expect(run.out.join('\n')).not.toContain(token);
    expect(logs).not.toContain(token);
  });

  test('a second server on the same directory is refused while the first runs', () => {
    const r = spawnSync(process.execPath, [cliPath(), 'server', '--dir', path.join(dir, 'data'), '--keymanager-port', String(BASE + 1500), '--manager-port', String(BASE + 1501), '--controller-port', String(BASE + 1502)], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/another dne server \(pid \d+\) is using .*data; stop it first or choose another --dir/);
    expect(r.stdout).not.toMatch(/ready/);
  });

  test('a port that is already in use is refused before anything starts', async () => {
    const net = await import('node:net');
    const blocker = net.createServer();
    const port = BASE + 1600;
    await new Promise<void>((r) => blocker.listen({ host: '127.0.0.1', port }, () => r()));
    try {
      const target = path.join(dir, 'busy');
      const r = spawnSync(process.execPath, [cliPath(), 'server', '--dir', target, '--keymanager-port', String(BASE + 1601), '--manager-port', String(port), '--controller-port', String(BASE + 1602)], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`port ${port} \\(manager\\) is already in use on 127.0.0.1`));
      expect(r.stdout).not.toMatch(/ready/);
      expect(fs.existsSync(path.join(target, 'server.lock'))).toBe(false);
    } finally {
      blocker.close();
    }
  });

  test('restarts a component that crashes', async () => {
    const data = path.join(dir, 'data');
    const before = JSON.parse(fs.readFileSync(path.join(data, 'server.json'), 'utf8')).children.controller as number;
    process.kill(before, 'SIGKILL');
    expect(await waitFor(() => run!.out.some((l) => l.startsWith('restarting controller')), 10_000, 100)).toBe(true);
    let after = before;
    expect(
      await waitFor(() => {
        after = JSON.parse(fs.readFileSync(path.join(data, 'server.json'), 'utf8')).children.controller ?? before;
        return after !== before && alive(after);
      }, 15_000, 200),
    ).toBe(true);
  });

  test('SIGTERM stops every component; a second start keeps the CA, the token and the stores', async () => {
    const data = path.join(dir, 'data');
    const pids = Object.values(JSON.parse(fs.readFileSync(path.join(data, 'server.json'), 'utf8')).children) as number[];
    const ca = fs.readFileSync(path.join(data, 'pki', 'ca.crt'), 'utf8');
    const token = fs.readFileSync(path.join(data, 'admin.token'), 'utf8');
    run!.child.kill('SIGTERM');
    expect(await run!.exited).toBe(0);
    for (const p of pids) expect(alive(p)).toBe(false);
    expect(fs.existsSync(path.join(data, 'server.json'))).toBe(false);

    run = startServer(data);
    expect(await waitFor(() => run!.out.some((l) => l.startsWith('ready.')), 60_000, 100)).toBe(true);
    expect(fs.readFileSync(path.join(data, 'pki', 'ca.crt'), 'utf8')).toBe(ca);
    expect(fs.readFileSync(path.join(data, 'admin.token'), 'utf8')).toBe(token);
    expect(run.out.join('\n')).not.toMatch(/created a development CA/);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });

  test.each([
    [['--manager-port', '70000'], /--manager-port must be a port number 1-65535, got "70000"/],
    [['--controller-port', 'x'], /--controller-port must be a port number/],
    [['--ack-timeout', '-3'], /--ack-timeout must be a whole number of seconds >= 1/],
    [['--ack-timeout', '2.5'], /--ack-timeout must be a whole number of seconds >= 1, got "2.5"/],
    [['--log-level', 'loud'], /log-level/],
    [['--manager-port', '21000', '--controller-port', '21000'], /manager and controller cannot both use port 21000/],
  ])('refuses %j with a precise message and starts nothing', (args, msg) => {
    expect(args.length).toBeGreaterThan(0);
    const target = path.join(dir, `bad-${args[0]}`);
    const r = spawnSync(process.execPath, [cliPath(), 'server', '--dir', target, ...args], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(msg);
    expect(fs.existsSync(target)).toBe(false);
  });

  test('--dir naming a file is refused', () => {
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, 'x');
    const r = spawnSync(process.execPath, [cliPath(), 'server', '--dir', file], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--dir .*a-file exists and is not a directory/);
  });
});
