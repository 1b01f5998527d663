/**
 * Manager configuration: a JSON or YAML file, overridden by flags, then
 * validated as a whole (unknown fields are errors). Relative paths in a file
 * are relative to the file. Every setting has a flag or a default, so
 * `dne server` can start `dne manager` with flags alone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_PORTS } from '../common/contracts';
import { DneError, ErrorCodes } from '../common/errors';
import { NAME_PATTERN } from '../common/identity';
import { LOG_LEVELS } from '../common/logging';
import { privateFileProblem } from '../common/secure-files';
import { AdminToken, DEFAULT_BODY_LIMIT, hashToken } from './app';

export const DEFAULT_PORT = DEFAULT_PORTS.manager;

const LogLevelSchema = Type.Union(LOG_LEVELS.map((l) => Type.Literal(l)));

export const ManagerConfigSchema = Type.Object(
  {
    name: Type.String({ pattern: NAME_PATTERN }),
    listen: Type.Object({ host: Type.String({ minLength: 1 }), port: Type.Integer({ minimum: 0, maximum: 65535 }) }, { additionalProperties: false }),
    tls: Type.Object({ cert: Type.String({ minLength: 1 }), key: Type.String({ minLength: 1 }), ca: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    store: Type.Object({ driver: Type.Literal('sqlite'), path: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    /** Bearer tokens for administrators: name + SHA-256 (hex) of the token, never the token itself. */
    adminTokens: Type.Array(
      Type.Object({ name: Type.String({ pattern: NAME_PATTERN }), sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }) }, { additionalProperties: false }),
    ),
    /** Files holding one raw token each (0600); the file's name (without extension) names the token. */
    adminTokenFiles: Type.Array(Type.String({ minLength: 1 })),
    autoPublishInventory: Type.Boolean(),
    bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024 }),
    logLevel: LogLevelSchema,
  },
  { additionalProperties: false },
);
export type ManagerConfig = Static<typeof ManagerConfigSchema>;

export interface ManagerFlags {
  config?: string;
  pkiDir?: string;
  name?: string;
  host?: string;
  port?: number;
  db?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  adminTokenFile?: string[];
  autoPublishInventory?: boolean;
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

function resolveIn(base: string, p: unknown): unknown {
  return typeof p === 'string' && !path.isAbsolute(p) ? path.resolve(base, p) : p;
}

function obj(v: unknown): Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};
}

/** Builds the effective configuration: defaults < file < --pki-dir conveniences < flags. */
export function loadManagerConfig(flags: ManagerFlags, cwd = process.cwd()): ManagerConfig {
  const file = flags.config ? readConfigFile(path.resolve(cwd, flags.config)) : {};
  const base = flags.config ? path.dirname(path.resolve(cwd, flags.config)) : cwd;
  const fTls = obj(file.tls);
  const fStore = obj(file.store);
  const cfg: Json = {
    name: file.name ?? 'm1',
    listen: { host: '127.0.0.1', port: DEFAULT_PORT, ...obj(file.listen) },
    tls: { ...fTls, cert: resolveIn(base, fTls.cert), key: resolveIn(base, fTls.key), ca: resolveIn(base, fTls.ca) },
    store: { driver: 'sqlite', ...fStore, path: resolveIn(base, fStore.path ?? 'manager.db') },
    adminTokens: file.adminTokens ?? [],
    adminTokenFiles: Array.isArray(file.adminTokenFiles) ? file.adminTokenFiles.map((f) => resolveIn(base, f)) : (file.adminTokenFiles ?? []),
    autoPublishInventory: file.autoPublishInventory ?? true,
    bodyLimitBytes: file.bodyLimitBytes ?? DEFAULT_BODY_LIMIT,
    logLevel: file.logLevel ?? 'info',
  };
  for (const k of Object.keys(file)) if (!(k in cfg)) cfg[k] = file[k]; // unknown fields reach validation and are refused
  const tls = cfg.tls as Json;
  const listen = cfg.listen as Json;
  if (flags.name) cfg.name = flags.name;
  if (flags.pkiDir) {
    const dir = path.resolve(cwd, flags.pkiDir);
    tls.cert = path.join(dir, `manager-${String(cfg.name)}.crt`);
    tls.key = path.join(dir, `manager-${String(cfg.name)}.key`);
    tls.ca = path.join(dir, 'ca.crt');
  }
  if (flags.host) listen.host = flags.host;
  if (flags.port !== undefined) listen.port = flags.port;
  if (flags.db) (cfg.store as Json).path = path.resolve(cwd, flags.db);
  if (flags.tlsCert) tls.cert = path.resolve(cwd, flags.tlsCert);
  if (flags.tlsKey) tls.key = path.resolve(cwd, flags.tlsKey);
  if (flags.tlsCa) tls.ca = path.resolve(cwd, flags.tlsCa);
  if (flags.adminTokenFile?.length) cfg.adminTokenFiles = [...(cfg.adminTokenFiles as string[]), ...flags.adminTokenFile.map((f) => path.resolve(cwd, f))];
  if (flags.autoPublishInventory !== undefined) cfg.autoPublishInventory = flags.autoPublishInventory;
  if (flags.logLevel) cfg.logLevel = flags.logLevel;

  const first = Value.Errors(ManagerConfigSchema, cfg).First();
  if (first) {
    const where = `config${first.path}`;
    const schema = first.schema as { anyOf?: { const?: unknown }[] };
    if (first.value === undefined) throw configError(`${where} is required${where.startsWith('config/tls') ? ' (give --pki-dir DIR, --tls-cert/--tls-key/--tls-ca, or tls in the config file)' : ''}`);
    if (first.message === 'Unexpected property') throw configError(`${where} is not a known setting`);
    if (schema.anyOf?.every((s) => 'const' in s)) throw configError(`${where} must be one of ${schema.anyOf.map((s) => String(s.const)).join(', ')}`);
    throw configError(`${where} ${first.message.replace(/^Expected (?:\w+ )?to be /, 'must be ').replace(/^Expected /, 'must be ')}`);
  }
  return cfg as ManagerConfig;
}

/** The configured tokens plus those read from token files (each file: one token, mode 0600). */
export function adminTokensOf(c: ManagerConfig): AdminToken[] {
  const out: AdminToken[] = [...c.adminTokens];
  for (const f of c.adminTokenFiles) {
    const problem = privateFileProblem(f);
    if (problem) throw configError(`refusing the admin token file: ${problem}`);
    const token = fs.readFileSync(f, 'utf8').trim();
    if (!/^[\x21-\x7e]{16,512}$/.test(token)) throw configError(`admin token file ${f} must hold one token of 16..512 printable ASCII characters`);
    const name = path.basename(f).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'token';
    out.push({ name, sha256: hashToken(token) });
  }
  return out;
}
