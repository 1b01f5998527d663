/**
 * Real traffic between workloads in their namespaces (issue #8 step 5): a
 * real HTTP server (python3 http.server) and client (curl), ping, iperf3.
 * Every process is started through the Topology, so destroy() ends it.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nsExec, Topology, waitFor, Workload } from './netns';

function run(ns: string, cmd: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

export function urlHost(addr: string): string {
  return addr.includes(':') ? `[${addr}]` : addr;
}

/** Serves `files` (name -> content) over HTTP on `port` from inside the workload; resolves once it answers. */
export async function startHttpServer(topo: Topology, w: Workload, port: number, dir: string, files: Record<string, string>): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  topo.spawnIn(w.ns, ['python3', '-m', 'http.server', String(port), '--bind', '::', '--directory', dir]);
  const ok = await waitFor(() => nsExec(w.ns, ['ss', '-ltnH', `sport = :${port}`]).stdout.trim().length > 0, 10_000, 100);
  if (!ok) throw new Error(`HTTP server in ${w.name} did not listen on port ${port}`);
}

export interface HttpResult {
  ok: boolean;
  status: number;
  body: string;
  error?: string;
}

export async function httpGet(from: Workload, addr: string, port: number, file: string, timeoutS = 5): Promise<HttpResult> {
  const r = await run(from.ns, ['curl', '-sS', '-m', String(timeoutS), '-o', '-', '-w', '\n%{http_code}', `http://${urlHost(addr)}:${port}/${file}`], (timeoutS + 5) * 1000);
  const i = r.stdout.lastIndexOf('\n');
  const status = Number(r.stdout.slice(i + 1)) || 0;
  return { ok: r.code === 0 && status === 200, status, body: r.stdout.slice(0, Math.max(0, i)), ...(r.code === 0 ? {} : { error: r.stderr.trim() }) };
}

export interface PingResult {
  sent: number;
  received: number;
  avgMs: number | null;
}

export async function ping(from: Workload, addr: string, count: number, intervalS = 0.2, deadlineS?: number): Promise<PingResult> {
  const args = ['ping', '-n', '-q', '-c', String(count), '-i', String(intervalS), '-W', '1'];
  if (deadlineS) args.push('-w', String(deadlineS));
  const r = await run(from.ns, [...args, addr], ((deadlineS ?? count * intervalS + 2) + 10) * 1000);
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.stdout);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  return { sent: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0, avgMs: rtt ? Number(rtt[1]) : null };
}

/** UDP counters of a namespace's kernel (/proc/net/snmp, RFC 4113 udp group names). */
export function udpCounters(ns: string): Record<string, number> {
  const lines = nsExec(ns, ['cat', '/proc/net/snmp']).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  if (lines.length < 2) return {};
  const names = lines[0]!.split(/\s+/).slice(1);
  const values = lines[1]!.split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(names.map((n, i) => [n, values[i] ?? 0]));
}

export function startIperfServer(topo: Topology, w: Workload, port = 5201): void {
  topo.spawnIn(w.ns, ['iperf3', '-s', '-p', String(port)]);
}

export interface IperfResult {
  /** Receiver's figure, bits/s. */
  bitsPerSecond: number;
  seconds: number;
  /** UDP only: datagrams sent, lost (iperf3's own count). */
  packets?: number;
  lostPackets?: number;
  retransmits?: number;
}

export async function iperf(from: Workload, addr: string, o: { seconds: number; udpBitrate?: string; port?: number; length?: number; window?: string }): Promise<IperfResult> {
  const args = ['iperf3', '-c', addr, '-p', String(o.port ?? 5201), '-t', String(o.seconds), '-J'];
  if (o.udpBitrate) args.push('-u', '-b', o.udpBitrate);
  if (o.length) args.push('-l', String(o.length));
  // Socket buffers of both ends (iperf3 passes it to the server).
  if (o.window) args.push('-w', o.window);
  // The server may need a moment after a previous test; retry a busy server.
  for (let attempt = 0; ; attempt++) {
    const r = await run(from.ns, args, (o.seconds + 30) * 1000);
    let j: { error?: string; end?: Record<string, any> } = {};
    try {
      j = JSON.parse(r.stdout);
    } catch {
      /* below */
    }
    if (j.error && /busy/i.test(j.error) && attempt < 5) {
      await new Promise((res) => setTimeout(res, 1000));
      continue;
    }
    if (!j.end) throw new Error(`iperf3 ${from.name} -> ${addr} failed: ${j.error ?? (r.stderr.trim() || `exit ${r.code}`)}`);
    if (o.udpBitrate) {
      const s = j.end.sum;
      return { bitsPerSecond: s.bits_per_second, seconds: s.seconds, packets: s.packets, lostPackets: s.lost_packets };
    }
    return { bitsPerSecond: j.end.sum_received.bits_per_second, seconds: j.end.sum_received.seconds, retransmits: j.end.sum_sent.retransmits };
  }
}
