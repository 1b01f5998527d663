/**
 * Agent configuration (issue #7): one YAML (or JSON) file describing this
 * host — its identity certificate, where the controller, manager and key
 * managers are, the protected ports it owns — plus how the agent exposes
 * itself (local endpoint, syslog). Unknown settings are errors, and every
 * message names the setting and what it must be (never a value: a key or
 * grant pasted into the wrong field must not end up in a log).
 *
 * Relative paths in a file are relative to the file.
 */
import * as path from 'node:path';
import { FormatRegistry, Static, TSchema, Type } from '@sinclair/typebox';
import { isIPv4, isIPv6 } from 'node:net';
import { Value } from '@sinclair/typebox/value';
import { configError, Json, obj, readConfigFile, resolveIn, schemaProblem } from '../common/config-file';
import { NAME_PATTERN } from '../common/identity';
import { LOG_LEVELS } from '../common/logging';
import { DEFAULT_PORTS } from '../common/contracts';

/** RFC 5424 §6.2.1 facility names in code order (12-15 have no name util-linux logger accepts). */
export const SYSLOG_FACILITIES = ['kern', 'user', 'mail', 'daemon', 'auth', 'syslog', 'lpr', 'news', 'uucp', 'cron', 'authpriv', 'ftp', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7'] as const;

const Str = Type.String({ minLength: 1 });
const HttpsUrl = Type.String({ pattern: '^https://[^\\s/]+(/.*)?$' });
const IfName = Type.String({ pattern: '^[^\\s/]{1,15}$' });

const VnicSchema = Type.Object(
  {
    id: Str,
    mac: Type.String({ pattern: '^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$' }),
    ipv4: Type.Array(Type.String({ format: 'ipv4' }), { default: [] }),
    ipv6: Type.Array(Type.String({ format: 'ipv6' }), { default: [] }),
    /** Host interface on the workload side (the VM's tap, the container's veth end). */
    workload_if: IfName,
    /** Host interface on the network side (towards the bridge / overlay). */
    network_if: IfName,
    /** Namespace of both interfaces (name under /run/netns, or a path); per interface below wins. */
    netns: Type.Optional(Str),
    workload_netns: Type.Optional(Str),
    network_netns: Type.Optional(Str),
  },
  { additionalProperties: false },
);

const WorkloadSchema = Type.Object(
  {
    id: Str,
    display_name: Type.Optional(Str),
    tags: Type.Array(Type.Object({ scope: Type.String(), tag: Type.String() }, { additionalProperties: false }), { default: [] }),
    vnics: Type.Array(VnicSchema, { minItems: 1 }),
  },
  { additionalProperties: false },
);

const SyslogSchema = Type.Object(
  {
    /**
     * `unix:/dev/log` (default; any unix datagram socket path), `udp://HOST:PORT`,
     * or `off`.
     */
    target: Type.String({ pattern: '^(off|unix:/.+|udp://[^\\s]+:[0-9]{1,5})$' }),
    appName: Type.String({ pattern: '^[!-~]{1,48}$' }),
    /** RFC 5424 §6.2.1 facility (default authpriv: these are security events). */
    facility: Type.Union(SYSLOG_FACILITIES.map((f) => Type.Literal(f))),
    /** Per event kind: at most this many messages per minute; the rest are counted and summarised. */
    perMinute: Type.Integer({ minimum: 1, maximum: 6000 }),
  },
  { additionalProperties: false },
);

export const AgentConfigSchema = Type.Object(
  {
    /** This host's name: the name in its host certificate (dne://host/NAME). */
    hostId: Type.String({ pattern: NAME_PATTERN }),
    displayName: Str,
    controller: HttpsUrl,
    manager: HttpsUrl,
    /** Key manager base URLs; empty: the ones the controller names. */
    keyManagers: Type.Array(HttpsUrl),
    tls: Type.Object({ cert: Str, key: Str, ca: Str }, { additionalProperties: false }),
    filter: Type.Object(
      {
        workers: Type.Integer({ minimum: 1, maximum: 64 }),
        /** What a port without a table (before the first config) does with IP traffic. */
        defaultAction: Type.Union([Type.Literal('allow'), Type.Literal('drop')]),
        /** Sender low-water mark (remaining counters); 0: the filter's default, 1/16 of the space. */
        senderLowWater: Type.Integer({ minimum: 0 }),
      },
      { additionalProperties: false },
    ),
    workloads: Type.Array(WorkloadSchema),
    endpoint: Type.Object(
      {
        host: Type.String({ pattern: '^(127\\.[0-9.]+|::1|localhost)$' }),
        port: Type.Integer({ minimum: 0, maximum: 65535 }),
        /** A unix socket path instead of host:port (mode 0660). */
        socket: Type.Optional(Str),
      },
      { additionalProperties: false },
    ),
    syslog: SyslogSchema,
    controllerPoll: Type.Object(
      {
        waitSeconds: Type.Integer({ minimum: 0, maximum: 60 }),
        backoffMinMs: Type.Integer({ minimum: 10, maximum: 60000 }),
        backoffMaxMs: Type.Integer({ minimum: 100, maximum: 600000 }),
      },
      { additionalProperties: false },
    ),
    statsIntervalSeconds: Type.Integer({ minimum: 1, maximum: 86400 }),
    /** How often installed keys are checked for expiry and sender counters for low water. */
    keyCheckSeconds: Type.Integer({ minimum: 1, maximum: 3600 }),
    /** ICV failures (or replays) host-wide within one key check that make a security event. */
    burstThreshold: Type.Integer({ minimum: 1 }),
    logLevel: Type.Union(LOG_LEVELS.map((l) => Type.Literal(l))),
  },
  { additionalProperties: false },
);
export type AgentConfig = Static<typeof AgentConfigSchema>;
export type AgentVnic = Static<typeof VnicSchema>;
export type AgentWorkload = Static<typeof WorkloadSchema>;
export type SyslogConfig = Static<typeof SyslogSchema>;

export interface AgentFlags {
  config?: string;
  endpoint?: string;
  socket?: string;
  logLevel?: string;
}

/** The first schema error as a sentence naming the setting. */
function describe(schema: TSchema, v: unknown): string | null {
  return schemaProblem(schema, v, {
    special: (where, first) => {
      const s = first.schema as { pattern?: string; format?: string };
      if (s.format === 'ipv4') return `${where} must be an IPv4 address`;
      if (s.format === 'ipv6') return `${where} must be an IPv6 address`;
      if (s.pattern !== undefined) return `${where} has the wrong form (${PATTERN_TEXT[s.pattern] ?? `must match ${s.pattern}`})`;
      return undefined;
    },
  });
}

const PATTERN_TEXT: Record<string, string> = {
  [HttpsUrl.pattern!]: 'an https:// URL',
  [IfName.pattern!]: 'an interface name of 1-15 characters',
  [SyslogSchema.properties.target.pattern!]: 'off, unix:/PATH or udp://HOST:PORT',
  [NAME_PATTERN]: 'a dne name',
  '^(127\\.[0-9.]+|::1|localhost)$': 'a loopback address: the endpoint is local only',
  '^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$': 'a MAC address like 02:00:00:00:00:01',
};

// TypeBox's Value.Check needs the formats registered.
if (!FormatRegistry.Has('ipv4')) FormatRegistry.Set('ipv4', (v) => isIPv4(v));
if (!FormatRegistry.Has('ipv6')) FormatRegistry.Set('ipv6', (v) => isIPv6(v));

/** Parses a YAML/JSON config text (a file's content) into a validated config. */
export function parseAgentConfig(file: Json, base: string, flags: AgentFlags = {}): AgentConfig {
  const fTls = obj(file.tls);
  const cfg: Json = {
    displayName: file.hostId,
    keyManagers: [],
    workloads: [],
    statsIntervalSeconds: 60,
    keyCheckSeconds: 10,
    burstThreshold: 100,
    logLevel: 'info',
    ...file,
    tls: { ...fTls, cert: resolveIn(base, fTls.cert), key: resolveIn(base, fTls.key), ca: resolveIn(base, fTls.ca) },
    filter: { workers: 1, defaultAction: 'allow', senderLowWater: 0, ...obj(file.filter) },
    endpoint: { host: '127.0.0.1', port: DEFAULT_PORTS.agent, ...obj(file.endpoint) },
    syslog: { target: 'unix:/dev/log', appName: 'dne-agent', facility: 'authpriv', perMinute: 10, ...obj(file.syslog) },
    controllerPoll: { waitSeconds: 25, backoffMinMs: 500, backoffMaxMs: 30000, ...obj(file.controllerPoll) },
  };
  if (file.tls === undefined) delete cfg.tls;
  if (flags.endpoint) {
    const m = /^(127\.[0-9.]+|localhost|\[::1\]):([0-9]{1,5})$/.exec(flags.endpoint);
    if (!m) throw configError('--endpoint must be 127.0.0.1:PORT (the endpoint is local only)');
    // The flag, not config/endpoint/port, is what the operator has to fix.
    if (Number(m[2]) > 65535) throw configError(`--endpoint port must be 0-65535 (got ${m[2]}); give 127.0.0.1:PORT`);
    cfg.endpoint = { host: m[1] === '[::1]' ? '::1' : m[1], port: Number(m[2]) };
  }
  if (flags.socket) cfg.endpoint = { ...(cfg.endpoint as Json), socket: path.resolve(flags.socket) };
  if (flags.logLevel) cfg.logLevel = flags.logLevel;
  const ep = cfg.endpoint as Json;
  if (typeof ep.socket === 'string') ep.socket = resolveIn(base, ep.socket);
  Value.Default(AgentConfigSchema, cfg);
  const problem = describe(AgentConfigSchema, cfg);
  if (problem) throw configError(problem);
  const c = cfg as AgentConfig;
  if (c.controllerPoll.backoffMinMs > c.controllerPoll.backoffMaxMs) {
    throw configError('config/controllerPoll: backoffMinMs must not exceed backoffMaxMs');
  }
  const wl = new Set<string>();
  const vn = new Set<string>();
  const ifs = new Set<string>();
  c.workloads.forEach((w, i) => {
    if (wl.has(w.id)) throw configError(`config/workloads/${i}/id: workload "${w.id}" is listed twice`);
    wl.add(w.id);
    w.vnics.forEach((v, j) => {
      const where = `config/workloads/${i}/vnics/${j}`;
      if (vn.has(v.id)) throw configError(`${where}/id: vNIC "${v.id}" is listed twice`);
      vn.add(v.id);
      if (v.ipv4.length + v.ipv6.length === 0) throw configError(`${where}: a protected vNIC needs at least one address (ipv4 or ipv6)`);
      if (v.workload_if === v.network_if && (v.workload_netns ?? v.netns) === (v.network_netns ?? v.netns)) {
        throw configError(`${where}: workload_if and network_if are the same interface`);
      }
      for (const [ifn, ns] of [
        [v.workload_if, v.workload_netns ?? v.netns ?? ''],
        [v.network_if, v.network_netns ?? v.netns ?? ''],
      ]) {
        const k = `${ns}\0${ifn}`;
        if (ifs.has(k)) throw configError(`${where}: interface ${ifn} already belongs to another protected port`);
        ifs.add(k);
      }
    });
  });
  return c;
}

export function loadAgentConfig(flags: AgentFlags, cwd = process.cwd()): AgentConfig {
  if (!flags.config) throw configError('--config is required (the agent YAML file; see docs/agent.md)');
  const file = path.resolve(cwd, flags.config);
  const v = readConfigFile(file, { syntax: 'yaml-unless-json', topLevel: 'a mapping' });
  return parseAgentConfig(v, path.dirname(file), flags);
}
