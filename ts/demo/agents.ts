/**
 * Agents as the demo and the end-to-end suite run them: one `dne agent`
 * process per host, in the root namespace (its control traffic goes to the
 * server over loopback), owning that host's protected ports inside the
 * host's namespace (the filter enters it per interface, DESIGN §4).
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { issueCertificate } from '../common/pki';
import { cliPath, ServerLayout, waitForPort } from '../server/server';
import type { Host, Workload } from './netns';

export interface DemoWorkload {
  w: Workload;
  id: string;
  displayName: string;
  tags: Array<{ scope: string; tag: string }>;
}

export interface AgentOptions {
  endpointPort: number;
  syslogTarget?: string;
  statsIntervalSeconds?: number;
  keyCheckSeconds?: number;
  logLevel?: string;
}

export class AgentProcess {
  proc: ChildProcess | null = null;
  readonly configFile: string;
  readonly logFile: string;
  starts = 0;

  constructor(
    readonly host: Host,
    readonly dir: string,
    readonly layout: ServerLayout,
    readonly workloads: DemoWorkload[],
    readonly opts: AgentOptions,
  ) {
    this.configFile = path.join(dir, `agent-${host.name}.yaml`);
    this.logFile = path.join(dir, 'logs', `agent-${host.name}.log`);
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.opts.endpointPort}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Issues the host certificate (kept if present) and writes the agent's YAML config. */
  async prepare(): Promise<void> {
    await issueCertificate({ dir: this.layout.pkiDir, role: 'host', name: this.host.name });
    fs.mkdirSync(path.dirname(this.logFile), { recursive: true });
    const cfg = {
      hostId: this.host.name,
      displayName: `demo host ${this.host.name}`,
      controller: this.layout.urls.controller,
      manager: this.layout.urls.manager,
      keyManagers: [this.layout.urls.keymanager],
      tls: {
        cert: path.join(this.layout.pkiDir, `host-${this.host.name}.crt`),
        key: path.join(this.layout.pkiDir, `host-${this.host.name}.key`),
        ca: this.layout.caCert,
      },
      filter: { workers: 1, defaultAction: 'allow' },
      workloads: this.workloads.map((d) => ({
        id: d.id,
        display_name: d.displayName,
        // No tags here: group membership follows the tags an administrator
        // sets through the manager (Demo.tagWorkloads), not a host's claims.
        vnics: [
          {
            id: `${d.id}-eth0`,
            mac: d.w.mac,
            ipv4: [d.w.ipv4],
            ipv6: [d.w.ipv6],
            workload_if: d.w.workloadIf,
            network_if: d.w.networkIf,
            netns: this.host.ns,
          },
        ],
      })),
      endpoint: { host: '127.0.0.1', port: this.opts.endpointPort },
      syslog: { target: this.opts.syslogTarget ?? 'off' },
      controllerPoll: { waitSeconds: 20, backoffMinMs: 200, backoffMaxMs: 2000 },
      statsIntervalSeconds: this.opts.statsIntervalSeconds ?? 5,
      keyCheckSeconds: this.opts.keyCheckSeconds ?? 2,
      logLevel: this.opts.logLevel ?? 'info',
    };
    fs.writeFileSync(this.configFile, toYaml(cfg), { mode: 0o600 });
  }

  async start(): Promise<void> {
    const fd = fs.openSync(this.logFile, 'a', 0o600);
    const p = spawn(process.execPath, [cliPath(), 'agent', '--config', this.configFile], { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    this.proc = p;
    this.starts++;
    p.on('exit', () => {
      if (this.proc === p) this.proc = null;
    });
    await waitForPort('127.0.0.1', this.opts.endpointPort, 30_000, () => this.proc === p && p.exitCode === null && p.signalCode === null).catch((err: Error) => {
      throw new Error(`agent ${this.host.name}: ${err.message}; log: ${this.tail()}`);
    });
  }

  /** The last lines of the agent's log (for error messages). */
  tail(lines = 15): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8').trim().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
      p.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      p.kill(signal);
    });
    this.proc = null;
  }

  /** GET a JSON route of the local endpoint. */
  async get<T = any>(route: string): Promise<T> {
    const r = await fetch(this.endpoint + route);
    if (!r.ok) throw new Error(`agent ${this.host.name} ${route}: HTTP ${r.status} ${await r.text()}`);
    return (await r.json()) as T;
  }

  async metrics(): Promise<string> {
    const r = await fetch(this.endpoint + '/metrics');
    return r.text();
  }
}

/** Sums a Prometheus counter over the series whose labels include `match`. */
export function metricSum(text: string, name: string, match: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+([^\s]+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    if (Object.entries(match).every(([k, v]) => labels[k] === v)) sum += Number(m[4]);
  }
  return sum;
}
