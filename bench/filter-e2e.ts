/**
 * End-to-end filter benchmark on the integration tests' namespace topology
 * (test/integration/netns.ts: hosts h1, h2 joined by an underlay veth, one
 * workload each behind a protected port). One run measures, per mode,
 * iperf3 TCP with 1 and 4 streams (receiver Gbit/s) and 64-byte UDP
 * packets (received packets/s and loss):
 *
 *   veth           no filter: a kernel bridge bp<N> joins wN-wl and wN-nt,
 *                  so packets cross the same veths as with the filter;
 *   veth-nooffload the same with checksum/segmentation/GRO offloads off on
 *                  every veth of the path (the target's reference);
 *   allow, encrypt, integrity
 *                  one Filter per host (1 worker), the integration test's
 *                  rules and SAs with that action, veth offloads at their
 *                  defaults.
 *
 * Repetitions go round all modes (rep 1: every mode, rep 2: every mode, ...)
 * so that the noise of a shared machine hits all of them alike; the table
 * shows the median and min-max over reps, and ratios against veth-nooffload
 * are medians of per-rep ratios (each rep compared with itself).
 *
 *   node dist/bench/filter-e2e.js [--seconds 3] [--reps 3] [--json FILE]
 *
 * Needs root, iperf3, ethtool and iproute2 (scripts/setup installs them);
 * bench/filter-e2e.sh builds first. Traffic only flows between the
 * namespaces this script creates, and they are removed at the end, also on
 * failure, SIGINT or SIGTERM.
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { nsExec, Topology, waitFor, Workload } from '../test/integration/netns';
import { Action, Filter } from '../ts/native/filter';
import { packageRoot } from '../ts/native/loader';
import { KP_ENC, KP_INT, pairTables, SPI_GCM, SPI_GMAC } from '../test/integration/tables';

// ---------------------------------------------------------------- options

interface Options {
  seconds: number;
  reps: number;
  json: string;
}

const USAGE = 'usage: node dist/bench/filter-e2e.js [--seconds N] [--reps N] [--json FILE]';

function parseArgs(argv: string[]): Options {
  const o: Options = { seconds: 3, reps: 3, json: path.join(packageRoot(), 'bench', 'results', 'filter-e2e.json') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    const positive = (v: string): number => {
      // iperf3 -t takes whole seconds.
      if (!/^[1-9][0-9]*$/.test(v)) throw new UsageError(`${a} must be a positive integer, not ${JSON.stringify(v)}`);
      return Number(v);
    };
    if (a === '--seconds') o.seconds = positive(value());
    else if (a === '--reps') o.reps = positive(value());
    else if (a === '--json') o.json = path.resolve(value());
    else if (a === '-h' || a === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new UsageError(`unknown argument ${a}`);
  }
  return o;
}

class UsageError extends Error {}

// ---------------------------------------------------------------- modes and metrics

type ModeId = 'veth' | 'veth-nooffload' | 'allow' | 'encrypt' | 'integrity';
type MetricId = 'tcp1' | 'tcp4' | 'udp64';

const MODES: ReadonlyArray<{ id: ModeId; label: string; action?: Action }> = [
  { id: 'veth', label: 'plain veth' },
  { id: 'veth-nooffload', label: 'plain veth, offloads off' },
  { id: 'allow', label: 'filter ALLOW_IN_CLEAR', action: 'allow' },
  { id: 'encrypt', label: 'filter ENCRYPT', action: 'encrypt' },
  { id: 'integrity', label: 'filter INTEGRITY_ONLY', action: 'integrity' },
];
const REFERENCE: ModeId = 'veth-nooffload';

const METRICS: ReadonlyArray<{ id: MetricId; label: string; args: string[] }> = [
  { id: 'tcp1', label: 'TCP 1 stream', args: ['-P', '1'] },
  { id: 'tcp4', label: 'TCP 4 streams', args: ['-P', '4'] },
  // 36 bytes of UDP payload + 8 UDP + 20 IPv4 = a 64-byte IP packet; -b 0
  // lifts iperf3's default 1 Mbit/s UDP pacing.
  { id: 'udp64', label: 'UDP 64 B', args: ['-u', '-l', '36', '-b', '0'] },
];

interface Sample {
  rep: number;
  mode: ModeId;
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

const children = new Set<ChildProcess>();
let aborted: NodeJS.Signals | null = null;
let cleanup: () => void = () => {};

class Aborted extends Error {}

function checkAbort(): void {
  if (aborted) throw new Aborted(`stopped by ${aborted}`);
}

function log(msg: string): void {
  process.stderr.write(`[filter-e2e ${new Date().toTimeString().slice(0, 8)}] ${msg}\n`);
}

function onSignal(sig: NodeJS.Signals): void {
  if (aborted) {
    // A second signal: do not wait for the run in progress to unwind.
    cleanup();
    process.exit(128 + (os.constants.signals[sig] ?? 1));
  }
  aborted = sig;
  log(`${sig}: stopping, removing the namespaces (again to force)`);
  for (const c of children) if (c.pid) killPid(c.pid);
}

function killPid(pid: number): void {
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
function run(cmd: string[], timeoutMs: number): Promise<{ status: number | null; stdout: string; stderr: string }> {
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function ipCmd(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

// ---------------------------------------------------------------- the bench

const IPERF_PORT = '5201';


/** What `ethtool -K` is asked to turn off, with the name `ethtool -k` shows it under. */
const OFFLOADS: ReadonlyArray<[string, string]> = [
  ['tso', 'tcp-segmentation-offload'],
  ['gso', 'generic-segmentation-offload'],
  ['gro', 'generic-receive-offload'],
  ['tx', 'tx-checksumming'],
  ['rx', 'rx-checksumming'],
  ['sg', 'scatter-gather'],
];

type OffloadOutcome = 'set' | 'already off' | 'refused' | 'fixed';

interface Veth {
  ns: string;
  ifname: string;
  label: string;
}

class Bench {
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

  constructor(readonly opts: Options) {
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
      f.start();
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
    if (!closed) throw new Error(`the filters' packet sockets did not close: ${this.packetSockets().join(', ')}`);
  }

  // ---- traffic

  /** Waits until w1 pings w2; returns the seconds that took. */
  async waitReachable(): Promise<number> {
    const t0 = Date.now();
    const ok = await waitFor(() => nsExec(this.w1.ns, ['ping', '-n', '-c', '1', '-W', '1', this.w2.ipv4]).status === 0, 15000, 200);
    if (!ok) throw new Error(`${this.w1.ipv4} cannot reach ${this.w2.ipv4}`);
    return (Date.now() - t0) / 1000;
  }

  async measure(rep: number, mode: ModeId, metric: (typeof METRICS)[number]): Promise<Sample> {
    const s: Sample = { rep, mode, metric: metric.id, value: null };
    const t0 = Date.now();
    try {
      const j = await this.iperf(metric.args);
      const cpu = j.end.cpu_utilization_percent;
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
          cpu,
        };
      } else {
        const r = j.end.sum_received;
        s.value = r.bits_per_second;
        s.detail = { bytes: r.bytes, seconds: r.seconds, retransmits: j.end.sum_sent.retransmits, wallS, cpu };
      }
    } catch (err) {
      if (err instanceof Aborted) throw err;
      s.error = (err as Error).message;
    }
    return s;
  }

  /** One iperf3 test from w1 to a one-off server in w2; returns its -J output. */
  private async iperf(args: string[]): Promise<IperfJson> {
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
      const cmd = ['ip', 'netns', 'exec', this.w1.ns, 'iperf3', '-c', this.w2.ipv4, '-p', IPERF_PORT, '-J'];
      const r = await run([...cmd, '-t', String(this.opts.seconds), ...args], (this.opts.seconds + 30) * 1000);
      checkAbort();
      let j: IperfJson;
      try {
        j = JSON.parse(r.stdout);
      } catch {
        throw new Error(`iperf3 ${args.join(' ')}: exit ${r.status}, no JSON: ${(r.stdout + r.stderr).trim().slice(0, 300)}`);
      }
      if (j.error || r.status !== 0) throw new Error(`iperf3 ${args.join(' ')}: ${j.error ?? `exit ${r.status}`}`);
      return j;
    } finally {
      this.topo.kill(srv.pid);
      await Promise.race([srvExit, sleep(2000)]);
      children.delete(srv);
    }
  }
}

// ---------------------------------------------------------------- helpers

/** The parts of `iperf3 -c -J` (3.12) read here. */
interface IperfSum {
  seconds: number;
  bytes: number;
  bits_per_second: number;
  packets: number;
  lost_packets: number;
  retransmits?: number;
}
interface IperfJson {
  error?: string;
  end: { sum_sent: IperfSum; sum_received: IperfSum; cpu_utilization_percent?: Record<string, number> };
}

function readFeatures(v: Veth): Map<string, { on: boolean; fixed: boolean }> {
  const r = nsExec(v.ns, ['ethtool', '-k', v.ifname]);
  if (r.status !== 0) throw new Error(`ethtool -k ${v.label}: ${r.stderr.trim()}`);
  const m = new Map<string, { on: boolean; fixed: boolean }>();
  for (const line of r.stdout.split('\n')) {
    const x = /^\s*([\w-]+): (on|off)(.*)$/.exec(line);
    if (x) m.set(x[1]!, { on: x[2] === 'on', fixed: x[3]!.includes('[fixed]') });
  }
  return m;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function machine() {
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

// ---------------------------------------------------------------- report

interface Summary {
  mode: ModeId;
  metric: MetricId;
  n: number;
  median: number | null;
  min: number | null;
  max: number | null;
  lossMedian?: number;
  /** Median of per-rep (mode / reference) ratios. */
  ratio: number | null;
  ratios: number[];
}

function summarize(samples: Sample[], reps: number): Summary[] {
  const out: Summary[] = [];
  const get = (rep: number, mode: ModeId, metric: MetricId) =>
    samples.find((s) => s.rep === rep && s.mode === mode && s.metric === metric)?.value ?? null;
  for (const mode of MODES) {
    for (const metric of METRICS) {
      const mine = samples.filter((s) => s.mode === mode.id && s.metric === metric.id && s.value !== null);
      const vals = mine.map((s) => s.value!);
      const ratios: number[] = [];
      for (let rep = 1; rep <= reps; rep++) {
        const a = get(rep, mode.id, metric.id);
        const b = get(rep, REFERENCE, metric.id);
        if (a !== null && b !== null && b > 0) ratios.push(a / b);
      }
      const sum: Summary = {
        mode: mode.id,
        metric: metric.id,
        n: vals.length,
        median: vals.length ? median(vals) : null,
        min: vals.length ? Math.min(...vals) : null,
        max: vals.length ? Math.max(...vals) : null,
        ratio: ratios.length ? median(ratios) : null,
        ratios,
      };
      if (metric.id === 'udp64' && mine.length) sum.lossMedian = median(mine.map((s) => s.lossPercent ?? 0));
      out.push(sum);
    }
  }
  return out;
}

function printReport(
  o: Options,
  m: ReturnType<typeof machine>,
  summary: Summary[],
  offloads: Record<string, Record<string, OffloadOutcome>>,
  failures: Sample[],
  elapsedS: number,
): { encryptRatio: number | null } {
  const out: string[] = [];
  out.push(`# filter end-to-end: machine: nproc ${m.nproc}, ${m.cpu}, kernel ${m.kernel}`);
  out.push(`# ${m.iperf3}; commit ${m.commit}; median [min-max] of ${o.reps} interleaved reps x ${o.seconds}s; run took ${elapsedS}s`);
  out.push('# TCP: iperf3 receiver Gbit/s; UDP: 64-byte IPv4 packets (-u -l 36 -b 0), received kpps and receiver loss;');
  out.push(`# ratios: median over reps of (mode / plain veth offloads off) in the same rep`);

  // Offloads: one line when every veth ended the same, else one per veth.
  const fmtOutcome = (r: Record<string, OffloadOutcome>) => {
    const by = new Map<OffloadOutcome, string[]>();
    for (const [short] of OFFLOADS) by.set(r[short]!, [...(by.get(r[short]!) ?? []), short]);
    return [...by].map(([k, v]) => `${k}: ${v.join(' ')}`).join('; ');
  };
  const lines = Object.entries(offloads).map(([label, r]) => [label, fmtOutcome(r)] as const);
  if (lines.length && lines.every(([, l]) => l === lines[0]![1])) {
    out.push(`# offloads off (ethtool -K, ${lines.length} veths of the path): ${lines[0]![1]}`);
  } else {
    out.push('# offloads off (ethtool -K):');
    for (const [label, l] of lines) out.push(`#   ${label.padEnd(10)} ${l}`);
  }
  out.push('');

  const cell = (s: Summary | undefined, scale: number, digits: number) => {
    if (!s || s.median === null) return 'n/a';
    const f = (x: number) => (x / scale).toFixed(digits);
    return s.n > 1 ? `${f(s.median)} [${f(s.min!)}-${f(s.max!)}]` : f(s.median);
  };
  const ratio = (s: Summary | undefined) => (s && s.ratio !== null ? s.ratio.toFixed(2) : 'n/a');
  const find = (mode: ModeId, metric: MetricId) => summary.find((s) => s.mode === mode && s.metric === metric);
  const header = ['mode', 'TCP 1 Gbit/s', 'TCP 4 Gbit/s', 'UDP 64B kpps', 'UDP loss %', 'TCP1 ratio', 'TCP4 ratio', 'UDP ratio'];
  const rows = MODES.map((mode) => {
    const udp = find(mode.id, 'udp64');
    return [
      mode.label,
      cell(find(mode.id, 'tcp1'), 1e9, 2),
      cell(find(mode.id, 'tcp4'), 1e9, 2),
      cell(udp, 1e3, 0),
      udp?.lossMedian !== undefined ? udp.lossMedian.toFixed(1) : 'n/a',
      ratio(find(mode.id, 'tcp1')),
      ratio(find(mode.id, 'tcp4')),
      ratio(udp),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  out.push(fmt(header));
  for (const r of rows) out.push(fmt(r));
  out.push('');

  const enc = find('encrypt', 'tcp1');
  const encryptRatio = enc?.ratio ?? null;
  const perRep = enc && enc.ratios.length > 1 ? ` (per rep: ${enc.ratios.map((r) => r.toFixed(2)).join(', ')})` : '';
  out.push(
    encryptRatio === null
      ? 'ENCRYPT TCP 1 stream / plain veth offloads off = n/a (target >= 0.5)'
      : `ENCRYPT TCP 1 stream / plain veth offloads off = ${encryptRatio.toFixed(2)} (target >= 0.5)${perRep} -> ${encryptRatio >= 0.5 ? 'PASS' : 'FAIL'}`,
  );
  for (const f of failures) out.push(`# failed: rep ${f.rep} ${f.mode} ${f.metric}: ${f.error}`);
  out.push(`JSON: ${o.json}`);
  process.stdout.write(out.join('\n') + '\n');
  return { encryptRatio };
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`filter-e2e: ${err.message}\n${USAGE}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('filter-e2e: needs root (network namespaces, AF_PACKET)\n');
    return 1;
  }
  for (const tool of ['iperf3', 'ethtool', 'ip', 'ss']) {
    if (spawnSync(tool, ['-V'], { stdio: 'ignore' }).error) {
      process.stderr.write(`filter-e2e: ${tool} not found (run scripts/setup)\n`);
      return 1;
    }
  }
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const m = machine();
  log(`machine: nproc ${m.nproc}, ${m.cpu}, kernel ${m.kernel}; ${o.reps} reps x ${MODES.length} modes x ${METRICS.length} tests x ${o.seconds}s`);
  const started = Date.now();
  const samples: Sample[] = [];
  // Per mode and rep: how long w1 took to reach w2 after the switch, and the
  // filters' drop counters that grew while the mode ran.
  const modeRuns: Array<{ rep: number; mode: ModeId; reachableAfterS: number; filterDrops?: Record<string, string> }> = [];
  let bench: Bench | undefined;
  cleanup = () => bench?.destroy();
  try {
    bench = new Bench(o);
    log(`topology ${bench.topo.prefix}-*: ${bench.w1.ipv4} (${bench.w1.ns}) -> ${bench.w2.ipv4} (${bench.w2.ns})`);
    const b = bench;
    const measureAll = async (rep: number, mode: (typeof MODES)[number]) => {
      const reach = await b.waitReachable();
      if (reach > 1) log(`rep ${rep}/${o.reps} ${mode.label}: w2 reachable only after ${reach.toFixed(1)}s`);
      for (const metric of METRICS) {
        checkAbort();
        const s = await b.measure(rep, mode.id, metric);
        samples.push(s);
        const wall = s.detail?.wallS as number | undefined;
        if (wall !== undefined && wall > o.seconds + 3) log(`  iperf3 took ${wall.toFixed(1)}s for a ${o.seconds}s test`);
        const shown =
          s.value === null
            ? `FAILED: ${s.error}`
            : metric.id === 'udp64'
              ? `${(s.value / 1e3).toFixed(0)} kpps received, loss ${s.lossPercent!.toFixed(1)}%`
              : `${(s.value / 1e9).toFixed(2)} Gbit/s`;
        log(`rep ${rep}/${o.reps} ${mode.label.padEnd(24)} ${metric.label.padEnd(13)} ${shown}`);
      }
      return reach;
    };
    for (let rep = 1; rep <= o.reps; rep++) {
      for (const mode of MODES) {
        checkAbort();
        if (mode.id === 'veth') b.addPlainBridges();
        if (mode.id === 'veth-nooffload') b.offloadsOff(rep === 1);
        if (mode.action === 'allow') {
          b.restoreOffloads();
          b.removePlainBridges();
          b.startFilters();
        }
        if (mode.action) b.applyAction(mode.action);
        const before = mode.action ? b.drops() : {};
        const reachableAfterS = await measureAll(rep, mode);
        const run: (typeof modeRuns)[number] = { rep, mode: mode.id, reachableAfterS };
        if (mode.action) {
          const d: Record<string, string> = {};
          for (const [k, v] of Object.entries(b.drops())) if (v - (before[k] ?? 0n) > 0n) d[k] = String(v - (before[k] ?? 0n));
          run.filterDrops = d;
          if (Object.keys(d).length) log(`  filter drops in ${mode.label}: ${JSON.stringify(d)}`);
        }
        modeRuns.push(run);
        if (mode.id === 'integrity') await b.stopFilters();
      }
    }
  } finally {
    cleanup();
  }
  const elapsedS = Math.round((Date.now() - started) / 1000);
  log(`done in ${elapsedS}s; namespaces removed`);

  const summary = summarize(samples, o.reps);
  const failures = samples.filter((s) => s.value === null);
  const { encryptRatio } = printReport(o, m, summary, bench!.offloadReport, failures, elapsedS);
  fs.mkdirSync(path.dirname(o.json), { recursive: true });
  const doc = {
    machine: m,
    config: {
      reps: o.reps,
      seconds: o.seconds,
      filterWorkers: 1,
      reference: REFERENCE,
      modes: MODES.map(({ id, label }) => ({ id, label })),
      metrics: {
        tcp1: 'iperf3 -P 1, end.sum_received.bits_per_second',
        tcp4: 'iperf3 -P 4, end.sum_received.bits_per_second',
        udp64: 'iperf3 -u -l 36 -b 0 (64-byte IPv4 packets), (sum_received.packets - lost_packets) / seconds',
      },
      ratio: 'median over reps of (mode / reference) within the same rep',
      elapsedS,
    },
    offloadsOff: bench!.offloadReport,
    offloadRestoreProblems: bench!.restoreProblems,
    target: { metric: 'tcp1', mode: 'encrypt', reference: REFERENCE, min: 0.5, ratio: encryptRatio, pass: encryptRatio !== null && encryptRatio >= 0.5 },
    summary,
    modeRuns,
    samples,
  };
  fs.writeFileSync(o.json, JSON.stringify(doc, null, 2) + '\n');
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof Aborted) {
      process.exit(128 + (os.constants.signals[aborted!] ?? 1));
    }
    process.stderr.write(`filter-e2e: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
