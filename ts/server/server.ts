/**
 * `dne server`: the embedded single-machine deployment (DESIGN §1): manager,
 * controller and key manager on one machine, each its own process with its
 * own SQLite store and TLS identity, started and supervised by this one.
 *
 * Separate processes rather than three apps in one: the key manager's memory
 * (master key, key bytes) is not shared with the services that must never
 * hold key material, and each component can be stopped, killed or restarted
 * on its own exactly as in a production deployment.
 *
 * The data directory holds everything it needs, created on first start and
 * kept on later starts:
 *   pki/                 development CA + one certificate per component, an admin certificate
 *   admin.token          bearer token for the manager's REST API (0600)
 *   keymanager.master    the key manager's master key (0600)
 *   keymanager.db manager.db controller.db
 *   logs/<component>.log JSON logs (pino)
 *   server.json          URLs, ports and child PIDs of the running server
 */
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { DEFAULT_PORTS } from '../common/contracts';
import { DneError, ErrorCodes } from '../common/errors';
import { initCa, issueCertificate } from '../common/pki';
import { generateMasterKeyFile } from '../keymanager/master-key';
import { packageRoot } from '../native/loader';

export const COMPONENTS = ['keymanager', 'manager', 'controller'] as const;
export type Component = (typeof COMPONENTS)[number];

export interface ServerOptions {
  dir: string;
  host?: string;
  ports?: Partial<Record<Component, number>>;
  logLevel?: string;
  /** Controller: seconds to wait for receivers' acks before activating a key anyway. */
  ackTimeoutSeconds?: number;
  /** Restart a component that exits on its own (default true). */
  restart?: boolean;
}

export interface ServerLayout {
  dir: string;
  pkiDir: string;
  host: string;
  ports: Record<Component, number>;
  urls: Record<Component, string>;
  adminTokenFile: string;
  adminCert: string;
  adminKey: string;
  caCert: string;
  logDir: string;
}

export const SERVER_NAMES: Record<Component, string> = { keymanager: 'km1', manager: 'm1', controller: 'c1' };

export function serverLayout(o: ServerOptions): ServerLayout {
  const dir = path.resolve(o.dir);
  const host = o.host ?? '127.0.0.1';
  const ports = { ...DEFAULT_PORTS, ...o.ports } as Record<Component, number>;
  const pkiDir = path.join(dir, 'pki');
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    dir,
    pkiDir,
    host,
    ports: { keymanager: ports.keymanager, manager: ports.manager, controller: ports.controller },
    urls: {
      keymanager: `https://${urlHost}:${ports.keymanager}`,
      manager: `https://${urlHost}:${ports.manager}`,
      controller: `https://${urlHost}:${ports.controller}`,
    },
    adminTokenFile: path.join(dir, 'admin.token'),
    adminCert: path.join(pkiDir, 'admin-admin.crt'),
    adminKey: path.join(pkiDir, 'admin-admin.key'),
    caCert: path.join(pkiDir, 'ca.crt'),
    logDir: path.join(dir, 'logs'),
  };
}

/**
 * Creates what is missing in the data directory (CA, certificates, admin
 * token, master key) and keeps what is there: a restart keeps its keys,
 * identities and stores.
 */
export async function prepareServerDir(o: ServerOptions, log: (l: string) => void = () => {}): Promise<ServerLayout> {
  const L = serverLayout(o);
  const st = fs.statSync(L.dir, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) throw new DneError(ErrorCodes.config, `--dir ${L.dir} exists and is not a directory`);
  const names = Object.entries(L.ports);
  for (const [i, [c, p]] of names.entries()) {
    const twin = names.slice(i + 1).find(([, q]) => q === p);
    if (twin) throw new DneError(ErrorCodes.config, `${c} and ${twin[0]} cannot both use port ${p}`);
  }
  fs.mkdirSync(L.dir, { recursive: true, mode: 0o700 });
  fs.mkdirSync(L.logDir, { recursive: true, mode: 0o700 });
  const ca = await initCa({ dir: L.pkiDir });
  if (ca.written.length) log(`created a development CA in ${L.pkiDir}`);
  const ipSan = net.isIP(L.host) && L.host !== '0.0.0.0' && L.host !== '::' ? [L.host] : [];
  for (const c of COMPONENTS) {
    await issueCertificate({ dir: L.pkiDir, role: c, name: SERVER_NAMES[c], dns: ['localhost'], ip: [...new Set(['127.0.0.1', ...ipSan])] });
  }
  await issueCertificate({ dir: L.pkiDir, role: 'admin', name: 'admin' });
  if (!fs.existsSync(L.adminTokenFile)) {
    fs.writeFileSync(L.adminTokenFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    log(`created the admin token ${L.adminTokenFile}`);
  }
  const master = path.join(L.dir, 'keymanager.master');
  if (!fs.existsSync(master)) generateMasterKeyFile(master);
  return L;
}

/** The argv (after `dne`) of each component, as `dne server` runs it. */
export function componentArgs(L: ServerLayout, c: Component, o: ServerOptions = { dir: L.dir }): string[] {
  const common = ['--pki-dir', L.pkiDir, '--name', SERVER_NAMES[c], '--host', L.host, '--port', String(L.ports[c]), '--db', path.join(L.dir, `${c}.db`)];
  if (o.logLevel) common.push('--log-level', o.logLevel);
  switch (c) {
    case 'keymanager':
      // Only the server's own controller signs grants (not every controller ever issued from this PKI).
      return ['keymanager', ...common, '--trust-controller', SERVER_NAMES.controller, '--master-key-file', path.join(L.dir, 'keymanager.master')];
    case 'manager':
      return ['manager', ...common, '--admin-token-file', L.adminTokenFile];
    case 'controller': {
      const a = ['controller', ...common, '--manager-url', L.urls.manager, '--keymanager-url', L.urls.keymanager];
      if (o.ackTimeoutSeconds !== undefined) a.push('--ack-timeout', String(o.ackTimeoutSeconds));
      return a;
    }
  }
}

/** The built CLI (tsc output), also when this module runs from TypeScript sources (tests). */
export function cliPath(): string {
  return path.join(packageRoot(), 'dist', 'ts', 'cli', 'main.js');
}

function logTail(file: string, lines = 10): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Resolves when something accepts TCP connections on host:port, rejects after `timeoutMs` or when `alive()` turns false. */
export async function waitForPort(host: string, port: number, timeoutMs: number, alive: () => boolean = () => true): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!alive()) throw new DneError(ErrorCodes.internal, `the process that should listen on ${host}:${port} exited`);
    if (Date.now() > end) throw new DneError(ErrorCodes.internal, `nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Fails with a message naming the component when something already listens on one of its ports. */
export async function checkPortsFree(L: ServerLayout): Promise<void> {
  for (const c of COMPONENTS) {
    const port = L.ports[c];
    await new Promise<void>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', (err: NodeJS.ErrnoException) =>
        reject(new DneError(ErrorCodes.config, err.code === 'EADDRINUSE' ? `port ${port} (${c}) is already in use on ${L.host}; stop what uses it or choose another with --${c}-port` : `cannot listen on ${L.host}:${port} (${c}): ${err.code ?? err.message}`)),
      );
      s.listen({ host: L.host, port, exclusive: true }, () => s.close(() => resolve()));
    });
  }
}

/**
 * One server per data directory: two would share SQLite files and logs.
 * The lock file holds the PID; a lock whose process is gone is taken over.
 */
function takeDirLock(L: ServerLayout): () => void {
  const file = path.join(L.dir, 'server.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return () => {
        try {
          if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file);
        } catch {
          /* already gone */
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      let alive = false;
      try {
        if (pid > 0) {
          process.kill(pid, 0);
          alive = true;
        }
      } catch {
        /* no such process */
      }
      if (alive) throw new DneError(ErrorCodes.config, `another dne server (pid ${pid}) is using ${L.dir}; stop it first or choose another --dir`);
      fs.rmSync(file, { force: true }); // a crashed server's lock
    }
  }
  throw new DneError(ErrorCodes.config, `cannot take the lock ${file}`);
}

interface Child {
  component: Component;
  proc: ChildProcess | null;
  restarts: number;
  backoffMs: number;
  timer?: NodeJS.Timeout;
}

/** Starts and supervises the three components; `stop()` ends them (SIGTERM, then SIGKILL after 10 s). */
export class Server {
  private readonly children = new Map<Component, Child>();
  private stopping = false;
  private unlock: (() => void) | null = null;

  constructor(
    readonly layout: ServerLayout,
    private readonly opts: ServerOptions,
    private readonly log: (l: string) => void,
  ) {}

  pids(): Record<string, number | null> {
    return Object.fromEntries([...this.children].map(([c, ch]) => [c, ch.proc?.pid ?? null]));
  }

  async start(): Promise<void> {
    this.unlock = takeDirLock(this.layout);
    // A port someone else holds would look like our component listening.
    await checkPortsFree(this.layout);
    // Order: the key manager first (the controller creates keys in it), the
    // manager next (the controller follows its feed), the controller last.
    for (const c of COMPONENTS) {
      const ch: Child = { component: c, proc: null, restarts: 0, backoffMs: 1000 };
      this.children.set(c, ch);
      this.spawnChild(ch);
      const log = path.join(this.layout.logDir, `${c}.log`);
      await waitForPort(this.layout.host === '0.0.0.0' ? '127.0.0.1' : this.layout.host, this.layout.ports[c], 30_000, () => ch.proc !== null && ch.proc.exitCode === null && ch.proc.signalCode === null).catch((err: Error) => {
        throw new DneError(ErrorCodes.internal, `${c} did not start: ${err.message}; last lines of ${log}:\n${logTail(log)}`);
      });
      this.log(`${c.padEnd(10)} ${this.layout.urls[c]}  pid ${ch.proc?.pid}  log ${path.join(this.layout.logDir, c + '.log')}`);
    }
    this.writeState();
  }

  private spawnChild(ch: Child): void {
    const logFd = fs.openSync(path.join(this.layout.logDir, `${ch.component}.log`), 'a', 0o600);
    const proc = spawn(process.execPath, [cliPath(), ...componentArgs(this.layout, ch.component, this.opts)], { stdio: ['ignore', logFd, logFd] });
    fs.closeSync(logFd);
    ch.proc = proc;
    const started = Date.now();
    proc.on('exit', (code, signal) => {
      if (ch.proc !== proc) return; // stopped on purpose (stopComponent) or replaced
      ch.proc = null;
      if (this.stopping) return;
      this.log(`${ch.component} exited (${signal ?? `code ${code}`}); see ${path.join(this.layout.logDir, ch.component + '.log')}`);
      if (this.opts.restart === false) return;
      // A component that ran for a while gets a fresh backoff; one that keeps crashing waits up to 30 s.
      if (Date.now() - started > 60_000) ch.backoffMs = 1000;
      const wait = ch.backoffMs;
      ch.backoffMs = Math.min(ch.backoffMs * 2, 30_000);
      this.log(`restarting ${ch.component} in ${wait / 1000} s`);
      ch.timer = setTimeout(() => {
        ch.restarts++;
        this.spawnChild(ch);
        this.writeState();
      }, wait);
    });
  }

  /**
   * Ends one component (chaos tests, operators) without restarting it:
   * SIGKILL models a crash, SIGTERM a clean stop.
   */
  async stopComponent(c: Component, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const ch = this.children.get(c);
    if (!ch) throw new DneError(ErrorCodes.badArgument, `${c} was never started`);
    if (ch.timer) clearTimeout(ch.timer);
    const p = ch.proc;
    ch.proc = null; // the exit handler sees a child we no longer own: no restart
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill(signal);
    });
    this.writeState();
  }

  /** Starts a component that is not running (after stopComponent) and waits for its port. */
  async startComponent(c: Component): Promise<void> {
    const ch = this.children.get(c) ?? { component: c, proc: null, restarts: 0, backoffMs: 1000 };
    this.children.set(c, ch);
    if (ch.proc && ch.proc.exitCode === null && ch.proc.signalCode === null) return;
    this.spawnChild(ch);
    const p = ch.proc!;
    await waitForPort(this.layout.host === '0.0.0.0' ? '127.0.0.1' : this.layout.host, this.layout.ports[c], 30_000, () => p.exitCode === null && p.signalCode === null);
    this.writeState();
  }

  private writeState(): void {
    const state = { urls: this.layout.urls, pid: process.pid, children: this.pids(), adminTokenFile: this.layout.adminTokenFile, pkiDir: this.layout.pkiDir };
    fs.writeFileSync(path.join(this.layout.dir, 'server.json'), JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  }

  /**
   * From now on a component exiting is expected: no restart, no message.
   * Call it first thing in a SIGINT/SIGTERM handler: a terminal's Ctrl-C
   * reaches the components too (same process group).
   */
  expectStop(): void {
    this.stopping = true;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    // Reverse order: the controller stops following the manager before the manager goes.
    const waits: Promise<void>[] = [];
    for (const c of [...COMPONENTS].reverse()) {
      const ch = this.children.get(c);
      if (!ch) continue;
      if (ch.timer) clearTimeout(ch.timer);
      const p = ch.proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) continue;
      waits.push(
        new Promise<void>((resolve) => {
          const kill = setTimeout(() => p.kill('SIGKILL'), 10_000);
          p.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          p.kill('SIGTERM');
        }),
      );
    }
    await Promise.all(waits);
    // Only the server holding the directory's lock owns its state file.
    if (this.unlock) {
      fs.rmSync(path.join(this.layout.dir, 'server.json'), { force: true });
      this.unlock();
      this.unlock = null;
    }
  }
}
