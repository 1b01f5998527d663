/**
 * The explain query's protocol and ports, checked the same way by the local
 * endpoint (GET /explain) and by `dne ctl explain` before it sends anything.
 * Kept apart from agent.ts so `dnectl` does not load the agent (or the
 * native filter) to check its flags.
 */

/** Protocol names explain accepts, with their IANA numbers. */
export const PROTOCOLS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, ipv6_icmp: 58, icmpv6: 58, sctp: 132 };

/** Protocols whose packets carry ports (the filter matches sport/dport only for these). */
const PORT_PROTOCOLS = new Set([6, 17, 132]);

/**
 * What is wrong with an explain query's protocol and ports, naming the
 * field (`dport must be ...`); null when nothing is. Shared by the local
 * endpoint (which prefixes `querystring/`) and `dne ctl explain` (`--`), so
 * both refuse the same input with the same words.
 */
export function explainQueryProblem(q: { protocol: string; sport?: string | number; dport?: string | number }): { field: 'protocol' | 'sport' | 'dport'; message: string } | null {
  const proto = /^[0-9]{1,3}$/.test(q.protocol) ? Number(q.protocol) : PROTOCOLS[q.protocol.toLowerCase()];
  if (proto === undefined || proto > 255) return { field: 'protocol', message: `must be a number 0-255 or one of ${Object.keys(PROTOCOLS).join(', ')}` };
  for (const field of ['sport', 'dport'] as const) {
    const v = q[field];
    if (v === undefined) continue;
    if (!/^[0-9]{1,5}$/.test(String(v)) || Number(v) > 65535) return { field, message: 'must be a port number (0-65535)' };
    if (!PORT_PROTOCOLS.has(proto)) return { field, message: `applies only to protocols tcp, udp and sctp, not ${q.protocol}` };
  }
  return null;
}
