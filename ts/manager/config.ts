/**
 * Manager configuration: a JSON or YAML file, overridden by flags, then
 * validated as a whole (unknown fields are errors). Relative paths in a file
 * are relative to the file. Every setting has a flag or a default, so
 * `dne server` can start `dne manager` with flags alone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Static, Type } from '@sinclair/typebox';
import { DEFAULT_PORTS } from '../common/contracts';
import {
  applyListenStoreTlsFlags,
  configError,
  configSource,
  Json,
  ListenSchema,
  LogLevelSchema,
  obj,
  pkiDirTls,
  resolveIn,
  schemaProblem,
  ServiceFlags,
  SqliteStoreSchema,
  tlsFromFile,
  TlsFilesSchema,
} from '../common/config-file';
import { NAME_PATTERN } from '../common/identity';
import { privateFileProblem } from '../common/secure-files';
import { AdminToken, DEFAULT_BODY_LIMIT, hashToken } from './app';
import { DEFAULT_AUTO_PUBLISH_MIN_INTERVAL_S } from './service';

export const DEFAULT_PORT = DEFAULT_PORTS.manager;


export const ManagerConfigSchema = Type.Object(
  {
    name: Type.String({ pattern: NAME_PATTERN }),
    listen: ListenSchema,
    tls: TlsFilesSchema,
    store: SqliteStoreSchema,
    /** Bearer tokens for administrators: name + SHA-256 (hex) of the token, never the token itself. */
    adminTokens: Type.Array(
      Type.Object({ name: Type.String({ pattern: NAME_PATTERN }), sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }) }, { additionalProperties: false }),
    ),
    /** Files holding one raw token each (0600); the file's name (without extension) names the token. */
    adminTokenFiles: Type.Array(Type.String({ minLength: 1 })),
    autoPublishInventory: Type.Boolean(),
    /** At most one inventory auto-publish per this many seconds; changes in between are coalesced (0: each at once). */
    autoPublishMinIntervalSeconds: Type.Number({ minimum: 0, maximum: 3600 }),
    /** Scopes whose agent-reported tags count for group membership (docs/manager.md "What a host can claim"). */
    trustedReportedTagScopes: Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 64 }),
    bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024 }),
    logLevel: LogLevelSchema,
  },
  { additionalProperties: false },
);
export type ManagerConfig = Static<typeof ManagerConfigSchema>;

export interface ManagerFlags extends ServiceFlags {
  adminTokenFile?: string[];
  autoPublishInventory?: boolean;
  autoPublishMinInterval?: number;
  trustReportedTagScope?: string[];
}

/** Builds the effective configuration: defaults < file < --pki-dir conveniences < flags. */
export function loadManagerConfig(flags: ManagerFlags, cwd = process.cwd()): ManagerConfig {
  const { file, base } = configSource(flags, cwd);
  const fTls = obj(file.tls);
  const fStore = obj(file.store);
  const cfg: Json = {
    name: file.name ?? 'm1',
    listen: { host: '127.0.0.1', port: DEFAULT_PORT, ...obj(file.listen) },
    tls: tlsFromFile(base, fTls),
    store: { driver: 'sqlite', ...fStore, path: resolveIn(base, fStore.path ?? 'manager.db') },
    adminTokens: file.adminTokens ?? [],
    adminTokenFiles: Array.isArray(file.adminTokenFiles) ? file.adminTokenFiles.map((f) => resolveIn(base, f)) : (file.adminTokenFiles ?? []),
    autoPublishInventory: file.autoPublishInventory ?? true,
    autoPublishMinIntervalSeconds: file.autoPublishMinIntervalSeconds ?? DEFAULT_AUTO_PUBLISH_MIN_INTERVAL_S,
    trustedReportedTagScopes: file.trustedReportedTagScopes ?? [],
    bodyLimitBytes: file.bodyLimitBytes ?? DEFAULT_BODY_LIMIT,
    logLevel: file.logLevel ?? 'info',
  };
  for (const k of Object.keys(file)) if (!(k in cfg)) cfg[k] = file[k]; // unknown fields reach validation and are refused
  if (flags.name) cfg.name = flags.name;
  if (flags.pkiDir) Object.assign(cfg.tls as Json, pkiDirTls(path.resolve(cwd, flags.pkiDir), 'manager', String(cfg.name)));
  applyListenStoreTlsFlags(cfg, flags, cwd);
  if (flags.adminTokenFile?.length) cfg.adminTokenFiles = [...(cfg.adminTokenFiles as string[]), ...flags.adminTokenFile.map((f) => path.resolve(cwd, f))];
  if (flags.autoPublishInventory !== undefined) cfg.autoPublishInventory = flags.autoPublishInventory;
  if (flags.autoPublishMinInterval !== undefined) cfg.autoPublishMinIntervalSeconds = flags.autoPublishMinInterval;
  if (flags.trustReportedTagScope?.length) {
    const fromFile = Array.isArray(cfg.trustedReportedTagScopes) ? (cfg.trustedReportedTagScopes as string[]) : [];
    cfg.trustedReportedTagScopes = [...new Set([...fromFile, ...flags.trustReportedTagScope])];
  }
  if (flags.logLevel) cfg.logLevel = flags.logLevel;

  const problem = schemaProblem(ManagerConfigSchema, cfg, {
    requiredHint: (where) => (where.startsWith('config/tls') ? ' (give --pki-dir DIR, --tls-cert/--tls-key/--tls-ca, or tls in the config file)' : ''),
    message: (m) => m.replace(/^Expected (?:\w+ )?to be /, 'must be ').replace(/^Expected /, 'must be '),
  });
  if (problem) throw configError(problem);
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
