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
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Action } from '../ts/native/filter';
import { packageRoot } from '../ts/native/loader';
import {
  abortSignal,
  Aborted,
  Bench,
  checkAbort,
  log,
  machine,
  median,
  METRICS,
  MetricId,
  OffloadOutcome,
  OFFLOADS,
  onSignal,
  Sample,
  setCleanup,
  setLogName,
  flagValue,
  positiveInt,
  UsageError,
} from './e2e-common';

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
    const value = (): string => flagValue(argv, i++);
    const positive = (v: string): number => positiveInt(a, v);
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


// ---------------------------------------------------------------- modes and metrics

type ModeId = 'veth' | 'veth-nooffload' | 'allow' | 'encrypt' | 'integrity';

const MODES: ReadonlyArray<{ id: ModeId; label: string; action?: Action }> = [
  { id: 'veth', label: 'plain veth' },
  { id: 'veth-nooffload', label: 'plain veth, offloads off' },
  { id: 'allow', label: 'filter ALLOW_IN_CLEAR', action: 'allow' },
  { id: 'encrypt', label: 'filter ENCRYPT', action: 'encrypt' },
  { id: 'integrity', label: 'filter INTEGRITY_ONLY', action: 'integrity' },
];
const REFERENCE: ModeId = 'veth-nooffload';


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
  setLogName('filter-e2e');
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
  const cleanup = () => bench?.destroy();
  setCleanup(cleanup);
  try {
    bench = new Bench(o.seconds);
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
      process.exit(128 + (os.constants.signals[abortSignal()!] ?? 1));
    }
    process.stderr.write(`filter-e2e: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
