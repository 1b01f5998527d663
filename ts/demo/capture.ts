/**
 * What a capture of the underlay proves (issue #8): which flows crossed as
 * ESP, with which SPIs and sender IDs; that no (SPI, IV) pair ever repeats
 * (RFC 4106 §3.1 / RFC 6054: a repeated GCM nonce under one key breaks both
 * confidentiality and integrity); and whether a marker string crossed in
 * clear text.
 */
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { ipView, readPcap } from './pcap';

export interface EspRecord {
  src: string;
  dst: string;
  spi: number;
  seq: number;
  /** The 8-byte IV as hex (RFC 4106 §3.1). */
  iv: string;
  ts: number;
}

export interface CaptureSummary {
  frames: number;
  esp: EspRecord[];
  /** Non-ESP IP frames between the given workload addresses. */
  clear: Array<{ src: string; dst: string; proto: number }>;
  /** marker -> frames whose bytes contain it, split by ESP or not. */
  markers: Record<string, { inEsp: number; inClear: number }>;
}

/** Parses a pcap written by tcpdump; `markers` are searched in every frame's bytes. */
export function summarizeCapture(file: string, markers: string[] = []): CaptureSummary {
  const { frames } = readPcap(file);
  const out: CaptureSummary = { frames: frames.length, esp: [], clear: [], markers: {} };
  const needles = markers.map((m) => [m, Buffer.from(m)] as const);
  for (const m of markers) out.markers[m] = { inEsp: 0, inClear: 0 };
  for (const f of frames) {
    const v = ipView(f.data);
    if (!v) continue;
    const isEsp = v.proto === 50;
    if (isEsp && f.data.length >= v.l4 + 16) {
      out.esp.push({
        src: v.src,
        dst: v.dst,
        spi: f.data.readUInt32BE(v.l4),
        seq: f.data.readUInt32BE(v.l4 + 4),
        iv: f.data.subarray(v.l4 + 8, v.l4 + 16).toString('hex'),
        ts: f.ts,
      });
    } else if (!isEsp) {
      out.clear.push({ src: v.src, dst: v.dst, proto: v.proto });
    }
    for (const [m, b] of needles) {
      if (f.data.indexOf(b) >= 0) out.markers[m]![isEsp ? 'inEsp' : 'inClear']++;
    }
  }
  return out;
}

/** The sender ID in an IV of `bits` leading bits (RFC 6054 §3 layout: sender ID ‖ counter). */
export function senderIdOf(ivHex: string, bits: number): number {
  return Number(BigInt('0x' + ivHex) >> BigInt(64 - bits));
}

/** Accumulates (SPI, IV) pairs over a whole run and reports repeats. */
export class NonceLedger {
  private readonly seen = new Map<string, string>();
  readonly repeats: Array<{ spi: number; iv: string; first: string; again: string }> = [];
  count = 0;

  add(records: EspRecord[], where: string): void {
    for (const r of records) {
      const k = `${r.spi.toString(16)}:${r.iv}`;
      const first = this.seen.get(k);
      this.count++;
      if (first !== undefined) this.repeats.push({ spi: r.spi, iv: r.iv, first, again: `${where} ${r.src}>${r.dst} seq ${r.seq}` });
      else this.seen.set(k, `${where} ${r.src}>${r.dst} seq ${r.seq}`);
    }
  }
}

/** tcpdump on one interface of a namespace, writing a pcap; stop() flushes and returns the file. */
export class Capture {
  private proc: ChildProcess | null = null;
  constructor(
    readonly ns: string,
    readonly ifname: string,
    readonly file: string,
    /** A pcap-filter expression; default: everything IP. */
    readonly filter = 'ip or ip6',
    /** Bytes kept per frame: 0 = whole frames (marker search); 128 covers the ESP header and IV under load. */
    readonly snaplen = 0,
  ) {}

  async start(): Promise<void> {
    const p = spawn('ip', ['netns', 'exec', this.ns, 'tcpdump', '--immediate-mode', '-i', this.ifname, '-s', String(this.snaplen), '-U', '-n', '-w', this.file, this.filter], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = p;
    // tcpdump says "listening on ..." once the socket is open: capture starts there.
    await new Promise<void>((resolve, reject) => {
      let err = '';
      const t = setTimeout(() => reject(new Error(`tcpdump on ${this.ns}/${this.ifname} did not start: ${err.trim()}`)), 10_000);
      p.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        if (/listening on/.test(err)) {
          clearTimeout(t);
          resolve();
        }
      });
      p.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`tcpdump exited (${code}): ${err.trim()}`));
      });
    });
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async stop(): Promise<string> {
    const p = this.proc;
    this.proc = null;
    // Frames of the last exchange may still be on their way through the
    // bridge and the capture socket: give them a moment before stopping.
    await new Promise((r) => setTimeout(r, 300));
    if (p && p.exitCode === null) {
      p.removeAllListeners('exit');
      await new Promise<void>((resolve) => {
        p.once('exit', () => resolve());
        p.kill('SIGINT');
        setTimeout(() => p.kill('SIGKILL'), 5000).unref();
      });
    }
    if (!fs.existsSync(this.file)) throw new Error(`no capture written to ${this.file}`);
    return this.file;
  }
}
