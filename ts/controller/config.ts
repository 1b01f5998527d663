/**
 * Controller configuration: a JSON or YAML file, overridden by flags, then
 * validated as a whole (unknown fields are errors). Relative paths in a file
 * are relative to the file. Flags alone are enough (`dne server` starts the
 * controller as a child process with flags only).
 */
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
import { DEFAULT_GRANT_MAX_LIFETIME_S } from '../common/grant';
import { NAME_PATTERN } from '../common/identity';
import { DEFAULT_BODY_LIMIT } from './app';
import { DEFAULT_SETTINGS } from './service';

const HttpsUrl = Type.String({ pattern: '^https://[^\\s/]+(/.*)?$' });

export const ControllerConfigSchema = Type.Object(
  {
    instanceId: Type.String({ pattern: NAME_PATTERN }),
    listen: ListenSchema,
    tls: TlsFilesSchema,
    /** controller-NAME.grant.key (Ed25519, from `dne pki issue --role controller`). */
    grantKey: Type.String({ minLength: 1 }),
    store: SqliteStoreSchema,
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

export interface ControllerFlags extends ServiceFlags {
  grantKey?: string;
  managerUrl?: string;
  keymanagerUrl?: string[];
  ackTimeout?: number;
}

/** defaults < file < --pki-dir conveniences < flags. */
export function loadControllerConfig(flags: ControllerFlags, cwd = process.cwd()): ControllerConfig {
  const { file, base } = configSource(flags, cwd);
  const fTls = obj(file.tls);
  const fStore = obj(file.store);
  const cfg: Json = {
    instanceId: file.instanceId ?? 'c1',
    listen: { host: '127.0.0.1', port: DEFAULT_PORTS.controller, ...obj(file.listen) },
    tls: tlsFromFile(base, fTls),
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
  if (flags.name) cfg.instanceId = flags.name;
  if (flags.pkiDir) {
    const dir = path.resolve(cwd, flags.pkiDir);
    const name = cfg.instanceId as string;
    Object.assign(cfg.tls as Json, pkiDirTls(dir, 'controller', name));
    cfg.grantKey = path.join(dir, `controller-${name}.grant.key`);
  }
  applyListenStoreTlsFlags(cfg, flags, cwd);
  if (flags.grantKey) cfg.grantKey = path.resolve(cwd, flags.grantKey);
  if (flags.managerUrl) cfg.managerUrl = flags.managerUrl;
  if (flags.keymanagerUrl?.length) cfg.keyManagerUrls = flags.keymanagerUrl;
  if (flags.ackTimeout !== undefined) cfg.ackTimeoutSeconds = flags.ackTimeout;
  if (flags.logLevel) cfg.logLevel = flags.logLevel;

  const problem = schemaProblem(ControllerConfigSchema, cfg, {
    requiredHint: (where) => (where === 'config/grantKey' ? ' (controller-NAME.grant.key; or use --pki-dir)' : ''),
    special: (where, first) => ((first.schema as { pattern?: string }).pattern?.startsWith('^https://') ? `${where} must be an https:// URL` : undefined),
  });
  if (problem) throw configError(problem);
  const c = cfg as ControllerConfig;
  if (c.grantTtlSeconds > DEFAULT_GRANT_MAX_LIFETIME_S) {
    // Not an error: key managers may be configured to accept longer grants.
    process.emitWarning(`grantTtlSeconds ${c.grantTtlSeconds} is above the key manager's default maximum of ${DEFAULT_GRANT_MAX_LIFETIME_S} s`);
  }
  return c;
}
