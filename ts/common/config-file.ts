/**
 * What the services' configuration loaders share: reading a JSON or YAML
 * file, resolving paths relative to it, the flags every TLS service takes
 * (listen address, store, TLS files, --pki-dir), and turning the first
 * TypeBox error into a message that names the setting (never its value: a
 * key pasted into the wrong field must not end up in a log).
 *
 * Each service still builds its own defaults and applies its own flags; only
 * what is the same in meaning lives here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TSchema, Type } from '@sinclair/typebox';
import { Value, ValueError } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { DneError, ErrorCodes } from './errors';
import { LOG_LEVELS } from './logging';

export type Json = Record<string, unknown>;

export function configError(message: string): DneError {
  return new DneError(ErrorCodes.config, message);
}

export interface ReadConfigOptions {
  /**
   * Which syntax a file is read as. 'json-unless-yaml' (the servers): YAML
   * only for .yaml/.yml. 'yaml-unless-json' (the agent, whose files are
   * YAML by convention): JSON only for .json.
   */
  syntax?: 'json-unless-yaml' | 'yaml-unless-json';
  /** How the message names the required top level ("an object", "a mapping"). */
  topLevel?: string;
}

/** Reads and parses a configuration file; its top level must be an object. */
export function readConfigFile(file: string, opts: ReadConfigOptions = {}): Json {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw configError(`cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const yaml = opts.syntax === 'yaml-unless-json' ? !/\.json$/i.test(file) : /\.ya?ml$/i.test(file);
  let v: unknown;
  try {
    v = yaml ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw configError(`config ${file} is not valid ${yaml ? 'YAML' : 'JSON'}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw configError(`config ${file} must be ${opts.topLevel ?? 'an object'}`);
  return v as Json;
}

/** A relative path from a config file is relative to the file's directory; anything else passes through. */
export function resolveIn(base: string, p: unknown): unknown {
  return typeof p === 'string' && !path.isAbsolute(p) ? path.resolve(base, p) : p;
}

/** The value if it is a plain object, else an empty one (validation reports the wrong type later). */
export function obj(v: unknown): Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};
}

/** Settings every TLS service has, with the same shape. */
export const ListenSchema = Type.Object(
  { host: Type.String({ minLength: 1 }), port: Type.Integer({ minimum: 0, maximum: 65535 }) },
  { additionalProperties: false },
);
export const TlsFilesSchema = Type.Object(
  { cert: Type.String({ minLength: 1 }), key: Type.String({ minLength: 1 }), ca: Type.String({ minLength: 1 }) },
  { additionalProperties: false },
);
export const SqliteStoreSchema = Type.Object({ driver: Type.Literal('sqlite'), path: Type.String({ minLength: 1 }) }, { additionalProperties: false });
export const LogLevelSchema = Type.Union(LOG_LEVELS.map((l) => Type.Literal(l)));

/** The flags every TLS service (key manager, manager, controller) takes. */
export interface ServiceFlags {
  config?: string;
  pkiDir?: string;
  name?: string;
  host?: string;
  port?: number;
  db?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  logLevel?: string;
}

/** The file named by --config (or nothing) and the directory its relative paths are relative to. */
export function configSource(flags: { config?: string }, cwd: string): { file: Json; base: string } {
  if (!flags.config) return { file: {}, base: cwd };
  const f = path.resolve(cwd, flags.config);
  return { file: readConfigFile(f), base: path.dirname(f) };
}

/** The file's `tls` section with its three paths resolved relative to the file. */
export function tlsFromFile(base: string, fTls: Json): Json {
  return { ...fTls, cert: resolveIn(base, fTls.cert), key: resolveIn(base, fTls.key), ca: resolveIn(base, fTls.ca) };
}

/** The TLS files `dne pki` writes for ROLE-NAME into a PKI directory. */
export function pkiDirTls(dir: string, role: string, name: string): { cert: string; key: string; ca: string } {
  return { cert: path.join(dir, `${role}-${name}.crt`), key: path.join(dir, `${role}-${name}.key`), ca: path.join(dir, 'ca.crt') };
}

/** Applies --host, --port, --db, --tls-cert, --tls-key, --tls-ca (after --pki-dir, so they win). */
export function applyListenStoreTlsFlags(cfg: Json, flags: ServiceFlags, cwd: string): void {
  const listen = cfg.listen as Json;
  const tls = cfg.tls as Json;
  if (flags.host) listen.host = flags.host;
  if (flags.port !== undefined) listen.port = flags.port;
  if (flags.db) (cfg.store as Json).path = path.resolve(cwd, flags.db);
  if (flags.tlsCert) tls.cert = path.resolve(cwd, flags.tlsCert);
  if (flags.tlsKey) tls.key = path.resolve(cwd, flags.tlsKey);
  if (flags.tlsCa) tls.ca = path.resolve(cwd, flags.tlsCa);
}

export interface SchemaProblemOptions {
  /** Appended to "config/X is required" (e.g. which flag supplies it). */
  requiredHint?: (where: string) => string;
  /** A service's own wording for some errors, tried after the shared ones; undefined falls through. */
  special?: (where: string, first: ValueError) => string | undefined;
  /** Turns TypeBox's message into the tail of the sentence; by default "Expected X" becomes "must be X". */
  message?: (m: string) => string;
}

/** The first schema error as a sentence naming the setting, or null when the value is valid. */
export function schemaProblem(schema: TSchema, value: unknown, opts: SchemaProblemOptions = {}): string | null {
  const first = Value.Errors(schema, value).First();
  if (!first) return null;
  const where = `config${first.path}`;
  const s = first.schema as { anyOf?: { const?: unknown }[] };
  if (first.value === undefined) return `${where} is required${opts.requiredHint?.(where) ?? ''}`;
  if (first.message === 'Unexpected property') return `${where} is not a known setting`;
  if (s.anyOf?.every((x) => 'const' in x)) return `${where} must be one of ${s.anyOf.map((x) => String(x.const)).join(', ')}`;
  const special = opts.special?.(where, first);
  if (special !== undefined) return special;
  return `${where} ${opts.message ? opts.message(first.message) : first.message.replace(/^Expected /, 'must be ')}`;
}
