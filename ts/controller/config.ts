/**
 * Controller configuration: a JSON or YAML file, overridden by flags, then
 * validated as a whole (unknown fields are errors). Relative paths in a file
 * are relative to the file. Flags alone are enough (`dne server` starts the
 * controller as a child process with flags only).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_PORTS } from '../common/contracts';
import { DneError, ErrorCodes } from '../common/errors';
import { DEFAULT_GRANT_MAX_LIFETIME_S } from '../common/grant';
import { NAME_PATTERN } from '../common/identity';
import { LOG_LEVELS } from '../common/logging';
import { DEFAULT_BODY_LIMIT } from './app';
import { DEFAULT_SETTINGS } from './service';

const LogLevelSchema = Type.Union(LOG_LEVELS.map((l) => Type.Literal(l)));
const HttpsUrl = Type.String({ pattern: '^https://[^\\s/]+(/.*)?$' });

export const ControllerConfigSchema = Type.Object(
  {
    instanceId: Type.String({ pattern: NAME_PATTERN }),
    listen: Type.Object({ host: Type.String({ minLength: 1 }), port: Type.Integer({ minimum: 0, maximum: 65535 }) }, { additionalProperties: false }),
    tls: Type.Object({ cert: Type.String({ minLength: 1 }), key: Type.String({ minLength: 1 }), ca: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    /** controller-NAME.grant.key (Ed25519, from `dne pki issue --role controller`). */
    grantKey: Type.String({ minLength: 1 }),
    store: Type.Object({ driver: Type.Literal('sqlite'), path: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    managerUrl: HttpsUrl,
    keyManagerUrls: Type.Array(HttpsUrl, { minItems: 1 }),
    ackTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 86400 }),
    livenessSeconds: Type.Integer({ minimum: 1, maximum: 86400 }),
    grantTtlSeconds: Type.Integer({ minimum: 10, maximum: 86400 }),
    bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 16 * 1024 * 1024 }),
    logLevel: LogLevelSchema,
  },
  { additionalProperties: false },
);
export type ControllerConfig = Static<typeof ControllerConfigSchema>;

export interface ControllerFlags {
  config?: string;
  pkiDir?: string;
  name?: string;
  host?: string;
  port?: number;
  db?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  grantKey?: string;
  managerUrl?: string;
  keymanagerUrl?: string[];
  ackTimeout?: number;
  logLevel?: string;
}

type Json = Record<string, unknown>;

function configError(message: string): DneError {
  return new DneError(ErrorCodes.config, message);
}

function readConfigFile(file: string): Json {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw configError(`cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const yaml = /\.ya?ml$/i.test(file);
  let v: unknown;
  try {
    v = yaml ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw configError(`config ${file} is not valid ${yaml ? 'YAML' : 'JSON'}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw configError(`config ${file} must be an object`);
  return v as Json;
}

const resolveIn = (base: string, p: unknown): unknown => (typeof p === 'string' && !path.isAbsolute(p) ? path.resolve(base, p) : p);
const obj = (v: unknown): Json => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {});

/** defaults < file < --pki-dir conveniences < flags. */
export function loadControllerConfig(flags: ControllerFlags, cwd = process.cwd()): ControllerConfig {
  const file = flags.config ? readConfigFile(path.resolve(cwd, flags.config)) : {};
  const base = flags.config ? path.dirname(path.resolve(cwd, flags.config)) : cwd;
  const fTls = obj(file.tls);
  const fStore = obj(file.store);
  const cfg: Json = {
    instanceId: file.instanceId ?? 'c1',
    listen: { host: '127.0.0.1', port: DEFAULT_PORTS.controller, ...obj(file.listen) },
    tls: { ...fTls, cert: resolveIn(base, fTls.cert), key: resolveIn(base, fTls.key), ca: resolveIn(base, fTls.ca) },
    grantKey: resolveIn(base, file.grantKey),
    store: { driver: 'sqlite', ...fStore, path: resolveIn(base, fStore.path ?? 'controller.db') },
    managerUrl: file.managerUrl ?? `https://localhost:${DEFAULT_PORTS.manager}`,
    keyManagerUrls: file.keyManagerUrls ?? [`https://localhost:${DEFAULT_PORTS.keymanager}`],
    ackTimeoutSeconds: file.ackTimeoutSeconds ?? DEFAULT_SETTINGS.ackTimeoutSeconds,
    livenessSeconds: file.livenessSeconds ?? DEFAULT_SETTINGS.livenessSeconds,
    grantTtlSeconds: file.grantTtlSeconds ?? Math.min(DEFAULT_SETTINGS.grantTtlSeconds, DEFAULT_GRANT_MAX_LIFETIME_S),
    bodyLimitBytes: file.bodyLimitBytes ?? DEFAULT_BODY_LIMIT,
    logLevel: file.logLevel ?? 'info',
  };
  for (const k of Object.keys(file)) if (!(k in cfg)) cfg[k] = file[k]; // unknown fields reach validation and are refused
  if (cfg.grantKey === undefined) delete cfg.grantKey;
  const tls = cfg.tls as Json;
  if (flags.name) cfg.instanceId = flags.name;
  if (flags.pkiDir) {
    const dir = path.resolve(cwd, flags.pkiDir);
    const name = cfg.instanceId as string;
    tls.cert = path.join(dir, `controller-${name}.crt`);
    tls.key = path.join(dir, `controller-${name}.key`);
    tls.ca = path.join(dir, 'ca.crt');
    cfg.grantKey = path.join(dir, `controller-${name}.grant.key`);
  }
  if (flags.host) (cfg.listen as Json).host = flags.host;
  if (flags.port !== undefined) (cfg.listen as Json).port = flags.port;
  if (flags.db) (cfg.store as Json).path = path.resolve(cwd, flags.db);
  if (flags.tlsCert) tls.cert = path.resolve(cwd, flags.tlsCert);
  if (flags.tlsKey) tls.key = path.resolve(cwd, flags.tlsKey);
  if (flags.tlsCa) tls.ca = path.resolve(cwd, flags.tlsCa);
  if (flags.grantKey) cfg.grantKey = path.resolve(cwd, flags.grantKey);
  if (flags.managerUrl) cfg.managerUrl = flags.managerUrl;
  if (flags.keymanagerUrl?.length) cfg.keyManagerUrls = flags.keymanagerUrl;
  if (flags.ackTimeout !== undefined) cfg.ackTimeoutSeconds = flags.ackTimeout;
  if (flags.logLevel) cfg.logLevel = flags.logLevel;

  const first = Value.Errors(ControllerConfigSchema, cfg).First();
  if (first) {
    const where = `config${first.path}`;
    const schema = first.schema as { anyOf?: { const?: unknown }[]; pattern?: string };
    if (first.value === undefined) throw configError(`${where} is required${where === 'config/grantKey' ? ' (controller-NAME.grant.key; or use --pki-dir)' : ''}`);
    if (first.message === 'Unexpected property') throw configError(`${where} is not a known setting`);
    if (schema.anyOf?.every((s) => 'const' in s)) throw configError(`${where} must be one of ${schema.anyOf.map((s) => String(s.const)).join(', ')}`);
    if (schema.pattern?.startsWith('^https://')) throw configError(`${where} must be an https:// URL`);
    throw configError(`${where} ${first.message.replace(/^Expected /, 'must be ')}`);
  }
  const c = cfg as ControllerConfig;
  if (c.grantTtlSeconds > DEFAULT_GRANT_MAX_LIFETIME_S) {
    // Not an error: key managers may be configured to accept longer grants.
    process.emitWarning(`grantTtlSeconds ${c.grantTtlSeconds} is above the key manager's default maximum of ${DEFAULT_GRANT_MAX_LIFETIME_S} s`);
  }
  return c;
}
