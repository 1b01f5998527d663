/**
 * dne beside the tunnels users would pick instead (issue #9): one run, one
 * machine, the e2e namespace topology (test/integration/netns.ts: hosts h1,
 * h2 joined by an underlay veth, workload w1 on h1 and w2 on h2, each behind
 * a protected port), measuring
 *
 *   veth, veth-nooffload   no tunnel: a kernel bridge joins each port's two
 *                          veths (offloads at their defaults / off);
 *   wireguard, nebula, openvpn, strongswan
 *                          a userspace tunnel between w1 and w2 (bench/peers/
 *                          tunnels.ts), outer packets over the same bridged
 *                          veths as plain veth, offloads at their defaults;
 *   dne-allow, dne-encrypt, dne-integrity
 *                          one dne Filter per host (1 worker thread each) in
 *                          place of the bridges, the integration test's rules.
 *
 * The inner MTU is 1400 for everything: the tunnels' interfaces have MTU
 * 1400; dne and plain veth traffic goes w1 -> w2 over a host route with
 * `mtu 1400` (so TCP's MSS is 1360 and no datagram is larger than 1400; the
 * filter's ESP packets are then at most 1437 bytes on the 1500-byte
 * underlay).
 *
 * Per variant and rep: ping round trips (p50/p99), iperf3 TCP 1 and 4
 * streams (receiver Gbit/s), 64-byte UDP (received packets/s), and the CPU
 * seconds the tunnel processes (both sides) or the filter worker threads
 * used during each iperf3 test, per Gbit received. Reps go round all
 * variants (interleaved) so a noisy neighbour hits all alike; the tables
 * show medians with [min-max] and ratios as medians of per-rep ratios.
 *
 *   node dist/bench/peers.js [--seconds 3] [--reps 3] [--json FILE]
 *        [--only a,b,...] [--profile] [--pings N]
 *
 * bench/peers.sh builds, installs the peers' Debian packages and runs this
 * as root. Traffic flows only between the namespaces it creates; they, the
 * daemons it started and its temporary folder are removed at the end, also
 * on failure, SIGINT or SIGTERM.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { nsExec } from '../test/integration/netns';
import { Action } from '../ts/native/filter';
import { packageRoot } from '../ts/native/loader';
import {
  abortSignal,
  Aborted,
  Bench,
  checkAbort,
  children,
  cpuSeconds,
  threadIds,
  log,
  machine,
  median,
  Metric,
  METRICS,
  onSignal,
  run,
  Sample,
  setCleanup,
  setLogName,
  sleep,
  flagValue,
  positiveInt,
  UsageError,
} from './e2e-common';
import { ProfileSummary, summarizeProfile } from './peers/profile';
import { INNER_MTU, Peers, PEER_PACKAGES, Tunnel, TunnelId } from './peers/tunnels';

// ---------------------------------------------------------------- options

interface Options {
  seconds: number;
  reps: number;
  json: string;
  only: Set<VariantId> | null;
  profile: boolean;
  pings: number;
}

const USAGE =
  'usage: node dist/bench/peers.js [--seconds N] [--reps N] [--json FILE] [--only ID,...] [--profile] [--pings N]';


function parseArgs(argv: string[]): Options {
  const day = new Date().toISOString().slice(0, 10);
  const o: Options = {
    seconds: 3,
    reps: 3,
    json: path.join(packageRoot(), 'bench', 'results', `peers-${day}.json`),
    only: null,
    profile: false,
    pings: 200,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => flagValue(argv, i++);
    const positive = (v: string): number => positiveInt(a, v);
    if (a === '--seconds') o.seconds = positive(value());
    else if (a === '--reps') o.reps = positive(value());
    else if (a === '--pings') o.pings = positive(value());
    else if (a === '--json') o.json = path.resolve(value());
    else if (a === '--profile') o.profile = true;
    else if (a === '--only') {
      const ids = value().split(',');
      for (const id of ids) {
        if (!VARIANTS.some((v) => v.id === id)) throw new UsageError(`--only: unknown variant ${JSON.stringify(id)} (known: ${VARIANTS.map((v) => v.id).join(', ')})`);
      }
      o.only = new Set(ids as VariantId[]);
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new UsageError(`unknown argument ${a}`);
  }
  return o;
}

// ---------------------------------------------------------------- variants

type VariantId = 'veth' | 'veth-nooffload' | TunnelId | 'dne-allow' | 'dne-encrypt' | 'dne-integrity';

interface Variant {
  id: VariantId;
  label: string;
  kind: 'veth' | 'peer' | 'dne';
  action?: Action;
}

/** In run order: the bridged modes first, then the filter's (one switch per rep). */
const VARIANTS: ReadonlyArray<Variant> = [
  { id: 'veth', label: 'plain veth', kind: 'veth' },
  { id: 'veth-nooffload', label: 'plain veth, offloads off', kind: 'veth' },
  { id: 'wireguard', label: 'wireguard-go', kind: 'peer' },
  { id: 'nebula', label: 'nebula', kind: 'peer' },
  { id: 'openvpn', label: 'openvpn AES-128-GCM', kind: 'peer' },
  { id: 'strongswan', label: 'strongSwan kernel-libipsec', kind: 'peer' },
  { id: 'dne-allow', label: 'dne ALLOW_IN_CLEAR', kind: 'dne', action: 'allow' },
  { id: 'dne-encrypt', label: 'dne ENCRYPT', kind: 'dne', action: 'encrypt' },
  { id: 'dne-integrity', label: 'dne INTEGRITY_ONLY', kind: 'dne', action: 'integrity' },
];

/** The variant the comparison table is about. */
const SUBJECT: VariantId = 'dne-encrypt';

type FigureId = 'tcp1' | 'tcp4' | 'udp64' | 'rttP50' | 'rttP99' | 'cpuTcp1' | 'cpuTcp4';

interface LatencySample {
  rep: number;
  mode: VariantId;
  sent: number;
  received: number;
  p50Us: number | null;
  p99Us: number | null;
  error?: string;
}

// ---------------------------------------------------------------- measuring

/** Round trips from `ns` to `target`: `count` pings 5 ms apart. */
async function pingLatency(ns: string, target: string, count: number): Promise<Omit<LatencySample, 'rep' | 'mode'>> {
  const r = await run(['ip', 'netns', 'exec', ns, 'ping', '-n', '-c', String(count), '-i', '0.005', '-W', '1', target], (count * 0.005 + 15) * 1000);
  checkAbort();
  const times = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000).sort((a, b) => a - b);
  const q = (p: number) => (times.length ? times[Math.min(times.length - 1, Math.ceil((p / 100) * times.length) - 1)]! : null);
  const out = { sent: count, received: times.length, p50Us: q(50), p99Us: q(99) };
  return times.length ? out : { ...out, error: `ping: no replies (exit ${r.status}) ${r.stderr.trim().slice(0, 200)}` };
}

/** Waits (at most 5 s) until the processes under test stop using CPU: queues left by a flood drained. */
async function quiesce(cpu: (() => number) | undefined): Promise<void> {
  if (!cpu) {
    await sleep(300);
    return;
  }
  for (let i = 0; i < 20; i++) {
    const a = cpu();
    await sleep(250);
    if (cpu() - a < 0.01) return;
  }
}

// ---------------------------------------------------------------- main run

interface RunResult {
  samples: Sample[];
  latency: LatencySample[];
  tunnels: Map<TunnelId, Tunnel>;
  unavailable: Map<VariantId, string>;
  modeRuns: Array<{ rep: number; mode: VariantId; reachableAfterS: number; filterDrops?: Record<string, string> }>;
  profile: ProfileSummary | null;
  profileError?: string;
  deadDaemons: string[];
}

async function runAll(o: Options, b: Bench, workDir: string): Promise<RunResult> {
  const res: RunResult = { samples: [], latency: [], tunnels: new Map(), unavailable: new Map(), modeRuns: [], profile: null, deadDaemons: [] };
  const { w1, w2 } = b;
  const variants = VARIANTS.filter((v) => !o.only || o.only.has(v.id));

  // One inner MTU for the traffic that does not cross a tunnel interface.
  for (const [from, to] of [
    [w1, w2],
    [w2, w1],
  ] as const) {
    nsExecOk(from.ns, ['ip', 'route', 'add', `${to.ipv4}/32`, 'dev', 'eth0', 'src', from.ipv4, 'mtu', String(INNER_MTU)]);
  }

  b.addPlainBridges();
  let bridged = true;
  let offloadsOff = false;
  const peers = new Peers(b.topo, w1, w2, workDir);
  for (const v of variants.filter((x) => x.kind === 'peer')) {
    checkAbort();
    try {
      const t = await peers[v.id as TunnelId]();
      await b.waitReachable(t.target);
      res.tunnels.set(t.id, t);
      log(`${t.label} up (${t.info.version}, ${t.info.cipher}); pids ${t.pids.join(' ')}`);
    } catch (err) {
      if (err instanceof Aborted) throw err;
      res.unavailable.set(v.id, (err as Error).message);
      log(`${v.label}: not available: ${(err as Error).message}`);
    }
  }

  const cpuOf = (v: Variant): (() => number) | undefined => {
    if (v.kind === 'peer') {
      const pids = res.tunnels.get(v.id as TunnelId)!.pids;
      return () => pids.reduce((s, p) => s + cpuSeconds(p), 0);
    }
    if (v.kind === 'dne') {
      const tids = [...b.filterTids];
      return () => tids.reduce((s, t) => s + cpuSeconds(process.pid, t), 0);
    }
    return undefined;
  };

  for (let rep = 1; rep <= o.reps; rep++) {
    for (const v of variants) {
      checkAbort();
      if (res.unavailable.has(v.id)) continue;
      if (v.kind !== 'dne' && !bridged) {
        await b.stopFilters();
        b.addPlainBridges();
        bridged = true;
      }
      // Offloads are off only for veth-nooffload: every other variant runs
      // with the veths as the topology made them.
      if (v.id === 'veth-nooffload') {
        b.offloadsOff(rep === 1);
        offloadsOff = true;
      } else if (offloadsOff) {
        b.restoreOffloads();
        offloadsOff = false;
      }
      if (v.kind === 'dne' && bridged) {
        b.removePlainBridges();
        b.startFilters();
        bridged = false;
      }
      if (v.action) b.applyAction(v.action);
      const target = v.kind === 'peer' ? res.tunnels.get(v.id as TunnelId)!.target : w2.ipv4;
      const cpu = cpuOf(v);
      const before = v.kind === 'dne' ? b.drops() : {};
      const reachableAfterS = await b.waitReachable(target);
      if (reachableAfterS > 1) log(`rep ${rep}/${o.reps} ${v.label}: ${target} reachable only after ${reachableAfterS.toFixed(1)}s`);

      const lat = await pingLatency(w1.ns, target, o.pings);
      res.latency.push({ rep, mode: v.id, ...lat });
      log(`rep ${rep}/${o.reps} ${v.label.padEnd(26)} ping          ${lat.p50Us === null ? `FAILED: ${lat.error}` : `p50 ${lat.p50Us.toFixed(0)} us, p99 ${lat.p99Us!.toFixed(0)} us (${lat.received}/${lat.sent})`}`);
      for (const metric of METRICS) {
        checkAbort();
        const s = await b.measure(rep, v.id, metric, target, cpu);
        res.samples.push(s);
        log(`rep ${rep}/${o.reps} ${v.label.padEnd(26)} ${metric.label.padEnd(13)} ${shown(s, metric)}`);
        await quiesce(cpu);
      }
      const mr: RunResult['modeRuns'][number] = { rep, mode: v.id, reachableAfterS };
      if (v.kind === 'dne') {
        const d: Record<string, string> = {};
        for (const [k, n] of Object.entries(b.drops())) if (n - (before[k] ?? 0n) > 0n) d[k] = String(n - (before[k] ?? 0n));
        mr.filterDrops = d;
      }
      res.modeRuns.push(mr);
    }
  }

  if (o.profile && variants.some((v) => v.id === SUBJECT)) {
    try {
      res.profile = await profileEncrypt(o, b, bridged);
      bridged = false;
    } catch (err) {
      if (err instanceof Aborted) throw err;
      res.profileError = (err as Error).message;
      log(`profile failed: ${res.profileError}`);
    }
  }
  res.deadDaemons = peers.dead();
  if (!bridged) await b.stopFilters();
  return res;
}

/** perf record -a -g over one more dne ENCRYPT TCP 1-stream test. */
async function profileEncrypt(o: Options, b: Bench, bridged: boolean): Promise<ProfileSummary> {
  if (bridged) {
    b.restoreOffloads();
    b.removePlainBridges();
    b.startFilters();
  }
  b.applyAction('encrypt');
  await b.waitReachable();
  const file = path.join(os.tmpdir(), `dne-peers-${process.pid}.perf.data`);
  const seconds = o.seconds + 1;
  log(`profile: perf record -a -g for ${seconds}s over an ENCRYPT TCP 1-stream test`);
  try {
    const rec = run(['perf', 'record', '-a', '-g', '-F', '999', '-o', file, '--', 'sleep', String(seconds)], (seconds + 60) * 1000);
    await sleep(300);
    const s = await b.measure(0, 'profile', METRICS[0]!, b.w2.ipv4);
    const r = await rec;
    if (r.status !== 0) throw new Error(`perf record: exit ${r.status}: ${r.stderr.trim().slice(0, 300)}`);
    log(`profile: ${shown(s, METRICS[0]!)} while recording`);
    return summarizeProfile(file, [...b.filterTids], threadIds(), seconds);
  } finally {
    fs.rmSync(file, { force: true });
    fs.rmSync(`${file}.old`, { force: true });
  }
}

function nsExecOk(ns: string, cmd: string[]): void {
  const r = nsExec(ns, cmd);
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} in ${ns}: ${(r.stderr || r.stdout).trim()}`);
}

function shown(s: Sample, metric: Metric): string {
  if (s.value === null) return `FAILED: ${s.error}`;
  const cpu = s.detail?.cpuS as number | undefined;
  if (metric.id === 'udp64') {
    return `${(s.value / 1e3).toFixed(0)} kpps received, loss ${s.lossPercent!.toFixed(1)}%${cpu !== undefined ? `, ${cpu.toFixed(2)} CPU s` : ''}`;
  }
  const perGbit = cpu !== undefined ? `, ${(cpu / gbitOf(s)).toFixed(2)} CPU s/Gbit` : '';
  return `${(s.value / 1e9).toFixed(2)} Gbit/s${perGbit}`;
}

/** Gbit received in a TCP sample. */
function gbitOf(s: Sample): number {
  return ((s.detail?.bytes as number) * 8) / 1e9;
}

// ---------------------------------------------------------------- figures and report

/** One figure of one variant in one rep (null: failed or not applicable). */
function figure(res: RunResult, rep: number, mode: VariantId, f: FigureId): number | null {
  if (f === 'rttP50' || f === 'rttP99') {
    const l = res.latency.find((x) => x.rep === rep && x.mode === mode);
    return (f === 'rttP50' ? l?.p50Us : l?.p99Us) ?? null;
  }
  const metric = f === 'cpuTcp1' ? 'tcp1' : f === 'cpuTcp4' ? 'tcp4' : f;
  const s = res.samples.find((x) => x.rep === rep && x.mode === mode && x.metric === metric);
  if (!s || s.value === null) return null;
  if (f === 'cpuTcp1' || f === 'cpuTcp4') {
    const cpu = s.detail?.cpuS as number | undefined;
    return cpu === undefined ? null : cpu / gbitOf(s);
  }
  return s.value;
}

interface Stat {
  n: number;
  median: number | null;
  min: number | null;
  max: number | null;
}

function stat(xs: number[]): Stat {
  return xs.length ? { n: xs.length, median: median(xs), min: Math.min(...xs), max: Math.max(...xs) } : { n: 0, median: null, min: null, max: null };
}

const FIGURES: ReadonlyArray<FigureId> = ['tcp1', 'tcp4', 'udp64', 'rttP50', 'rttP99', 'cpuTcp1', 'cpuTcp4'];

function summarize(res: RunResult, reps: number, variants: Variant[]) {
  const perVariant: Record<string, Record<FigureId, Stat & { lossMedian?: number }>> = {};
  for (const v of variants) {
    const row = {} as Record<FigureId, Stat & { lossMedian?: number }>;
    for (const f of FIGURES) {
      const xs: number[] = [];
      for (let rep = 1; rep <= reps; rep++) {
        const x = figure(res, rep, v.id, f);
        if (x !== null) xs.push(x);
      }
      row[f] = stat(xs);
    }
    const udp = res.samples.filter((s) => s.mode === v.id && s.metric === 'udp64' && s.value !== null);
    if (udp.length) row.udp64.lossMedian = median(udp.map((s) => s.lossPercent ?? 0));
    perVariant[v.id] = row;
  }
  /** ratios[a][b][f]: median over reps of figure(a) / figure(b) in the same rep. */
  const ratio = (a: VariantId, b: VariantId, f: FigureId): { median: number | null; perRep: number[] } => {
    const rs: number[] = [];
    for (let rep = 1; rep <= reps; rep++) {
      const x = figure(res, rep, a, f);
      const y = figure(res, rep, b, f);
      if (x !== null && y !== null && y > 0) rs.push(x / y);
    }
    return { median: rs.length ? median(rs) : null, perRep: rs };
  };
  const ratios: Record<string, Record<string, Record<FigureId, { median: number | null; perRep: number[] }>>> = {};
  for (const a of variants) {
    ratios[a.id] = {};
    for (const b of variants) {
      if (a.id === b.id) continue;
      const r = {} as Record<FigureId, { median: number | null; perRep: number[] }>;
      for (const f of FIGURES) r[f] = ratio(a.id, b.id, f);
      ratios[a.id]![b.id] = r;
    }
  }
  return { perVariant, ratios };
}

type Summary = ReturnType<typeof summarize>;

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmt(header), ...rows.map(fmt)];
}

/** The report: plain-text tables for the terminal and the same as Markdown for the README. */
function report(o: Options, m: ReturnType<typeof machine>, res: RunResult, sum: Summary, variants: Variant[], elapsedS: number) {
  const cell = (s: Stat | undefined, scale: number, digits: number) => {
    if (!s || s.median === null) return 'n/a';
    const f = (x: number) => (x / scale).toFixed(digits);
    return s.n > 1 ? `${f(s.median)} [${f(s.min!)}-${f(s.max!)}]` : f(s.median);
  };
  const r2 = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : x.toFixed(2));
  const shownVariants = variants.filter((v) => !res.unavailable.has(v.id));

  const header = ['variant', 'TCP 1 Gbit/s', 'TCP 4 Gbit/s', 'UDP 64B kpps', 'UDP loss %', 'RTT p50 us', 'RTT p99 us', 'CPU s/Gbit TCP1', 'CPU s/Gbit TCP4'];
  const rows = shownVariants.map((v) => {
    const f = sum.perVariant[v.id]!;
    return [
      v.label,
      cell(f.tcp1, 1e9, 2),
      cell(f.tcp4, 1e9, 2),
      cell(f.udp64, 1e3, 0),
      f.udp64.lossMedian !== undefined ? f.udp64.lossMedian.toFixed(1) : 'n/a',
      cell(f.rttP50, 1, 0),
      cell(f.rttP99, 1, 0),
      cell(f.cpuTcp1, 1, 2),
      cell(f.cpuTcp4, 1, 2),
    ];
  });

  const subject = variants.find((v) => v.id === SUBJECT);
  const cmpHeader = ['dne ENCRYPT / ...', 'TCP 1', 'TCP 4', 'UDP 64B', 'RTT p50', 'RTT p99', 'CPU/Gbit TCP1'];
  const cmpFigures: FigureId[] = ['tcp1', 'tcp4', 'udp64', 'rttP50', 'rttP99', 'cpuTcp1'];
  const cmpRows = subject && !res.unavailable.has(SUBJECT)
    ? shownVariants.filter((v) => v.id !== SUBJECT).map((v) => [v.label, ...cmpFigures.map((f) => r2(sum.ratios[SUBJECT]?.[v.id]?.[f]?.median))])
    : [];

  const text: string[] = [];
  text.push(`# dne vs peers: machine: ${m.cpu}, ${m.nproc} CPUs, kernel ${m.kernel}; commit ${m.commit}`);
  text.push(`# ${m.iperf3}; median [min-max] of ${o.reps} interleaved reps x ${o.seconds}s per test; run took ${elapsedS}s`);
  text.push(`# inner MTU ${INNER_MTU} for every variant; TCP: iperf3 receiver Gbit/s; UDP: 64-byte IPv4 packets (-u -l 36 -b 0) received;`);
  text.push(`# RTT: ${o.pings} pings 5 ms apart; CPU: user+system seconds of the tunnel processes (both sides) or the dne filter threads per Gbit received`);
  for (const [id, t] of res.tunnels) text.push(`#   ${id}: ${t.info.version}, ${t.info.cipher}`);
  text.push('');
  text.push(...table(header, rows));
  text.push('');
  if (cmpRows.length) {
    text.push('# ratios: median over reps of (dne ENCRYPT / variant) in the same rep; throughput > 1 is better for dne, RTT and CPU/Gbit < 1 is better for dne');
    text.push(...table(cmpHeader, cmpRows));
    text.push('');
  }
  for (const [id, why] of res.unavailable) text.push(`# not measured: ${id}: ${why.split('\n')[0]}`);
  for (const s of res.samples.filter((x) => x.value === null)) text.push(`# failed: rep ${s.rep} ${s.mode} ${s.metric}: ${s.error}`);
  for (const l of res.latency.filter((x) => x.error)) text.push(`# failed: rep ${l.rep} ${l.mode} ping: ${l.error}`);
  for (const d of res.deadDaemons) text.push(`# daemon exited during the run: ${d.split('\n')[0]}`);
  if (res.profile) text.push(...profileText(res.profile));
  if (res.profileError) text.push(`# profile failed: ${res.profileError}`);

  // Markdown for the README's performance section.
  const md: string[] = [];
  const mdRow = (r: string[]) => `| ${r.join(' | ')} |`;
  md.push(mdRow(header), mdRow(header.map(() => '---')), ...rows.map(mdRow));
  if (cmpRows.length) md.push('', mdRow(cmpHeader), mdRow(cmpHeader.map(() => '---')), ...cmpRows.map(mdRow));
  return { text: text.join('\n') + '\n', markdown: md.join('\n') + '\n' };
}

function profileText(p: ProfileSummary): string[] {
  const out = ['', `# profile of dne ENCRYPT, TCP 1 stream (perf record -a -g, ${p.seconds}s, ${p.samples} samples over both CPUs):`];
  out.push(`#   all CPU time by role: ${p.byRole.map((c) => `${c.role} ${c.percent.toFixed(1)}%`).join(', ')}`);
  out.push(`#   filter worker threads: ${p.filterPercent.toFixed(1)}% of all samples; by stage:`);
  for (const s of p.filterStages) out.push(`#     ${s.percent.toFixed(1).padStart(5)}%  ${s.stage}`);
  out.push('#   hottest symbols in the filter threads:');
  for (const s of p.filterTop) out.push(`#     ${s.percent.toFixed(1).padStart(5)}%  ${s.symbol}  (${s.dso})`);
  out.push(`#   hottest symbols in no stage: ${p.otherTop.map((s) => `${s.symbol} ${s.percent.toFixed(1)}%`).join(', ')}`);
  return out;
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  setLogName('peers');
  let o: Options;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`peers: ${err.message}\n${USAGE}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('peers: needs root (network namespaces, AF_PACKET, TUN)\n');
    return 1;
  }
  for (const tool of ['iperf3', 'ethtool', 'ip', 'ss', 'ping', 'nsenter', 'openssl', ...(o.profile ? ['perf'] : [])]) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0) {
      process.stderr.write(`peers: ${tool} not found (bench/peers.sh installs what it needs)\n`);
      return 1;
    }
  }
  const missing = PEER_PACKAGES.filter((p) => !fs.existsSync(p.binary)).map((p) => p.pkg);
  if (missing.length) log(`not installed: ${missing.join(' ')} (bench/peers.sh installs them); those peers will be n/a`);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const variants = VARIANTS.filter((v) => !o.only || o.only.has(v.id));
  const m = machine();
  log(`machine: ${m.cpu}, ${m.nproc} CPUs, kernel ${m.kernel}; ${o.reps} reps x ${variants.length} variants x (ping + ${METRICS.length} iperf3 tests x ${o.seconds}s)`);
  const started = Date.now();
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dne-peers-'));
  let bench: Bench | undefined;
  const cleanup = () => {
    bench?.destroy();
    fs.rmSync(workDir, { recursive: true, force: true });
  };
  setCleanup(cleanup);
  let res: RunResult;
  try {
    bench = new Bench(o.seconds);
    log(`topology ${bench.topo.prefix}-*: ${bench.w1.ns} -> ${bench.w2.ns}`);
    res = await runAll(o, bench, workDir);
  } finally {
    cleanup();
    for (const c of children) if (c.pid) log(`still running after cleanup: pid ${c.pid}`);
  }
  const elapsedS = Math.round((Date.now() - started) / 1000);
  log(`done in ${elapsedS}s; namespaces, daemons and ${workDir} removed`);

  const sum = summarize(res, o.reps, variants);
  const { text, markdown } = report(o, m, res, sum, variants, elapsedS);
  process.stdout.write(text);
  fs.mkdirSync(path.dirname(o.json), { recursive: true });
  const mdFile = o.json.replace(/\.json$/, '') + '.md';
  fs.writeFileSync(mdFile, markdown);
  const doc = {
    date: new Date().toISOString(),
    machine: { ...m, lscpu: lscpuModel() },
    config: {
      reps: o.reps,
      seconds: o.seconds,
      pings: o.pings,
      innerMtu: INNER_MTU,
      filterWorkers: 1,
      variants: variants.map(({ id, label, kind }) => ({ id, label, kind })),
      figures: {
        tcp1: 'iperf3 -P 1, end.sum_received.bits_per_second',
        tcp4: 'iperf3 -P 4, end.sum_received.bits_per_second',
        udp64: 'iperf3 -u -l 36 -b 0 (64-byte IPv4 packets), (sum_received.packets - lost_packets) / seconds',
        rttP50: 'ping round trip, median, microseconds',
        rttP99: 'ping round trip, 99th percentile, microseconds',
        cpuTcp1: 'CPU s (utime+stime of tunnel processes on both sides, or dne filter threads) per Gbit received, TCP 1 stream',
        cpuTcp4: 'the same for TCP 4 streams',
      },
      ratio: 'median over reps of (a / b) within the same rep',
      elapsedS,
    },
    tunnels: Object.fromEntries([...res.tunnels].map(([id, t]) => [id, t.info])),
    unavailable: Object.fromEntries(res.unavailable),
    summary: sum.perVariant,
    ratios: sum.ratios,
    profile: res.profile,
    profileError: res.profileError,
    offloadsOff: bench!.offloadReport,
    offloadRestoreProblems: bench!.restoreProblems,
    deadDaemons: res.deadDaemons,
    modeRuns: res.modeRuns,
    latency: res.latency,
    samples: res.samples,
  };
  fs.writeFileSync(o.json, JSON.stringify(doc, null, 2) + '\n');
  process.stdout.write(`JSON: ${o.json}\nMarkdown: ${mdFile}\n`);
  const failed = res.samples.some((s) => s.value === null) || res.latency.some((l) => l.error) || res.unavailable.size > 0;
  return failed ? 1 : 0;
}

function lscpuModel(): string {
  const out = spawnSync('lscpu', [], { encoding: 'utf8' }).stdout ?? '';
  return /^Model name:\s*(.*)$/m.exec(out)?.[1]?.trim() ?? 'unknown';
}

main().then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof Aborted) process.exit(128 + (os.constants.signals[abortSignal()!] ?? 1));
    process.stderr.write(`peers: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
