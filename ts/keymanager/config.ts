/**
 * Key manager configuration: a JSON or YAML file, overridden by flags, then
 * validated as a whole (unknown fields are errors). Relative paths in a file
 * are relative to the file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Static, Type } from '@sinclair/typebox';
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
import { DEFAULT_GRANT_CLOCK_SKEW_S, DEFAULT_GRANT_MAX_LIFETIME_S } from '../common/grant';
import { isValidName, NAME_PATTERN } from '../common/identity';
import { DEFAULT_BODY_LIMIT } from './app';

export const DEFAULT_PORT = 8443;
export const DEFAULT_SENDER_ID_BITS = 24;


export const KeyManagerConfigSchema = Type.Object(
  {
    instanceId: Type.String({ pattern: NAME_PATTERN }),
    listen: ListenSchema,
    tls: TlsFilesSchema,
    store: SqliteStoreSchema,
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
export interface KeyManagerFlags extends ServiceFlags {
  masterKeyFile?: string;
  senderIdBits?: number;
  senderIdRange?: string;
  grantKey?: string[];
  /** With --pki-dir: the controllers whose controller-NAME.grant.pub is trusted. */
  trustController?: string[];
}

/** Builds the effective configuration: defaults < file < --pki-dir conveniences < flags. */
export function loadKeyManagerConfig(flags: KeyManagerFlags, cwd = process.cwd()): KeyManagerConfig {
  const { file, base } = configSource(flags, cwd);

  const fTls = obj(file.tls);
  const fStore = obj(file.store);
  const fGrants = obj(file.grants);
  const fSender = obj(file.senderIds);
  const fListen = obj(file.listen);

  const cfg: Json = {
    instanceId: file.instanceId ?? flags.name ?? 'km1',
    listen: { host: '127.0.0.1', port: DEFAULT_PORT, ...fListen },
    tls: tlsFromFile(base, fTls),
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
  if (flags.name) cfg.instanceId = flags.name;
  if (flags.pkiDir) {
    const dir = path.resolve(cwd, flags.pkiDir);
    Object.assign(tls, pkiDirTls(dir, 'keymanager', cfg.instanceId as string));
    // Only the controllers named: every controller identity ever issued from
    // this directory would otherwise be a grant signer, at every start.
    if (flags.trustController?.length) {
      grants.trustedKeys = flags.trustController.map((n) => {
        if (!isValidName(n)) throw configError(`--trust-controller ${JSON.stringify(n)} is not a valid controller name (1-128 of A-Za-z0-9._-)`);
        const f = path.join(dir, `controller-${n}.grant.pub`);
        if (!fs.existsSync(f)) throw configError(`--trust-controller ${n}: ${f} does not exist (dne pki issue --dir ${flags.pkiDir} --role controller --name ${n})`);
        return f;
      });
    } else if (!fGrants.trustedKeys && !flags.grantKey?.length) {
      throw configError(
        `--pki-dir trusts the grant keys of the controllers you name: give --trust-controller NAME (repeatable) for controller-NAME.grant.pub in ${flags.pkiDir}, or --grant-key FILE`,
      );
    }
  } else if (flags.trustController?.length) {
    throw configError('--trust-controller needs --pki-dir (elsewhere, give the grant public key with --grant-key FILE)');
  }
  applyListenStoreTlsFlags(cfg, flags, cwd);
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
  const problem = schemaProblem(KeyManagerConfigSchema, cfg);
  if (problem) throw configError(problem);
  const c = cfg as KeyManagerConfig;
  if (c.senderIds.end > 2 ** c.senderIds.bits || c.senderIds.start >= c.senderIds.end) {
    throw configError(`config/senderIds: the range [${c.senderIds.start}, ${c.senderIds.end}) must be non-empty and within 2^${c.senderIds.bits}`);
  }
  return c;
}
