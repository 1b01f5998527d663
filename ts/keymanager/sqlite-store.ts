/**
 * The embedded key store: one SQLite file (better-sqlite3) in WAL mode with
 * synchronous=FULL, so a committed transaction survives a crash or power
 * loss, and an uncommitted one leaves no trace. Every unit of work is one
 * BEGIN IMMEDIATE … COMMIT; the service answers only after COMMIT returned.
 *
 * better-sqlite3 is synchronous, but a unit of work is an async function (the
 * interface must fit PostgreSQL too), so units are queued: one at a time per
 * database file in this process — a second store on the same file (a replica
 * in a test) shares the queue instead of blocking the thread on SQLite's lock.
 * Other processes on the same file are serialised by SQLite's own locking.
 */
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DneError, ErrorCodes } from '../common/errors';
import { createOwnerOnlyFile, makeDurable, META_TABLE, migrateSchema, openSqlite, unitOfWork } from '../common/sqlite';
import {
  Algorithm,
  AUDIT_GENESIS,
  AuditEntry,
  AuditInput,
  auditHash,
  KeyRow,
  KeyStore,
  KeyStoreTx,
  ListKeysFilter,
  RegisteredRange,
  SenderRange,
  StoredState,
} from './store';

const SCHEMA_VERSION = '1';

const SCHEMA = `${META_TABLE}
CREATE TABLE IF NOT EXISTS keys (
  key_id         TEXT PRIMARY KEY,
  policy_id      TEXT NOT NULL,
  algorithm      TEXT NOT NULL CHECK (algorithm IN ('AES_GCM_128', 'AES_GCM_256')),
  state          TEXT NOT NULL CHECK (state IN ('active', 'retired', 'revoked', 'expired')),
  sender_id_bits INTEGER NOT NULL,
  not_before     INTEGER,
  not_after      INTEGER,
  created_at     INTEGER NOT NULL,
  created_by     TEXT NOT NULL,
  retired_at     INTEGER,
  revoked_at     INTEGER,
  revoke_reason  TEXT,
  expired_at     INTEGER,
  master_key_id  TEXT NOT NULL,
  sealed         BLOB NOT NULL,
  seq            INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS keys_by_policy ON keys (policy_id, seq);
CREATE UNIQUE INDEX IF NOT EXISTS keys_by_seq ON keys (seq);
-- At most one active key per policy: rotation retires the previous one in the same transaction.
CREATE UNIQUE INDEX IF NOT EXISTS keys_one_active ON keys (policy_id) WHERE state = 'active';

CREATE TABLE IF NOT EXISTS sender_counters (
  key_id      TEXT NOT NULL REFERENCES keys (key_id),
  range_start INTEGER NOT NULL,
  range_end   INTEGER NOT NULL,
  next        INTEGER NOT NULL,
  PRIMARY KEY (key_id, range_start)
) STRICT;

CREATE TABLE IF NOT EXISTS sender_ranges (
  instance_id   TEXT NOT NULL,
  range_start   INTEGER NOT NULL,
  range_end     INTEGER NOT NULL,
  bits          INTEGER NOT NULL,
  registered_at INTEGER NOT NULL,
  PRIMARY KEY (instance_id, range_start)
) STRICT;

CREATE TABLE IF NOT EXISTS audit (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  at        INTEGER NOT NULL,
  actor     TEXT NOT NULL,
  action    TEXT NOT NULL,
  outcome   TEXT NOT NULL,
  policy_id TEXT,
  key_ids   TEXT NOT NULL,
  detail    TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash      TEXT NOT NULL
) STRICT;
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
`;

interface KeyDbRow {
  key_id: string;
  policy_id: string;
  algorithm: string;
  state: string;
  sender_id_bits: number;
  not_before: number | null;
  not_after: number | null;
  created_at: number;
  created_by: string;
  retired_at: number | null;
  revoked_at: number | null;
  revoke_reason: string | null;
  expired_at: number | null;
  master_key_id: string;
  sealed: Buffer;
}

interface AuditDbRow {
  id: number;
  at: number;
  actor: string;
  action: string;
  outcome: string;
  policy_id: string | null;
  key_ids: string;
  detail: string;
  prev_hash: string;
  hash: string;
}

function toKeyRow(r: KeyDbRow): KeyRow {
  return {
    keyId: r.key_id,
    policyId: r.policy_id,
    algorithm: r.algorithm as Algorithm,
    state: r.state as StoredState,
    senderIdBits: r.sender_id_bits,
    notBefore: r.not_before,
    notAfter: r.not_after,
    createdAt: r.created_at,
    createdBy: r.created_by,
    retiredAt: r.retired_at,
    revokedAt: r.revoked_at,
    revokeReason: r.revoke_reason,
    expiredAt: r.expired_at,
    masterKeyId: r.master_key_id,
    sealed: r.sealed,
  };
}

function toAuditEntry(r: AuditDbRow): AuditEntry {
  return {
    id: r.id,
    at: r.at,
    actor: r.actor,
    action: r.action,
    outcome: r.outcome as AuditEntry['outcome'],
    policyId: r.policy_id,
    keyIds: JSON.parse(r.key_ids) as string[],
    detail: JSON.parse(r.detail) as Record<string, unknown>,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** Per-file queues shared by every store in this process. */
const queues = new Map<string, { tail: Promise<unknown>; users: number }>();

function queueKey(file: string): string {
  if (file === ':memory:') return `:memory:${Math.random()}`;
  const dir = fs.realpathSync(path.dirname(path.resolve(file)));
  return path.join(dir, path.basename(file));
}

export interface SqliteStoreOptions {
  /** Open an existing database only (tools like rewrap must not create one by mistake). */
  mustExist?: boolean;
  readonly?: boolean;
}

export class SqliteKeyStore implements KeyStore {
  readonly kind = 'sqlite';
  readonly file: string;
  readonly #db: Database.Database;
  readonly #q: string;
  readonly #tx: KeyStoreTx;
  #closed = false;

  constructor(file: string, opts: SqliteStoreOptions = {}) {
    this.file = file;
    if (opts.mustExist && !fs.existsSync(file)) throw new DneError(ErrorCodes.store, `database ${file} does not exist`);
    // The database holds sealed keys and the audit log: owner-only. SQLite
    // gives its -wal and -shm files the database file's mode.
    if (!opts.readonly) createOwnerOnlyFile(file);
    this.#db = openSqlite(file, { readonly: opts.readonly, fileMustExist: opts.mustExist });
    if (!opts.readonly) makeDurable(this.#db);
    this.#db.pragma('foreign_keys = ON');
    this.#db.pragma('busy_timeout = 10000');
    if (!opts.readonly) migrateSchema(this.#db, file, SCHEMA, SCHEMA_VERSION);
    this.#q = queueKey(file);
    const q = queues.get(this.#q) ?? { tail: Promise.resolve(), users: 0 };
    q.users++;
    queues.set(this.#q, q);
    this.#tx = this.#makeTx();
  }

  #makeTx(): KeyStoreTx {
    const db = this.#db;
    const st = {
      getMeta: db.prepare('SELECT value FROM meta WHERE name = ?'),
      setMeta: db.prepare('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value'),
      getKey: db.prepare('SELECT * FROM keys WHERE key_id = ?'),
      listAll: db.prepare('SELECT * FROM keys WHERE seq > ? ORDER BY seq LIMIT ?'),
      listPolicy: db.prepare('SELECT * FROM keys WHERE policy_id = ? AND seq > ? ORDER BY seq LIMIT ?'),
      seqOf: db.prepare('SELECT seq FROM keys WHERE key_id = ?'),
      ofPolicy: db.prepare('SELECT * FROM keys WHERE policy_id = ? ORDER BY seq'),
      toExpire: db.prepare("SELECT * FROM keys WHERE state IN ('active', 'retired') AND not_after IS NOT NULL AND not_after <= ? ORDER BY seq"),
      count: db.prepare('SELECT count(*) AS n FROM keys'),
      maxSeq: db.prepare('SELECT coalesce(max(seq), 0) AS s FROM keys'),
      insertKey: db.prepare(`INSERT INTO keys (key_id, policy_id, algorithm, state, sender_id_bits, not_before, not_after,
          created_at, created_by, retired_at, revoked_at, revoke_reason, expired_at, master_key_id, sealed, seq)
        VALUES (@keyId, @policyId, @algorithm, @state, @senderIdBits, @notBefore, @notAfter, @createdAt, @createdBy,
          @retiredAt, @revokedAt, @revokeReason, @expiredAt, @masterKeyId, @sealed, @seq)`),
      retire: db.prepare("UPDATE keys SET state = 'retired', retired_at = ? WHERE key_id = ?"),
      revoke: db.prepare("UPDATE keys SET state = 'revoked', revoked_at = ?, revoke_reason = ? WHERE key_id = ?"),
      expire: db.prepare("UPDATE keys SET state = 'expired', expired_at = ? WHERE key_id = ?"),
      activate: db.prepare("UPDATE keys SET state = 'active' WHERE key_id = ?"),
      setSealed: db.prepare('UPDATE keys SET sealed = ?, master_key_id = ? WHERE key_id = ?'),
      counter: db.prepare('SELECT next, range_end FROM sender_counters WHERE key_id = ? AND range_start = ?'),
      counterInsert: db.prepare('INSERT INTO sender_counters (key_id, range_start, range_end, next) VALUES (?, ?, ?, ?)'),
      counterUpdate: db.prepare('UPDATE sender_counters SET next = ? WHERE key_id = ? AND range_start = ?'),
      counters: db.prepare('SELECT key_id, next FROM sender_counters WHERE range_start = ? ORDER BY key_id'),
      counterRaise: db.prepare(
        'INSERT INTO sender_counters (key_id, range_start, range_end, next) VALUES (?, ?, ?, ?) ON CONFLICT (key_id, range_start) DO UPDATE SET next = max(next, excluded.next)',
      ),
      ranges: db.prepare('SELECT * FROM sender_ranges ORDER BY range_start'),
      addRange: db.prepare('INSERT INTO sender_ranges (instance_id, range_start, range_end, bits, registered_at) VALUES (?, ?, ?, ?, ?)'),
      lastAudit: db.prepare('SELECT hash FROM audit ORDER BY id DESC LIMIT 1'),
      addAudit: db.prepare(`INSERT INTO audit (at, actor, action, outcome, policy_id, key_ids, detail, prev_hash, hash)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      listAudit: db.prepare('SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?'),
    };
    return {
      getMeta: async (name) => (st.getMeta.get(name) as { value: string } | undefined)?.value,
      setMeta: async (name, value) => {
        st.setMeta.run(name, value);
      },
      getKey: async (keyId) => {
        const r = st.getKey.get(keyId) as KeyDbRow | undefined;
        return r ? toKeyRow(r) : undefined;
      },
      listKeys: async (f: ListKeysFilter) => {
        let after = 0;
        if (f.afterKeyId) {
          const s = st.seqOf.get(f.afterKeyId) as { seq: number } | undefined;
          if (!s) return [];
          after = s.seq;
        }
        const rows = (f.policyId ? st.listPolicy.all(f.policyId, after, f.limit) : st.listAll.all(after, f.limit)) as KeyDbRow[];
        return rows.map(toKeyRow);
      },
      keysOfPolicy: async (policyId) => (st.ofPolicy.all(policyId) as KeyDbRow[]).map(toKeyRow),
      keysToExpire: async (now) => (st.toExpire.all(now) as KeyDbRow[]).map(toKeyRow),
      countKeys: async () => (st.count.get() as { n: number }).n,
      insertKey: async (row) => {
        const seq = (st.maxSeq.get() as { s: number }).s + 1;
        st.insertKey.run({ ...row, seq });
      },
      setState: async (keyId, state, at, reason) => {
        const r =
          state === 'retired'
            ? st.retire.run(at, keyId)
            : state === 'revoked'
              ? st.revoke.run(at, reason ?? null, keyId)
              : state === 'expired'
                ? st.expire.run(at, keyId)
                : st.activate.run(keyId);
        if (r.changes !== 1) throw new DneError(ErrorCodes.store, `key ${keyId} vanished during a state change`);
      },
      setSealed: async (keyId, sealed, masterKeyId) => {
        st.setSealed.run(sealed, masterKeyId, keyId);
      },
      allocateSenderIds: async (keyId, range: SenderRange, count) => {
        const c = st.counter.get(keyId, range.start) as { next: number; range_end: number } | undefined;
        const next = c ? c.next : range.start;
        const end = Math.min(range.end, c ? c.range_end : range.end);
        if (next + count > end) return null;
        if (c) st.counterUpdate.run(next + count, keyId, range.start);
        else st.counterInsert.run(keyId, range.start, range.end, next + count);
        return Array.from({ length: count }, (_, i) => next + i);
      },
      senderCounters: async (range: SenderRange) =>
        (st.counters.all(range.start) as { key_id: string; next: number }[]).map((r) => ({ keyId: r.key_id, next: r.next })),
      raiseSenderCounter: async (keyId, range: SenderRange, next) => {
        st.counterRaise.run(keyId, range.start, range.end, next);
      },
      listSenderRanges: async () =>
        (st.ranges.all() as { instance_id: string; range_start: number; range_end: number; bits: number; registered_at: number }[]).map((r) => ({
          instanceId: r.instance_id,
          start: r.range_start,
          end: r.range_end,
          bits: r.bits,
          registeredAt: r.registered_at,
        })),
      addSenderRange: async (r: RegisteredRange) => {
        st.addRange.run(r.instanceId, r.start, r.end, r.bits, r.registeredAt);
      },
      appendAudit: async (e: AuditInput) => {
        const prev = (st.lastAudit.get() as { hash: string } | undefined)?.hash ?? AUDIT_GENESIS;
        const hash = auditHash(prev, e);
        const keyIds = e.keyIds ?? [];
        const detail = e.detail ?? {};
        const info = st.addAudit.run(e.at, e.actor, e.action, e.outcome, e.policyId ?? null, JSON.stringify(keyIds), JSON.stringify(detail), prev, hash);
        return {
          id: Number(info.lastInsertRowid),
          at: e.at,
          actor: e.actor,
          action: e.action,
          outcome: e.outcome,
          policyId: e.policyId ?? null,
          keyIds,
          detail,
          prevHash: prev,
          hash,
        } as AuditEntry;
      },
      listAudit: async (sinceId, limit) => (st.listAudit.all(sinceId, limit) as AuditDbRow[]).map(toAuditEntry),
    };
  }

  #run<T>(begin: string, fn: (tx: KeyStoreTx) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new DneError(ErrorCodes.store, 'the key store is closed'));
    const q = queues.get(this.#q)!;
    const result = q.tail.then(async () => {
      if (this.#closed) throw new DneError(ErrorCodes.store, 'the key store is closed');
      return unitOfWork(this.#db, begin, this.#tx, fn);
    });
    q.tail = result.catch(() => undefined);
    return result;
  }

  read<T>(fn: (tx: KeyStoreTx) => Promise<T>): Promise<T> {
    return this.#run('BEGIN', fn);
  }

  write<T>(fn: (tx: KeyStoreTx) => Promise<T>): Promise<T> {
    return this.#run('BEGIN IMMEDIATE', fn);
  }

  /** Runs a checkpoint so the main file holds everything (tests and backups). */
  async checkpoint(): Promise<void> {
    const q = queues.get(this.#q)!;
    await q.tail;
    this.#db.pragma('wal_checkpoint(TRUNCATE)');
  }

  async integrityCheck(): Promise<string> {
    const q = queues.get(this.#q)!;
    await q.tail;
    return (this.#db.pragma('integrity_check', { simple: true }) as string) ?? 'unknown';
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const q = queues.get(this.#q)!;
    await q.tail;
    this.#closed = true;
    this.#db.close();
    if (--q.users === 0) queues.delete(this.#q);
  }
}
