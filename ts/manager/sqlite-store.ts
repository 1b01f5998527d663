/**
 * The manager's embedded store: one SQLite file (better-sqlite3) in WAL mode
 * with synchronous=FULL, so a committed transaction survives a crash or power
 * loss and an uncommitted one leaves no trace: a publish killed half-way
 * leaves the previous revision and nothing of the new one (issue #5,
 * acceptance 3). Every unit of work is one BEGIN IMMEDIATE … COMMIT; units
 * are queued one at a time per process (the interface is async so that a
 * PostgreSQL backend fits; better-sqlite3 itself is synchronous).
 */
import Database from 'better-sqlite3';
import { DneError, ErrorCodes } from '../common/errors';
import { createOwnerOnlyFile, makeDurable, META_TABLE, migrateSchema, openSqlite, unitOfWork } from '../common/sqlite';
import { AuditEntry, AuditInput, FeedRow, ManagerStore, ManagerStoreTx, ObjectKind, RevisionRow, StatsRow, StoredObject } from './store';

const SCHEMA_VERSION = '1';

const SCHEMA = `${META_TABLE}
CREATE TABLE IF NOT EXISTS objects (
  kind     TEXT NOT NULL,
  id       TEXT NOT NULL,
  parent   TEXT NOT NULL DEFAULT '',
  pos      INTEGER NOT NULL,
  revision INTEGER NOT NULL,
  body     TEXT NOT NULL,
  PRIMARY KEY (kind, id)
) STRICT;
CREATE INDEX IF NOT EXISTS objects_order ON objects (kind, parent, pos, id);

CREATE TABLE IF NOT EXISTS revisions (
  number       INTEGER PRIMARY KEY,
  published_at TEXT NOT NULL,
  published_by TEXT NOT NULL,
  origin       TEXT NOT NULL CHECK (origin IN ('publish', 'rollback', 'auto')),
  source       INTEGER,
  body         TEXT NOT NULL
) STRICT;
CREATE TRIGGER IF NOT EXISTS revisions_no_update BEFORE UPDATE ON revisions
  BEGIN SELECT RAISE(ABORT, 'published revisions are immutable'); END;

CREATE TABLE IF NOT EXISTS feed (
  seq  INTEGER PRIMARY KEY AUTOINCREMENT,
  at   TEXT NOT NULL,
  type TEXT NOT NULL CHECK (type IN ('revision', 'rotate', 'revoke')),
  body TEXT NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS audit (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  at          TEXT NOT NULL,
  actor       TEXT NOT NULL,
  action      TEXT NOT NULL,
  object_type TEXT NOT NULL,
  object_id   TEXT NOT NULL,
  before      TEXT NOT NULL,
  after       TEXT NOT NULL,
  detail      TEXT NOT NULL
) STRICT;
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE IF NOT EXISTS stats (
  host_id TEXT NOT NULL,
  boot_id TEXT NOT NULL,
  at      TEXT NOT NULL,
  body    TEXT NOT NULL,
  PRIMARY KEY (host_id, boot_id)
) STRICT;
`;

interface ObjectRow {
  kind: string;
  id: string;
  parent: string;
  pos: number;
  revision: number;
  body: string;
}

function toObject(r: ObjectRow): StoredObject {
  return { kind: r.kind as ObjectKind, id: r.id, parent: r.parent, pos: r.pos, revision: r.revision, body: JSON.parse(r.body) as Record<string, unknown> };
}

export class SqliteManagerStore implements ManagerStore {
  readonly kind = 'sqlite';
  readonly file: string;
  readonly #db: Database.Database;
  readonly #tx: ManagerStoreTx;
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(file: string) {
    this.file = file;
    // Owner-only: the audit log names every administrator and every change.
    if (file !== ':memory:') createOwnerOnlyFile(file);
    this.#db = openSqlite(file);
    makeDurable(this.#db);
    this.#db.pragma('busy_timeout = 10000');
    migrateSchema(this.#db, file, SCHEMA, SCHEMA_VERSION);
    this.#tx = this.#makeTx();
  }

  #makeTx(): ManagerStoreTx {
    const db = this.#db;
    const st = {
      getMeta: db.prepare('SELECT value FROM meta WHERE name = ?'),
      setMeta: db.prepare('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value'),
      get: db.prepare('SELECT * FROM objects WHERE kind = ? AND id = ?'),
      list: db.prepare('SELECT * FROM objects WHERE kind = ? ORDER BY parent, pos, id'),
      listParent: db.prepare('SELECT * FROM objects WHERE kind = ? AND parent = ? ORDER BY pos, id'),
      count: db.prepare('SELECT count(*) AS n FROM objects WHERE kind = ?'),
      put: db.prepare(`INSERT INTO objects (kind, id, parent, pos, revision, body) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (kind, id) DO UPDATE SET parent = excluded.parent, pos = excluded.pos, revision = excluded.revision, body = excluded.body`),
      del: db.prepare('DELETE FROM objects WHERE kind = ? AND id = ?'),
      delAll: db.prepare('DELETE FROM objects WHERE kind = ?'),
      insRev: db.prepare('INSERT INTO revisions (number, published_at, published_by, origin, source, body) VALUES (?, ?, ?, ?, ?, ?)'),
      getRev: db.prepare('SELECT * FROM revisions WHERE number = ?'),
      lastRev: db.prepare('SELECT * FROM revisions ORDER BY number DESC LIMIT 1'),
      listRev: db.prepare('SELECT number, published_at, published_by, origin, source FROM revisions WHERE number < ? ORDER BY number DESC LIMIT ?'),
      countRev: db.prepare('SELECT count(*) AS n FROM revisions'),
      addFeed: db.prepare('INSERT INTO feed (at, type, body) VALUES (?, ?, ?)'),
      listFeed: db.prepare('SELECT * FROM feed WHERE seq > ? ORDER BY seq LIMIT ?'),
      lastFeed: db.prepare('SELECT coalesce(max(seq), 0) AS s FROM feed'),
      addAudit: db.prepare('INSERT INTO audit (at, actor, action, object_type, object_id, before, after, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      listAudit: db.prepare('SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?'),
      putStats: db.prepare(`INSERT INTO stats (host_id, boot_id, at, body) VALUES (?, ?, ?, ?)
        ON CONFLICT (host_id, boot_id) DO UPDATE SET at = excluded.at, body = excluded.body`),
      listStats: db.prepare('SELECT * FROM stats ORDER BY host_id, boot_id'),
      pruneStats: db.prepare('DELETE FROM stats WHERE host_id = ? AND rowid NOT IN (SELECT rowid FROM stats WHERE host_id = ? ORDER BY rowid DESC LIMIT ?)'),
    };
    return {
      getMeta: async (name) => (st.getMeta.get(name) as { value: string } | undefined)?.value,
      setMeta: async (name, value) => {
        st.setMeta.run(name, value);
      },
      get: async (kind, id) => {
        const r = st.get.get(kind, id) as ObjectRow | undefined;
        return r ? toObject(r) : undefined;
      },
      list: async (kind, parent) => ((parent === undefined ? st.list.all(kind) : st.listParent.all(kind, parent)) as ObjectRow[]).map(toObject),
      count: async (kind) => (st.count.get(kind) as { n: number }).n,
      put: async (o) => {
        st.put.run(o.kind, o.id, o.parent, o.pos, o.revision, JSON.stringify(o.body));
      },
      delete: async (kind, id) => st.del.run(kind, id).changes === 1,
      deleteAll: async (kind) => {
        st.delAll.run(kind);
      },
      insertRevision: async (r) => {
        st.insRev.run(r.number, r.published_at, r.published_by, r.origin, r.source, r.body);
      },
      getRevision: async (n) => st.getRev.get(n) as RevisionRow | undefined,
      latestRevision: async () => st.lastRev.get() as RevisionRow | undefined,
      listRevisions: async (limit, before) => st.listRev.all(before ?? Number.MAX_SAFE_INTEGER, limit) as Omit<RevisionRow, 'body'>[],
      countRevisions: async () => (st.countRev.get() as { n: number }).n,
      appendFeed: async (type, at, body) => Number(st.addFeed.run(at, type, JSON.stringify(body)).lastInsertRowid),
      listFeed: async (after, limit) =>
        (st.listFeed.all(after, limit) as { seq: number; at: string; type: string; body: string }[]).map((r) => ({
          seq: r.seq,
          at: r.at,
          type: r.type as FeedRow['type'],
          body: JSON.parse(r.body) as Record<string, unknown>,
        })),
      latestFeedSeq: async () => (st.lastFeed.get() as { s: number }).s,
      appendAudit: async (e: AuditInput) =>
        Number(
          st.addAudit.run(e.at, e.actor, e.action, e.object_type, e.object_id, JSON.stringify(e.before ?? null), JSON.stringify(e.after ?? null), JSON.stringify(e.detail ?? {}))
            .lastInsertRowid,
        ),
      listAudit: async (sinceId, limit) =>
        (st.listAudit.all(sinceId, limit) as Array<Record<string, string | number>>).map(
          (r): AuditEntry => ({
            id: r.id as number,
            at: r.at as string,
            actor: r.actor as string,
            action: r.action as string,
            object_type: r.object_type as string,
            object_id: r.object_id as string,
            before: JSON.parse(r.before as string),
            after: JSON.parse(r.after as string),
            detail: JSON.parse(r.detail as string) as Record<string, unknown>,
          }),
        ),
      putStats: async (r: StatsRow) => {
        st.putStats.run(r.host_id, r.boot_id, r.at, r.body);
      },
      pruneStats: async (hostId: string, keep: number) => st.pruneStats.run(hostId, hostId, keep).changes,
      listStats: async () => st.listStats.all() as StatsRow[],
    };
  }

  #run<T>(begin: string, fn: (tx: ManagerStoreTx) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new DneError(ErrorCodes.store, 'the manager store is closed'));
    const result = this.#tail.then(async () => {
      if (this.#closed) throw new DneError(ErrorCodes.store, 'the manager store is closed');
      return unitOfWork(this.#db, begin, this.#tx, fn);
    });
    this.#tail = result.catch(() => undefined);
    return result;
  }

  read<T>(fn: (tx: ManagerStoreTx) => Promise<T>): Promise<T> {
    return this.#run('BEGIN', fn);
  }

  write<T>(fn: (tx: ManagerStoreTx) => Promise<T>): Promise<T> {
    return this.#run('BEGIN IMMEDIATE', fn);
  }

  async integrityCheck(): Promise<string> {
    await this.#tail;
    return (this.#db.pragma('integrity_check', { simple: true }) as string) ?? 'unknown';
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#tail;
    this.#closed = true;
    this.#db.close();
  }
}
