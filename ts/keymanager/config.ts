/**
 * Key manager configuration: a JSON or YAML file, overridden by flags, then
 * validated as a whole (unknown fields are errors). Relative paths in a file
 * are relative to the file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { DneError, ErrorCodes } from '../common/errors';
import { DEFAULT_GRANT_CLOCK_SKEW_S, DEFAULT_GRANT_MAX_LIFETIME_S } from '../common/grant';
import { NAME_PATTERN } from '../common/identity';
import { LOG_LEVELS } from '../common/logging';
import { DEFAULT_BODY_LIMIT } from './app';

export const DEFAULT_PORT = 8443;
export const DEFAULT_SENDER_ID_BITS = 24;

const LogLevelSchema = Type.Union(LOG_LEVELS.map((l) => Type.Literal(l)));

export const KeyManagerConfigSchema = Type.Object(
  {
    instanceId: Type.String({ pattern: NAME_PATTERN }),
    listen: Type.Object({ host: Type.String({ minLength: 1 }), port: Type.Integer({ minimum: 0, maximum: 65535 }) }, { additionalProperties: false }),
    tls: Type.Object({ cert: Type.String({ minLength: 1 }), key: Type.String({ minLength: 1 }), ca: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    store: Type.Object({ driver: Type.Literal('sqlite'), path: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    masterKeyFile: Type.Optional(Type.String({ minLength: 1 })),
    senderIds: Type.Object(
      {
        bits: Type.Union([Type.Literal(8), Type.Literal(16), Type.Literal(24), Type.Literal(32)]),
        start: Type.Integer({ minimum: 0 }),
        end: Type.Integer({ minimum: 1 }),
      },
      { additionalProperties: false },
    ),
    grants: Type.Object(
      {
        trustedKeys: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
        maxLifetimeSeconds: Type.Integer({ minimum: 1, maximum: 86400 }),
        clockSkewSeconds: Type.Integer({ minimum: 0, maximum: 3600 }),
      },
      { additionalProperties: false },
    ),
    bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 16 * 1024 * 1024 }),
    logLevel: LogLevelSchema,
    expirySweepSeconds: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);
export type KeyManagerConfig = Static<typeof KeyManagerConfigSchema>;

/** Command-line overrides (all optional). */
export interface KeyManagerFlags {
  config?: string;
  pkiDir?: string;
  name?: string;
  host?: string;
  port?: number;
  db?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  masterKeyFile?: string;
  senderIdBits?: number;
  senderIdRange?: string;
  grantKey?: string[];
  logLevel?: string;
}

function configError(message: string): DneError {
  return new DneError(ErrorCodes.config, message);
}

type Json = Record<string, unknown>;

function readConfigFile(file: string): Json {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw configError(`cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let v: unknown;
  try {
    v = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw configError(`config ${file} is not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw configError(`config ${file} must be an object`);
  return v as Json;
}

function resolveIn(base: string, p: unknown): unknown {
  return typeof p === 'string' && !path.isAbsolute(p) ? path.resolve(base, p) : p;
}

function obj(v: unknown): Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};
}

/** Builds the effective configuration: defaults < file < --pki-dir conveniences < flags. */
export function loadKeyManagerConfig(flags: KeyManagerFlags, cwd = process.cwd()): KeyManagerConfig {
  const file = flags.config ? readConfigFile(path.resolve(cwd, flags.config)) : {};
  const base = flags.config ? path.dirname(path.resolve(cwd, flags.config)) : cwd;

  const fTls = obj(file.tls);
  const fStore = obj(file.store);
  const fGrants = obj(file.grants);
  const fSender = obj(file.senderIds);
  const fListen = obj(file.listen);

  const cfg: Json = {
    instanceId: file.instanceId ?? flags.name ?? 'km1',
    listen: { host: '127.0.0.1', port: DEFAULT_PORT, ...fListen },
    tls: { ...fTls, cert: resolveIn(base, fTls.cert), key: resolveIn(base, fTls.key), ca: resolveIn(base, fTls.ca) },
    store: { driver: 'sqlite', ...fStore, path: resolveIn(base, fStore.path ?? 'keymanager.db') },
    masterKeyFile: resolveIn(base, file.masterKeyFile),
    senderIds: { bits: DEFAULT_SENDER_ID_BITS, start: 1, ...fSender },
    grants: {
      maxLifetimeSeconds: DEFAULT_GRANT_MAX_LIFETIME_S,
      clockSkewSeconds: DEFAULT_GRANT_CLOCK_SKEW_S,
      ...fGrants,
      trustedKeys: Array.isArray(fGrants.trustedKeys) ? fGrants.trustedKeys.map((k) => resolveIn(base, k)) : fGrants.trustedKeys,
    },
    bodyLimitBytes: file.bodyLimitBytes ?? DEFAULT_BODY_LIMIT,
    logLevel: file.logLevel ?? 'info',
    expirySweepSeconds: file.expirySweepSeconds ?? 60,
  };
  for (const k of Object.keys(file)) if (!(k in cfg)) cfg[k] = file[k]; // unknown fields reach validation and are refused
  if (cfg.masterKeyFile === undefined) delete cfg.masterKeyFile;

  const tls = cfg.tls as Json;
  const grants = cfg.grants as Json;
  const sender = cfg.senderIds as Json;
  const listen = cfg.listen as Json;
  if (flags.name) cfg.instanceId = flags.name;
  if (flags.pkiDir) {
    const dir = path.resolve(cwd, flags.pkiDir);
    const name = cfg.instanceId as string;
    tls.cert = path.join(dir, `keymanager-${name}.crt`);
    tls.key = path.join(dir, `keymanager-${name}.key`);
    tls.ca = path.join(dir, 'ca.crt');
    if (!fGrants.trustedKeys && !flags.grantKey) {
      const pubs = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^controller-.+\.grant\.pub$/.test(f)) : [];
      grants.trustedKeys = pubs.sort().map((f) => path.join(dir, f));
    }
  }
  if (flags.host) listen.host = flags.host;
  if (flags.port !== undefined) listen.port = flags.port;
  if (flags.db) (cfg.store as Json).path = path.resolve(cwd, flags.db);
  if (flags.tlsCert) tls.cert = path.resolve(cwd, flags.tlsCert);
  if (flags.tlsKey) tls.key = path.resolve(cwd, flags.tlsKey);
  if (flags.tlsCa) tls.ca = path.resolve(cwd, flags.tlsCa);
  if (flags.masterKeyFile) cfg.masterKeyFile = path.resolve(cwd, flags.masterKeyFile);
  if (flags.senderIdBits !== undefined) sender.bits = flags.senderIdBits;
  if (flags.senderIdRange) {
    const m = /^([0-9]+)-([0-9]+)$/.exec(flags.senderIdRange);
    if (!m) throw configError('--sender-id-range must be START-END (END exclusive), e.g. 1-8388608');
    sender.start = Number(m[1]);
    sender.end = Number(m[2]);
  }
  if (sender.end === undefined && typeof sender.bits === 'number') sender.end = 2 ** sender.bits;
  if (flags.grantKey?.length) grants.trustedKeys = flags.grantKey.map((k) => path.resolve(cwd, k));
  if (flags.logLevel) cfg.logLevel = flags.logLevel;

  if (Array.isArray(grants.trustedKeys) && grants.trustedKeys.length === 0) {
    throw configError('config/grants/trustedKeys must name at least one controller grant public key (PEM file)');
  }
  const first = Value.Errors(KeyManagerConfigSchema, cfg).First();
  if (first) {
    const where = `config${first.path}`;
    const schema = first.schema as { anyOf?: { const?: unknown }[] };
    if (first.value === undefined) throw configError(`${where} is required`);
    if (first.message === 'Unexpected property') throw configError(`${where} is not a known setting`);
    if (schema.anyOf?.every((s) => 'const' in s)) throw configError(`${where} must be one of ${schema.anyOf.map((s) => String(s.const)).join(', ')}`);
    throw configError(`${where} ${first.message.replace(/^Expected /, 'must be ')}`);
  }
  const c = cfg as KeyManagerConfig;
  if (c.senderIds.end > 2 ** c.senderIds.bits || c.senderIds.start >= c.senderIds.end) {
    throw configError(`config/senderIds: the range [${c.senderIds.start}, ${c.senderIds.end}) must be non-empty and within 2^${c.senderIds.bits}`);
  }
  return c;
}
