/**
 * `dne selftest` as a user runs it: the built CLI seals and opens real
 * packets and reports every check.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packageRoot } from '../../ts/native/loader';

const cli = path.join(packageRoot(), 'dist', 'ts', 'cli', 'main.js');

function dne(...args: string[]) {
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: run scripts/setup (it builds the CLI)`);
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60000 });
}

test('dne selftest passes and shows each mode and family', () => {
  const r = dne('selftest');
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/selftest passed \(\d+ checks\)/);
  for (const mode of ['gcm', 'gmac']) for (const v of ['v4', 'v6']) expect(r.stdout).toMatch(new RegExp(`${mode}\\s+${v}`));
  expect(r.stdout).not.toMatch(/FAIL/);
});

test('dne selftest --json is a machine-readable report', () => {
  const r = dne('selftest', '--json');
  expect(r.status).toBe(0);
  const report = JSON.parse(r.stdout);
  expect(report.ok).toBe(true);
  expect(report.packets).toHaveLength(4);
  expect(report.crypto.evpFromMainExecutable).toBe(true);
  for (const p of report.packets) expect(p.espBytes - p.plainBytes).toBeLessThanOrEqual(37);
});

test('an unknown command fails with a clear message and a non-zero exit', () => {
  const r = dne('frobnicate');
  expect(r.status).not.toBe(0);
  expect(r.stderr).toMatch(/unknown command 'frobnicate'/);
});
