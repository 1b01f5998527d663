/** `dne demo` refuses bad flags before it creates anything (no server, no namespaces). */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cliPath } from '../../ts/server/server';

function netns(): string[] {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).sort();
}

describe('dne demo flags', () => {
  const notEmpty = fs.mkdtempSync(path.join(os.tmpdir(), 'dne-demo-flags-'));
  fs.writeFileSync(path.join(notEmpty, 'x'), 'x');
  afterAll(() => fs.rmSync(notEmpty, { recursive: true, force: true }));

  test.each([
    [['--base-port', '70000'], /--base-port must be 1024-65524/],
    [['--base-port', '80'], /--base-port must be 1024-65524/],
    [['--iperf-seconds', '0'], /--iperf-seconds must be a positive integer, got "0"/],
    [['--iperf-seconds', '99'], /--iperf-seconds must be at most 60/],
    [['--dir', notEmpty], /is not empty; give a new or empty directory/],
  ])('%j is refused with a precise message and nothing is created', (args, msg) => {
    const r = spawnSync(process.execPath, [cliPath(), 'demo', ...args], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(process.getuid?.() === 0 ? msg : /needs root/);
    // The demo's namespaces carry its PID (dnetXXXX-p<pid>-...): none of this run's may exist.
    expect(netns().filter((n) => n.includes(`-p${r.pid}-`))).toEqual([]);
    expect(fs.readdirSync(notEmpty)).toEqual(['x']);
  });
});
