/**
 * Opening the services' embedded SQLite databases (better-sqlite3) the same
 * way: the file created owner-only before SQLite opens it (SQLite would use
 * the umask, and gives its -wal and -shm files the database file's mode), WAL
 * with synchronous=FULL so a committed transaction survives a crash or power
 * loss, and a `meta` table carrying the schema version.
 */
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import { DneError, ErrorCodes } from './errors';

/** Creates FILE with mode 0600 if it does not exist yet. */
export function createOwnerOnlyFile(file: string): void {
  if (!fs.existsSync(file)) fs.closeSync(fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_WRONLY, 0o600));
}

/** Opens a database; failures are store errors, with the fix when the native module is missing. */
export function openSqlite(file: string, opts: { readonly?: boolean; fileMustExist?: boolean } = {}): Database.Database {
  try {
    return new Database(file, { readonly: !!opts.readonly, fileMustExist: !!opts.fileMustExist });
  } catch (err) {
    const msg = (err as Error).message;
    if (/Could not locate the bindings file/.test(msg)) {
      // npm ci --ignore-scripts skips better-sqlite3's build step
      throw new DneError(ErrorCodes.store, "better-sqlite3's native module is not built: run `npm rebuild better-sqlite3`");
    }
    throw new DneError(ErrorCodes.store, `cannot open database ${file}: ${msg}`);
  }
}

/** WAL + synchronous=FULL: a COMMIT that returned is on disk. */
export function makeDurable(db: Database.Database): void {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
}

/**
 * Creates the schema (idempotent CREATE … IF NOT EXISTS statements, including
 * the `meta` table) and records or checks its version, in one transaction.
 */
export function migrateSchema(db: Database.Database, file: string, schema: string, version: string): void {
  db.exec('BEGIN IMMEDIATE');
  try {
    db.exec(schema);
    const v = db.prepare('SELECT value FROM meta WHERE name = ?').get('schema_version') as { value: string } | undefined;
    if (!v) db.prepare('INSERT INTO meta (name, value) VALUES (?, ?)').run('schema_version', version);
    else if (v.value !== version) {
      throw new DneError(ErrorCodes.store, `database ${file} has schema version ${v.value}; this dne knows ${version}`);
    }
    db.exec('COMMIT');
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw err;
  }
}

/** The key/value table every store keeps its schema version (and other settings) in. */
export const META_TABLE = `
CREATE TABLE IF NOT EXISTS meta (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
`;

/**
 * One unit of work: BEGIN (or BEGIN IMMEDIATE for a writer) … COMMIT around
 * FN, ROLLBACK if it throws. The caller serialises units (FN is async while
 * better-sqlite3 is not, so two units must never interleave on one connection).
 */
export async function unitOfWork<Tx, T>(db: Database.Database, begin: string, tx: Tx, fn: (tx: Tx) => Promise<T>): Promise<T> {
  db.exec(begin);
  try {
    const r = await fn(tx);
    db.exec('COMMIT');
    return r;
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw err;
  }
}
