/**
 * Security events to the system log (DESIGN §5 "a message goes to the
 * system log", §7), RFC 5424 formatted, rate-limited per event kind.
 *
 * Transports:
 *  - `unix:PATH` (default `unix:/dev/log`): a unix *datagram* socket, which
 *    Node's `dgram` cannot open. Each message is handed to util-linux
 *    `logger --rfc5424 -u PATH -d --socket-errors=on` (present on every
 *    Debian/Ubuntu/RHEL host), which writes the RFC 5424 message with our
 *    PRI, APP-NAME, PROCID (the agent's pid), MSGID and structured data.
 *    Messages are rate-limited, so a process per message is cheap; at most
 *    one `logger` runs at a time and at most 64 wait (beyond: dropped and
 *    counted).
 *  - `udp://HOST:PORT`: RFC 5426 syslog over UDP, one RFC 5424 message per
 *    datagram, formatted here.
 *  - `off`.
 *
 * Rate limit: per event kind, at most `perMinute` messages in any minute
 * (token bucket); suppressed ones are counted and the next message of that
 * kind says how many were suppressed.
 */
import { spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as os from 'node:os';
import type { SyslogConfig } from './config';
import { SYSLOG_FACILITIES } from './config';

export type Severity = 'emerg' | 'alert' | 'crit' | 'err' | 'warning' | 'notice' | 'info' | 'debug';
const SEVERITIES: Severity[] = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'];

/** The event kinds the agent logs (docs/agent.md "Syslog events"). */
export type SecurityEventKind = 'key-expired-in-use' | 'key-revoked' | 'icv-failure-burst' | 'replay-burst' | 'sender-ids-renewed' | 'key-fetch-refused';

export interface SecurityEvent {
  kind: SecurityEventKind;
  severity: Severity;
  message: string;
  /** Structured data (RFC 5424 §6.3) under SD-ID dne@32473 (RFC 5612 documentation enterprise number). */
  data?: Record<string, string | number>;
}

const SD_ID = 'dne@32473';

/** RFC 5424 §6.3.3: `"`, `\` and `]` are escaped in PARAM-VALUE. */
function sdEscape(v: string): string {
  return v.replace(/[\\"\]]/g, (c) => `\\${c}`);
}

/** PRINTUSASCII, no spaces: RFC 5424 §6 header fields. */
function headerField(v: string, max: number): string {
  const s = v.replace(/[^!-~]/g, '_').slice(0, max);
  return s === '' ? '-' : s;
}

export function formatRfc5424(
  e: SecurityEvent,
  o: { facility: (typeof SYSLOG_FACILITIES)[number]; appName: string; hostname?: string; procId?: number; now?: Date },
): string {
  const fac = SYSLOG_FACILITIES.indexOf(o.facility);
  const pri = (fac < 12 ? fac : fac + 4) * 8 + SEVERITIES.indexOf(e.severity);
  const ts = (o.now ?? new Date()).toISOString();
  const sd = e.data && Object.keys(e.data).length
    ? `[${SD_ID}${Object.entries(e.data)
        .map(([k, v]) => ` ${headerField(k, 32).replace(/[=\]"]/g, '_')}="${sdEscape(String(v))}"`)
        .join('')}]`
    : '-';
  return `<${pri}>1 ${ts} ${headerField(o.hostname ?? os.hostname(), 255)} ${headerField(o.appName, 48)} ${o.procId ?? process.pid} ${headerField(e.kind, 32)} ${sd} ${e.message}`;
}

export interface SyslogStats {
  sent: Record<string, number>;
  suppressed: Record<string, number>;
  errors: number;
}

export class SecurityLog {
  private readonly buckets = new Map<string, { tokens: number; at: number; suppressed: number }>();
  private readonly queue: SecurityEvent[] = [];
  private running = false;
  private udp: dgram.Socket | null = null;
  private idle: Array<() => void> = [];
  readonly stats: SyslogStats = { sent: {}, suppressed: {}, errors: 0 };

  constructor(
    private readonly cfg: SyslogConfig,
    private readonly onError: (msg: string) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  /** Rate-limited: returns false when the event was suppressed. */
  emit(e: SecurityEvent): boolean {
    const t = this.now();
    const b = this.buckets.get(e.kind) ?? { tokens: this.cfg.perMinute, at: t, suppressed: 0 };
    b.tokens = Math.min(this.cfg.perMinute, b.tokens + ((t - b.at) / 60000) * this.cfg.perMinute);
    b.at = t;
    this.buckets.set(e.kind, b);
    if (b.tokens < 1) {
      b.suppressed++;
      this.stats.suppressed[e.kind] = (this.stats.suppressed[e.kind] ?? 0) + 1;
      return false;
    }
    b.tokens -= 1;
    let ev = e;
    if (b.suppressed > 0) {
      ev = { ...e, message: `${e.message} (${b.suppressed} similar message(s) suppressed)`, data: { ...e.data, suppressed: b.suppressed } };
      b.suppressed = 0;
    }
    this.stats.sent[e.kind] = (this.stats.sent[e.kind] ?? 0) + 1;
    this.send(ev);
    return true;
  }

  private send(e: SecurityEvent): void {
    const target = this.cfg.target;
    if (target === 'off') return;
    if (target.startsWith('udp://')) {
      const u = new URL(target);
      const host = u.hostname.replace(/^\[|\]$/g, '');
      const msg = Buffer.from(formatRfc5424(e, { facility: this.cfg.facility, appName: this.cfg.appName }), 'utf8');
      this.udp ??= dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
      this.udp.unref();
      this.udp.send(msg, Number(u.port), host, (err) => {
        if (err) this.failed(`syslog ${target}: ${err.message}`);
      });
      return;
    }
    if (this.queue.length >= 64) {
      this.failed('syslog queue full: message dropped');
      return;
    }
    this.queue.push(e);
    this.pump();
  }

  private failed(msg: string): void {
    this.stats.errors++;
    this.onError(msg);
  }

  private pump(): void {
    if (this.running) return;
    const e = this.queue.shift();
    if (!e) {
      for (const f of this.idle.splice(0)) f();
      return;
    }
    this.running = true;
    const path = this.cfg.target.slice('unix:'.length);
    const args = ['--rfc5424=notq', '-u', path, '-d', '--socket-errors=on', '-p', `${this.cfg.facility}.${e.severity}`, '-t', this.cfg.appName, `--id=${process.pid}`, '--msgid', e.kind];
    if (e.data && Object.keys(e.data).length) {
      args.push('--sd-id', SD_ID);
      for (const [k, v] of Object.entries(e.data)) args.push('--sd-param', `${k.replace(/[^A-Za-z0-9_.-]/g, '_')}="${sdEscape(String(v))}"`);
    }
    args.push('--', e.message);
    let err = '';
    const child = spawn('logger', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    let finished = false;
    const done = (ok: boolean, why?: string) => {
      if (finished) return;
      finished = true;
      if (!ok) this.failed(`syslog ${this.cfg.target}: ${why ?? err.trim()}`);
      this.running = false;
      this.pump();
    };
    child.on('error', (x) => done(false, `cannot run logger: ${x.message}`));
    child.on('exit', (code) => done(code === 0));
  }

  /** Resolves when every queued message has been handed over. */
  flush(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  close(): void {
    this.udp?.close();
    this.udp = null;
  }
}
