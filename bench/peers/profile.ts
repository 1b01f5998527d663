/**
 * Where the CPU goes on the dne ENCRYPT path: `perf record -a -g` (cpu-clock
 * samples on this VM, which has no hardware counters) over one iperf3 TCP
 * test, then a summary: the share of each process of all CPU time, and the
 * filter worker threads' samples by stage (symbols grouped by what they do).
 */
import { spawnSync } from 'node:child_process';

export interface ProfileSummary {
  seconds: number;
  samples: number;
  /**
   * Share of all samples (both CPUs, idle included) by role: the filter
   * worker threads, iperf3, the rest of this process, idle, and whatever
   * else ran on the machine at the time.
   */
  byRole: Array<{ role: string; percent: number }>;
  /** The filter threads' samples grouped by stage, percent of their samples. */
  filterStages: Array<{ stage: string; percent: number }>;
  /** The filter threads' hottest symbols, percent of their samples. */
  filterTop: Array<{ symbol: string; dso: string; percent: number }>;
  /** The hottest symbols that fell in no stage. */
  otherTop: Array<{ symbol: string; dso: string; percent: number }>;
  /** Filter threads' share of all samples. */
  filterPercent: number;
}

/**
 * Stages by symbol name, first match wins. Kernel functions differ between
 * versions; these are the ones a 6.x kernel shows on this path.
 */
const STAGES: ReadonlyArray<[string, RegExp]> = [
  ['AES-GCM / GMAC (OpenSSL)', /aes|gcm|ghash|gmac|EVP_|ossl_|CRYPTO_/i],
  ['segmentation / coalescing / checksum (dne)', /segment|coalesc|checksum|dne::csum|mss/i],
  ['ESP framing, classify, tables (dne)', /dne::|esp|classif|replay|flow_cache|Worker|PortTable/],
  ['copies (memcpy, copy to/from user)', /memcpy|memmove|copy_user|copy_to|copy_from|rep_movs|_copy_/i],
  ['checksum (kernel)', /csum/],
  ['AF_PACKET receive (tpacket_rcv, ring, timestamps)', /tpacket|packet_rcv|prb_|packet_lookup_frame|__packet_|ktime_get/],
  ['AF_PACKET send: sendmmsg per-message work, skb alloc', /packet_snd|packet_sendmsg|sendmmsg|sendmsg|alloc_skb|skb_put|sock_alloc_send|skb_copy_datagram_from|copy_msghdr|copy_iovec|__put_user|__get_user|kmem_cache|kfree|slab|sock_wfree|skb_release|consume_skb/],
  ['kernel network path: veth, bridge, netfilter, IP/TCP receive', /veth|br_|netif|__dev_|dev_queue|dev_hard|napi|gro|skb_|nf_|ip_rcv|ipv4|process_backlog|eth_|netdev_|__local_bh|do_softirq|net_rx|tcp_|ip_/],
  ['poll / wakeups / scheduling / locking', /poll|schedule|wake|futex|do_idle|hrtimer|timerqueue|irq|softirq|rcu|_raw_spin|lock/],
  ['syscall entry/exit', /syscall|entry_|exit_to_user|do_syscall/],
];

function perfReport(file: string, args: string[]): string {
  const r = spawnSync('perf', ['report', '-i', file, '--stdio', '--no-children', '-g', 'none', '--percent-limit', '0', ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`perf report: ${(r.stderr || '').trim().slice(0, 300)}`);
  return r.stdout;
}

/** Rows "  12.34%  a  b  c" of a perf report, as [percent, columns]. */
function rows(text: string): Array<[number, string[]]> {
  const out: Array<[number, string[]]> = [];
  for (const line of text.split('\n')) {
    const m = /^\s+([\d.]+)%\s+(.*)$/.exec(line);
    if (m) out.push([Number(m[1]), m[2]!.trim().split(/\s{2,}/)]);
  }
  return out;
}

export function summarizeProfile(file: string, filterTids: number[], ownTids: number[], seconds: number): ProfileSummary {
  // --sort pid shows threads as "tid:comm"; -n adds the sample count first.
  const tidSet = new Set(filterTids);
  const own = new Set(ownTids);
  const roles = new Map<string, number>();
  let samples = 0;
  for (const [p, cols] of rows(perfReport(file, ['--sort', 'pid', '-n']))) {
    samples += Number(cols[0] ?? 0);
    const m = /^\s*(\d+):(.*)$/.exec(cols[1] ?? '');
    const tid = Number(m?.[1]);
    const comm = m?.[2]?.trim() ?? '';
    const role = tidSet.has(tid)
      ? 'dne filter threads'
      : own.has(tid)
        ? 'bench process, other threads'
        : comm === 'iperf3'
          ? 'iperf3'
          : tid === 0
            ? 'idle'
            : 'other processes on the machine';
    roles.set(role, (roles.get(role) ?? 0) + p);
  }
  const byRole = [...roles].map(([role, percent]) => ({ role, percent })).sort((a, b) => b.percent - a.percent);
  const filterPercent = roles.get('dne filter threads') ?? 0;
  // Within the filter threads: --tid restricts the report, and with
  // --percentage relative the shares are of the filter threads' samples.
  const symRows = rows(perfReport(file, ['--tid', filterTids.join(','), '--percentage', 'relative', '--sort', 'dso,sym']));
  const stageSum = new Map<string, number>();
  const other: ProfileSummary['otherTop'] = [];
  const parsed = symRows.map(([percent, cols]) => ({ percent, dso: cols[0] ?? '', symbol: (cols[1] ?? '').replace(/^\[[.kgu]\]\s*/, '') }));
  for (const r of parsed) {
    const stage = STAGES.find(([, re]) => re.test(r.symbol))?.[0] ?? 'other';
    stageSum.set(stage, (stageSum.get(stage) ?? 0) + r.percent);
    if (stage === 'other' && other.length < 10) other.push(r);
  }
  const filterStages = [...stageSum].map(([stage, percent]) => ({ stage, percent })).sort((a, b) => b.percent - a.percent);
  return { seconds, samples, byRole, filterStages, filterTop: parsed.slice(0, 15), otherTop: other, filterPercent };
}
