/**
 * What the end-to-end benchmarks share (bench/filter-e2e.ts, bench/peers.ts):
 * the integration tests' namespace topology with plain-bridge and filter
 * modes, veth offload switching, iperf3 runs, child-process and signal
 * handling that removes the namespaces on SIGINT/SIGTERM, and the machine
 * description that goes with every result.
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { nsExec, Topology, waitFor, Workload } from '../test/integration/netns';
import { Action, Filter } from '../ts/native/filter';
import { packageRoot } from '../ts/native/loader';
import { KP_ENC, KP_INT, pairTables, SPI_GCM, SPI_GMAC } from '../test/integration/tables';

export type MetricId = 'tcp1' | 'tcp4' | 'udp64';

export interface Metric {
  id: MetricId;
  label: string;
  args: string[];
}

export const METRICS: ReadonlyArray<Metric> = [
  { id: 'tcp1', label: 'TCP 1 stream', args: ['-P', '1'] },
  { id: 'tcp4', label: 'TCP 4 streams', args: ['-P', '4'] },
  // 36 bytes of UDP payload + 8 UDP + 20 IPv4 = a 64-byte IP packet; -b 0
  // lifts iperf3's default 1 Mbit/s UDP pacing.
  { id: 'udp64', label: 'UDP 64 B', args: ['-u', '-l', '36', '-b', '0'] },
];

export interface Sample {
  rep: number;
  mode: string;
  metric: MetricId;
  /** TCP: receiver bit/s; UDP: received packets/s. null when the run failed. */
  value: number | null;
  /** UDP only: receiver-side loss in percent. */
  lossPercent?: number;
  error?: string;
  /** The iperf3 fields the value came from, and CPU use. */
  detail?: Record<string, unknown>;
}

// ---------------------------------------------------------------- processes and signals

export const children = new Set<ChildProcess>();
let aborted: NodeJS.Signals | null = null;
let cleanup: () => void = () => {};
let logName = 'e2e';

/** The prefix of progress lines on stderr. */
export function setLogName(name: string): void {
  logName = name;
}

/** What a signal runs before the process exits (removes the namespaces). */
export function setCleanup(fn: () => void): void {
  cleanup = fn;
}

/** The signal that stopped the run, if one did. */
export function abortSignal(): NodeJS.Signals | null {
  return aborted;
}

export class Aborted extends Error {}

export function checkAbort(): void {
  if (aborted) throw new Aborted(`stopped by ${aborted}`);
}

export function log(msg: string): void {
  process.stderr.write(`[${logName} ${new Date().toTimeString().slice(0, 8)}] ${msg}\n`);
}

export function onSignal(sig: NodeJS.Signals): void {
  if (aborted) {
    // A second signal: do not wait for the run in progress to unwind.
    cleanup();
    process.exit(128 + (os.constants.signals[sig] ?? 1));
  }
  aborted = sig;
  log(`${sig}: stopping, removing the namespaces (again to force)`);
  for (const c of children) if (c.pid) killPid(c.pid);
}

export function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
}

/**
 * Runs a command without blocking the event loop, so that SIGINT/SIGTERM
 * are handled while iperf3 runs (spawnSync would hold them back).
 */
export function run(cmd: string[], timeoutMs: number): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms)`;
      if (child.pid) killPid(child.pid);
    }, timeoutMs);
    child.on('error', (err) => (stderr += `\n${err.message}`));
    child.on('close', (status) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ status, stdout, stderr });
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function ipCmd(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

// ---------------------------------------------------------------- the bench

export const IPERF_PORT = '5201';


/** What `ethtool -K` is asked to turn off, with the name `ethtool -k` shows it under. */
export const OFFLOADS: ReadonlyArray<[string, string]> = [
  ['tso', 'tcp-segmentation-offload'],
  ['gso', 'generic-segmentation-offload'],
  ['gro', 'generic-receive-offload'],
  ['tx', 'tx-checksumming'],
  ['rx', 'rx-checksumming'],
  ['sg', 'scatter-gather'],
];

export type OffloadOutcome = 'set' | 'already off' | 'refused' | 'fixed';

export interface Veth {
  ns: string;
  ifname: string;
  label: string;
}

export class Bench {
  readonly topo: Topology;
  readonly w1: Workload;
  readonly w2: Workload;
  readonly veths: Veth[];
  private readonly keys = {
    gcm: { key: randomBytes(16), salt: randomBytes(4) },
    gmac: { key: randomBytes(16), salt: randomBytes(4) },
  };
  private filters: Filter[] = [];
  private bridges: Array<{ ns: string; name: string }> = [];
  /** Every changeable feature of each veth as the topology created it. */
  private readonly defaults = new Map<string, Map<string, boolean>>();
  readonly offloadReport: Record<string, Record<string, OffloadOutcome>> = {};
  readonly restoreProblems: string[] = [];

  /** Thread ids of the filters' workers (in this process), for CPU accounting. */
  readonly filterTids: number[] = [];

  /** seconds: the length of each iperf3 test. */
  constructor(readonly seconds: number) {
    this.topo = new Topology([1, 1]);
    [this.w1, this.w2] = this.topo.workloads as [Workload, Workload];
    this.veths = [];
    for (const w of [this.w1, this.w2]) {
      this.veths.push({ ns: w.ns, ifname: 'eth0', label: `${w.name}:eth0` });
      for (const ifn of [w.workloadIf, w.networkIf, `${w.name}-br`]) {
        this.veths.push({ ns: w.host.ns, ifname: ifn, label: `${w.host.name}:${ifn}` });
      }
      this.veths.push({ ns: w.host.ns, ifname: w.host.underlayIf, label: `${w.host.name}:${w.host.underlayIf}` });
    }
    for (const v of this.veths) {
      const f = readFeatures(v);
      this.defaults.set(v.label, new Map([...f].filter(([, s]) => !s.fixed).map(([k, s]) => [k, s.on])));
    }
  }

  /** Synchronous, idempotent teardown (also called from a signal handler). */
  destroy(): void {
    for (const f of this.filters.splice(0)) {
      try {
        f.stop();
      } catch {
        /* best effort */
      }
    }
    for (const c of children) if (c.pid) killPid(c.pid);
    this.topo.destroy();
  }

  // ---- plain veth: a kernel bridge where the filter would be

  addPlainBridges(): void {
    this.assertNoPacketSockets();
    for (const w of [this.w1, this.w2]) {
      const ns = w.host.ns;
      const name = `bp${w.index}`;
      ipCmd('-n', ns, 'link', 'add', name, 'type', 'bridge');
      this.bridges.push({ ns, name });
      ipCmd('-n', ns, 'link', 'set', w.workloadIf, 'master', name);
      ipCmd('-n', ns, 'link', 'set', w.networkIf, 'master', name);
      ipCmd('-n', ns, 'link', 'set', name, 'up');
    }
  }

  removePlainBridges(): void {
    // Deleting a bridge releases its ports; they stay up for the filter.
    for (const b of this.bridges.splice(0)) ipCmd('-n', b.ns, 'link', 'del', b.name);
  }

  /**
   * A stopped filter whose AF_PACKET sockets were still bound would get a
   * copy of every frame of the plain-veth modes and slow them down.
   */
  private packetSockets(): string[] {
    const found: string[] = [];
    for (const w of [this.w1, this.w2]) {
      const ifindex = new Map<number, string>();
      for (const ifn of [w.workloadIf, w.networkIf]) {
        const j = JSON.parse(execFileSync('ip', ['-j', '-n', w.host.ns, 'link', 'show', 'dev', ifn], { encoding: 'utf8' }));
        ifindex.set(j[0].ifindex, ifn);
      }
      const lines = nsExec(w.host.ns, ['cat', '/proc/net/packet']).stdout.trim().split('\n').slice(1);
      for (const l of lines) {
        // sk RefCnt Type Proto Iface R Rmem User Inode
        const idx = Number(l.trim().split(/\s+/)[4]);
        if (ifindex.has(idx)) found.push(`${w.host.name}:${ifindex.get(idx)}`);
      }
    }
    return found;
  }

  private assertNoPacketSockets(): void {
    const s = this.packetSockets();
    if (s.length > 0) throw new Error(`packet sockets still bound on ${s.join(', ')}`);
  }

  // ---- offloads

  offloadsOff(record: boolean): void {
    for (const v of this.veths) {
      const before = readFeatures(v);
      const errors = new Map<string, string>();
      for (const [short, long] of OFFLOADS) {
        if (before.get(long)?.fixed) continue;
        const r = nsExec(v.ns, ['ethtool', '-K', v.ifname, short, 'off']);
        if (r.status !== 0) errors.set(long, (r.stderr || r.stdout).trim());
      }
      const after = readFeatures(v);
      const outcome: Record<string, OffloadOutcome> = {};
      for (const [short, long] of OFFLOADS) {
        const b = before.get(long);
        const a = after.get(long);
        if (!b || !a || b.fixed) outcome[short] = 'fixed';
        else if (a.on) outcome[short] = 'refused';
        else outcome[short] = b.on ? 'set' : 'already off';
        if (outcome[short] === 'refused') log(`ethtool -K ${v.label} ${short} off refused: ${errors.get(long) ?? 'still on'}`);
      }
      if (record) this.offloadReport[v.label] = outcome;
    }
  }

  /** Puts every changeable feature back as the topology had it, in one request per veth. */
  restoreOffloads(): void {
    for (const v of this.veths) {
      const want = this.defaults.get(v.label)!;
      const args = [...want].flatMap(([k, on]) => [k, on ? 'on' : 'off']);
      nsExec(v.ns, ['ethtool', '-K', v.ifname, ...args]);
      const now = readFeatures(v);
      const off = [...want].filter(([k, on]) => now.get(k)?.on !== on).map(([k, on]) => `${k} (want ${on ? 'on' : 'off'})`);
      if (off.length > 0) {
        const msg = `${v.label}: could not restore ${off.join(', ')}`;
        log(msg);
        this.restoreProblems.push(msg);
      }
    }
  }

  // ---- filters

  startFilters(): void {
    this.assertNoPacketSockets();
    for (const [i, w] of [this.w1, this.w2].entries()) {
      const f = new Filter({ workers: 1 });
      this.filters.push(f);
      f.addPort({ name: w.name, workloadIf: w.workloadIf, networkIf: w.networkIf, workloadNetns: w.host.ns, networkNetns: w.host.ns });
      // installSa wipes the buffers it is given: hand it copies.
      const { gcm, gmac } = this.keys;
      f.installSa({ spi: SPI_GCM, mode: 'gcm', key: Buffer.from(gcm.key), salt: Buffer.from(gcm.salt), keyPolicy: KP_ENC, senderIds: [i + 1] });
      f.installSa({ spi: SPI_GMAC, mode: 'gmac', key: Buffer.from(gmac.key), salt: Buffer.from(gmac.salt), keyPolicy: KP_INT, senderIds: [i + 1] });
      const before = new Set(threadIds());
      f.start();
      this.filterTids.push(...threadIds().filter((t) => !before.has(t)));
    }
  }

  applyAction(action: Action): void {
    this.filters[0]!.setTables({ ports: { [this.w1.name]: pairTables(action, this.w1, this.w2, 'source') } });
    this.filters[1]!.setTables({ ports: { [this.w2.name]: pairTables(action, this.w2, this.w1, 'destination') } });
  }

  /** Both filters' drop counters, added up by reason. */
  drops(): Record<string, bigint> {
    const sum: Record<string, bigint> = {};
    for (const f of this.filters) {
      for (const [k, v] of Object.entries(f.drops())) sum[k] = (sum[k] ?? 0n) + v;
    }
    return sum;
  }

  async stopFilters(): Promise<void> {
    // A stopped worker holds on to its last snapshot, and with it the
    // ports' sockets: remove the ports while the workers still run, so they
    // pick up a snapshot without them and the sockets close.
    for (const [i, f] of this.filters.entries()) f.removePort([this.w1, this.w2][i]!.name);
    const closed = await waitFor(() => this.packetSockets().length === 0, 5000);
    for (const f of this.filters.splice(0)) f.stop();
    this.filterTids.length = 0;
    if (!closed) throw new Error(`the filters' packet sockets did not close: ${this.packetSockets().join(', ')}`);
  }

  // ---- traffic

  /** Waits until w1 pings w2 (or `target` in w2); returns the seconds that took. */
  async waitReachable(target = this.w2.ipv4): Promise<number> {
    const t0 = Date.now();
    const ok = await waitFor(() => nsExec(this.w1.ns, ['ping', '-n', '-c', '1', '-W', '1', target]).status === 0, 15000, 200);
    if (!ok) throw new Error(`${this.w1.ipv4} cannot reach ${target}`);
    return (Date.now() - t0) / 1000;
  }

  /**
   * One iperf3 test from w1 to `target` (an address in w2). `cpu`, when
   * given, returns the CPU seconds used so far by the processes under test;
   * its growth while the client runs goes into detail.cpuS.
   */
  async measure(rep: number, mode: string, metric: Metric, target = this.w2.ipv4, cpu?: () => number): Promise<Sample> {
    const s: Sample = { rep, mode, metric: metric.id, value: null };
    const t0 = Date.now();
    try {
      const { j, cpuS } = await this.iperf(metric.args, target, cpu);
      const iperfCpu = j.end.cpu_utilization_percent;
      // Much more than --seconds points at a stalled start (lost SYNs).
      const wallS = (Date.now() - t0) / 1000;
      if (metric.id === 'udp64') {
        // iperf 3.12, client side: end.sum mixes the sender's bytes and
        // rate with the receiver's loss; end.sum_received is the server's
        // view, where packets is the highest sequence number seen and
        // lost_packets the gaps below it.
        const r = j.end.sum_received;
        const received = r.packets - r.lost_packets;
        s.value = received / r.seconds;
        s.lossPercent = r.packets > 0 ? (100 * r.lost_packets) / r.packets : 0;
        s.detail = {
          sentPackets: j.end.sum_sent.packets,
          sentSeconds: j.end.sum_sent.seconds,
          packets: r.packets,
          lostPackets: r.lost_packets,
          receivedBytes: r.bytes,
          seconds: r.seconds,
          wallS,
          cpu: iperfCpu,
          cpuS,
        };
      } else {
        const r = j.end.sum_received;
        s.value = r.bits_per_second;
        s.detail = { bytes: r.bytes, seconds: r.seconds, retransmits: j.end.sum_sent.retransmits, wallS, cpu: iperfCpu, cpuS };
      }
    } catch (err) {
      if (err instanceof Aborted) throw err;
      s.error = (err as Error).message;
    }
    return s;
  }

  /** One iperf3 test from w1 to a one-off server in w2; returns its -J output. */
  private async iperf(args: string[], target: string, cpu?: () => number): Promise<{ j: IperfJson; cpuS: number | undefined }> {
    const srv = this.topo.spawnIn(this.w2.ns, ['iperf3', '-s', '-1', '-p', IPERF_PORT]);
    children.add(srv);
    const srvExit = new Promise<void>((r) => (srv.exitCode !== null ? r() : srv.once('exit', () => r())));
    try {
      const listening = await waitFor(
        () => nsExec(this.w2.ns, ['ss', '-Hltn', `sport = :${IPERF_PORT}`]).stdout.trim() !== '',
        5000,
      );
      if (!listening) throw new Error('iperf3 server did not start listening');
      checkAbort();
      const cmd = ['ip', 'netns', 'exec', this.w1.ns, 'iperf3', '-c', target, '-p', IPERF_PORT, '-J'];
      const cpu0 = cpu?.();
      const r = await run([...cmd, '-t', String(this.seconds), ...args], (this.seconds + 30) * 1000);
      const cpuS = cpu && cpu0 !== undefined ? cpu() - cpu0 : undefined;
      checkAbort();
      let j: IperfJson;
      try {
        j = JSON.parse(r.stdout);
      } catch {
        throw new Error(`iperf3 ${args.join(' ')}: exit ${r.status}, no JSON: ${(r.stdout + r.stderr).trim().slice(0, 300)}`);
      }
      if (j.error || r.status !== 0) throw new Error(`iperf3 ${args.join(' ')}: ${j.error ?? `exit ${r.status}`}`);
      return { j, cpuS };
    } finally {
      this.topo.kill(srv.pid);
      await Promise.race([srvExit, sleep(2000)]);
      children.delete(srv);
    }
  }
}

// ---------------------------------------------------------------- helpers

/** The parts of `iperf3 -c -J` (3.12) read here. */
export interface IperfSum {
  seconds: number;
  bytes: number;
  bits_per_second: number;
  packets: number;
  lost_packets: number;
  retransmits?: number;
}
export interface IperfJson {
  error?: string;
  end: { sum_sent: IperfSum; sum_received: IperfSum; cpu_utilization_percent?: Record<string, number> };
}

export function readFeatures(v: Veth): Map<string, { on: boolean; fixed: boolean }> {
  const r = nsExec(v.ns, ['ethtool', '-k', v.ifname]);
  if (r.status !== 0) throw new Error(`ethtool -k ${v.label}: ${r.stderr.trim()}`);
  const m = new Map<string, { on: boolean; fixed: boolean }>();
  for (const line of r.stdout.split('\n')) {
    const x = /^\s*([\w-]+): (on|off)(.*)$/.exec(line);
    if (x) m.set(x[1]!, { on: x[2] === 'on', fixed: x[3]!.includes('[fixed]') });
  }
  return m;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function machine() {
  const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' }).stdout?.trim() ?? '';
  const root = packageRoot();
  let commit = sh('git', ['-C', root, 'rev-parse', '--short', 'HEAD']) || 'unknown';
  if (sh('git', ['-C', root, 'status', '--porcelain', '--', 'native', 'ts'])) commit += '+dirty';
  return {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    kernel: os.release(),
    iperf3: sh('iperf3', ['--version']).split('\n')[0] ?? '',
    ethtool: sh('ethtool', ['--version']),
    commit,
  };
}

/** Thread ids of this process. */
export function threadIds(): number[] {
  return fs.readdirSync('/proc/self/task').map(Number);
}

const CLK_TCK = 100; // USER_HZ: the unit of /proc stat times on Linux

/**
 * CPU seconds (user + system) a process or one thread has used, from
 * /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat; 0 once it is gone.
 */
export function cpuSeconds(pid: number, tid?: number): number {
  const file = tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return 0;
  }
  // Fields after the parenthesised command name (which may hold spaces):
  // state is field 3, utime 14, stime 15 (proc(5)).
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
}

/** A command-line mistake: the benches print it with their usage and exit 2. */
export class UsageError extends Error {}

/** The value after flag `argv[i]` (argv[i + 1]), or a UsageError. */
export function flagValue(argv: string[], i: number): string {
  const v = argv[i + 1];
  if (v === undefined) throw new UsageError(`${argv[i]} needs a value`);
  return v;
}

/** A whole positive number (iperf3 -t takes whole seconds), or a UsageError naming the flag. */
export function positiveInt(flag: string, v: string): number {
  if (!/^[1-9][0-9]*$/.test(v)) throw new UsageError(`${flag} must be a positive integer, not ${JSON.stringify(v)}`);
  return Number(v);
}
