/**
 * Builds the `dne` CLI (only ts/cli/main.ts and what it imports) into
 * dist/keymanager-test with tsc, and runs `dne keymanager` as a real child
 * process for the crash and CLI suites. The build is serialised across jest
 * workers with a lock directory.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packageRoot } from '../../ts/native/loader';

const root = packageRoot();
export const cliPath = path.join(root, 'dist', 'keymanager-test', 'ts', 'cli', 'main.js');
const lockDir = path.join(root, 'dist', 'keymanager-test.lock');

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

let built = false;

export async function buildCli(): Promise<string> {
  if (built) return cliPath;
  fs.mkdirSync(path.dirname(lockDir), { recursive: true });
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      fs.mkdirSync(lockDir);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = fs.statSync(lockDir, { throwIfNoEntry: false });
      if (st && Date.now() - st.mtimeMs > 300_000) fs.rmSync(lockDir, { recursive: true, force: true }); // a crashed run's lock
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lockDir}`);
      await sleep(200);
    }
  }
  try {
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'test', 'keymanager', 'tsconfig.spawn.json')], { encoding: 'utf8', cwd: root });
    if (r.status !== 0) throw new Error(`tsc failed building the CLI:\n${r.stdout}${r.stderr}`);
  } finally {
    fs.rmSync(lockDir, { recursive: true, force: true });
  }
  built = true;
  return cliPath;
}

/** Runs `dne ...` to completion. */
export function dneSync(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', timeout: 60_000, env: opts.env ?? process.env, cwd: opts.cwd });
}

export interface KmProcess {
  child: ChildProcess;
  port: number;
  /** Every stdout/stderr line so far. */
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `dne keymanager ARGS` and resolves once it logged "key manager listening". */
export function startKmProcess(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<KmProcess> {
  const child = spawn(process.execPath, [cliPath, 'keymanager', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`key manager did not start within 30 s:\n${output.join('\n')}`));
    }, 30_000);
    const onLine = (line: string) => {
      output.push(line);
      try {
        const j = JSON.parse(line) as { msg?: string; port?: number };
        if (j.msg === 'key manager listening' && typeof j.port === 'number') {
          clearTimeout(timer);
          resolve({ child, port: j.port, output, exited });
        }
      } catch {
        /* not JSON: an error message */
      }
    };
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    child.stderr!.on('data', (c: Buffer) => output.push(...c.toString('utf8').split('\n').filter(Boolean)));
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`key manager exited (code ${code}, signal ${signal}) before listening:\n${output.join('\n')}`));
    });
  });
}
