/**
 * `dne ctl` (also installed as `dnectl`): the operator's view of this host's
 * agent over its local endpoint. Tables for people, `--json` for scripts.
 *
 *   dne ctl status | sas | rules | stats | explain --src A --dst B --protocol P [--sport N] [--dport N] [--port NAME]
 *   options: --json, --endpoint http://127.0.0.1:9477, --socket /run/dne/agent.sock
 */
import * as http from 'node:http';
import { Command } from 'commander';
import { DEFAULT_PORTS } from '../common/contracts';
import { DneError, ErrorCodes } from '../common/errors';
import { explainQueryProblem } from './explain-query';

export interface CtlTarget {
  endpoint?: string;
  socket?: string;
}

export function ctlGet(t: CtlTarget, path: string, timeoutMs = 10000): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    let opts: http.RequestOptions;
    if (t.socket) opts = { socketPath: t.socket, path, method: 'GET', timeout: timeoutMs };
    else {
      let u: URL;
      try {
        u = new URL(t.endpoint ?? `http://127.0.0.1:${DEFAULT_PORTS.agent}`);
      } catch {
        return reject(new DneError(ErrorCodes.config, `--endpoint ${JSON.stringify(t.endpoint)} is not a URL: give http://HOST:PORT, e.g. http://127.0.0.1:${DEFAULT_PORTS.agent} (or --socket PATH)`));
      }
      if (u.protocol !== 'http:') return reject(new DneError(ErrorCodes.config, `--endpoint must be an http:// URL such as http://127.0.0.1:${DEFAULT_PORTS.agent} (the endpoint is local)`));
      opts = { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port || 80, path, method: 'GET', timeout: timeoutMs };
    }
    const req = http.request(opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
        } catch {
          resolve({ status: res.statusCode ?? 0, body: text });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => reject(new DneError(ErrorCodes.config, `cannot reach the agent at ${t.socket ? `unix:${t.socket}` : (t.endpoint ?? `http://127.0.0.1:${DEFAULT_PORTS.agent}`)}: ${e.message}`)));
    req.end();
  });
}

/** A plain text table: header, rule, rows; columns as wide as their widest cell. */
export function table(headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  const w = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd();
  return [line(headers), line(w.map((n) => '-'.repeat(n))), ...cells.map(line)].join('\n');
}

type J = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function age(s: number): string {
  const a = Math.abs(s);
  const t = a >= 86400 ? `${Math.floor(a / 86400)}d${Math.floor((a % 86400) / 3600)}h` : a >= 3600 ? `${Math.floor(a / 3600)}h${Math.floor((a % 3600) / 60)}m` : a >= 60 ? `${Math.floor(a / 60)}m${a % 60}s` : `${a}s`;
  return s < 0 ? `-${t}` : t;
}

function drops(d: Record<string, number>): string {
  const e = Object.entries(d ?? {});
  return e.length ? e.map(([k, v]) => `${k}=${v}`).join(',') : '-';
}

export function formatStatus(s: J): string {
  const yes = (b: boolean) => (b ? 'reachable' : 'UNREACHABLE');
  const lines = [
    `host          ${s.host_id}   (boot ${s.boot_id}, started ${s.started_at})`,
    `ready         ${s.ready ? 'yes' : 'no'}`,
    `config        version ${s.config.version}, revision ${s.config.revision}, applied ${s.config.applied_at ?? 'never'}, default ${s.config.default_action}`,
    `controller    ${s.controller.url}  ${yes(s.controller.reachable)}${s.controller.last_error ? `  (${s.controller.last_error})` : ''}`,
    `key managers  ${(s.key_managers.urls as string[]).join(', ') || '-'}  ${yes(s.key_managers.reachable)}${s.key_managers.last_error ? `  (${s.key_managers.last_error})` : ''}`,
    `manager       ${s.manager.url}  ${yes(s.manager.reachable)}${s.manager.last_error ? `  (${s.manager.last_error})` : ''}`,
    `filter        ${s.filter.workers} worker(s), ${s.sas} SA(s)`,
  ];
  for (const k of s.keys_expired_in_use ?? []) lines.push(`WARNING       key ${k.key_id} (${k.key_policy}, SPI ${k.spi}) expired ${k.not_after}, still in use`);
  lines.push('', table(['PORT', 'WORKLOAD', 'WORKLOAD IF', 'NETWORK IF', 'NETNS', 'MTU', 'PROTECTED MTU', 'RULES', 'ADDRESSES'], (s.ports as J[]).map((p) => [p.name, p.workload_id, p.workload_if, p.network_if, p.network_netns ?? p.workload_netns, p.mtu, p.protected_mtu, p.rules, (p.addresses as string[]).join(' ')])));
  return lines.join('\n');
}

export function formatSas(b: J): string {
  return table(
    ['SPI', 'KEY ID', 'KEY POLICY', 'MODE', 'STATE', 'AGE', 'EXPIRES', 'SENDERS', 'PKTS OUT', 'PKTS IN', 'DROPS'],
    (b.sas as J[]).map((s) => [s.spi_hex, s.key_id, s.key_policy, s.mode, s.state, age(s.age_seconds), s.expired ? `EXPIRED ${age(-s.expires_in_seconds)} ago` : `in ${age(s.expires_in_seconds)}`, (s.sender_ids as number[]).join(','), s.packets_out, s.packets_in, drops(s.drops)]),
  );
}

export function formatRules(b: J): string {
  return `config version ${b.config_version}\n` + table(
    ['RULE', 'NAME', 'SECTION', 'ACTION', 'KEY POLICY', 'TX SPI', 'PORTS', 'PKTS OUT', 'PKTS IN', 'BYTES OUT', 'BYTES IN'],
    (b.rules as J[]).map((r) => [r.rule_id, r.display_name, r.section_id, r.action, r.key_policy, r.tx_spi ? `0x${(r.tx_spi as number).toString(16)}` : '-', (r.ports as string[]).join(','), r.packets_out, r.packets_in, r.bytes_out, r.bytes_in]),
  );
}

export function formatStats(b: J): string {
  const ports = Object.entries(b.ports as Record<string, J>).map(([name, p]) => [
    name,
    p.counters.from_workload_packets,
    p.counters.to_network_packets,
    p.counters.from_network_packets,
    p.counters.to_workload_packets,
    p.counters.sealed_packets,
    p.counters.opened_packets,
    p.counters.clear_packets,
    drops(p.drops),
  ]);
  return [
    `config version ${b.config_version}, boot ${b.boot_id}, at ${b.at}`,
    '',
    table(['PORT', 'FROM WL', 'TO NET', 'FROM NET', 'TO WL', 'SEALED', 'OPENED', 'CLEAR', 'DROPS'], ports),
    '',
    table(['KEY POLICY', 'ENCRYPTED', 'DECRYPTED', 'DROPPED', 'BY REASON'], (b.key_policies as J[]).map((k) => [k.key_policy_id, k.packets_encrypted, k.packets_decrypted, k.packets_dropped, drops(k.dropped_by_reason)])),
    '',
    `host drops: ${drops(b.drops)}`,
  ].join('\n');
}

export function formatExplain(b: J): string {
  if (!b.matched) return `no match: ${b.reason}`;
  const f = b.flow;
  return (
    `flow ${f.src}${f.sport !== null ? `:${f.sport}` : ''} -> ${f.dst}${f.dport !== null ? `:${f.dport}` : ''} protocol ${f.protocol} (config version ${b.config_version})\n` +
    table(
      ['PORT', 'WORKLOAD', 'DIR', 'ACTION', 'RULE', 'NAME', 'KEY POLICY', 'TX SPI', 'KEY ID', 'KEY STATE'],
      (b.results as J[]).map((r) => [r.port, r.workload_id, r.direction, r.action, r.default_action ? '(default)' : r.rule_id, r.rule_display_name, r.key_policy, r.tx_spi ? `0x${(r.tx_spi as number).toString(16)}` : '-', r.key_id, r.key_state]),
    )
  );
}

interface CtlOptions {
  json?: boolean;
  endpoint?: string;
  socket?: string;
}

/** The options every level of `ctl` takes: before the command (`ctl --json status`) or after it (`ctl status --json`). */
function targetOptions(c: Command): Command {
  return c
    .option('--json', 'print the endpoint answer as JSON')
    .option('--endpoint <url>', `agent endpoint URL, http://HOST:PORT (default http://127.0.0.1:${DEFAULT_PORTS.agent})`)
    .option('--socket <path>', 'agent endpoint unix socket (instead of --endpoint)');
}

/**
 * Puts the ctl commands on `ctl`: the `ctl` subcommand of `dne`, or the
 * `dnectl` program itself (so its help reads `dnectl [options] [command]`).
 */
export function configureCtl(ctl: Command, out: (s: string) => void = (s) => process.stdout.write(s + '\n')): Command {
  targetOptions(ctl);
  const run = async (sub: Command, path: string, fmt: (b: J) => string) => {
    const top = ctl.opts<CtlOptions>();
    const own = sub.opts<CtlOptions>();
    const o: CtlOptions = { json: own.json ?? top.json, endpoint: own.endpoint ?? top.endpoint, socket: own.socket ?? top.socket };
    const r = await ctlGet({ endpoint: o.endpoint, socket: o.socket }, path);
    if (r.status >= 400) {
      const msg = typeof r.body === 'object' && r.body && 'message' in r.body ? String((r.body as J).message) : `status ${r.status}`;
      throw new DneError(ErrorCodes.badRequest, `agent: ${msg}`);
    }
    out(o.json ? JSON.stringify(r.body, null, 2) : fmt(r.body as J));
  };
  const simple = (name: string, description: string, path: string, fmt: (b: J) => string) => {
    const sub = targetOptions(ctl.command(name).description(description));
    sub.action(() => run(sub, path, fmt));
  };
  simple('status', 'config version, reachability of controller / key managers / manager, ports with MTU', '/status', formatStatus);
  simple('sas', 'installed SAs: SPI, KeyID, state, ages, sender IDs, counters (never key bytes)', '/sas', formatSas);
  simple('rules', "the rules in this host's tables, with counters", '/rules', formatRules);
  simple('stats', 'port, key policy and drop counters', '/stats', formatStats);
  const explain = targetOptions(
    ctl
      .command('explain')
      .description('which rule, key policy, SA and action apply to a flow at this host')
      .requiredOption('--src <ip>', 'source address')
      .requiredOption('--dst <ip>', 'destination address')
      .option('--protocol <p>', 'tcp, udp, icmp, icmpv6, sctp or a number', 'tcp')
      .option('--sport <n>', 'source port (tcp, udp, sctp)')
      .option('--dport <n>', 'destination port (tcp, udp, sctp)')
      .option('--port <name>', 'only this protected port'),
  );
  explain.action((o: { src: string; dst: string; protocol: string; sport?: string; dport?: string; port?: string }) => {
    // Refused here with the flag's name, before anything is sent (the endpoint refuses the same input).
    const problem = explainQueryProblem(o);
    if (problem) throw new DneError(ErrorCodes.badRequest, `--${problem.field} ${problem.message}`);
    const q = new URLSearchParams({ src: o.src, dst: o.dst, protocol: o.protocol });
    if (o.sport !== undefined) q.set('sport', o.sport);
    if (o.dport !== undefined) q.set('dport', o.dport);
    if (o.port) q.set('port', o.port);
    return run(explain, `/explain?${q.toString()}`, formatExplain);
  });
  return ctl;
}

export function registerCtlCommand(program: Command, out?: (s: string) => void): void {
  configureCtl(program.command('ctl').description("query this host's agent over its local endpoint (also: dnectl)"), out);
}
