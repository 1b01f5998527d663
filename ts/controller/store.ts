/**
 * The controller's own state that must survive a restart (issue #6): the
 * feed cursor, the last handled revision, every key it asked for with its
 * rollover phase and SPIs, the SPI counter, the hosts' acknowledgements and
 * the number of the latest config version per host (with the hash of its
 * content, so a restarted controller keeps numbering where it was and sends
 * nothing to a host whose config did not change).
 *
 * One SQLite file (better-sqlite3) in WAL mode with synchronous=FULL, created
 * 0600; each change is one transaction. The controller never holds key bytes,
 * so nothing in here is secret, but the file says which host may have which
 * key and is kept private anyway.
 */
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DneError, ErrorCodes } from '../common/errors';
import { createOwnerOnlyFile, makeDurable, META_TABLE } from '../common/sqlite';
import type { Revision } from '../common/policy-model';

/**
 * A key's place in the two-phase rollover (DESIGN §5):
 * receive (receivers install it) → active (senders use it) → retiring
 * (receive-only for the rekey margin) → removed; or revoked at any point.
 */
export type KeyPhase = 'receive' | 'active' | 'retiring' | 'removed' | 'revoked';

export interface KeyRecord {
  keyId: string;
  policyId: string;
  algorithm: string;
  phase: KeyPhase;
  /** One SPI per (key, mode), DESIGN §3; both are allocated so a policy's type change never reuses one. */
  spiGcm: number;
  spiGmac: number;
  /** Unix ms. */
  notBefore: number;
  /** Unix ms; null: the policy's lifetime is 0 (no expiry). */
  notAfter: number | null;
  createdAt: number;
  /** When the key entered its current phase (unix ms). */
  phaseSince: number;
  activatedAt: number | null;
  /** For retiring keys: when they are removed (phaseSince + rekey margin). */
  removeAt: number | null;
  /** Why the key left the receive phase: 'acks', 'timeout', 'replacement' (after a revocation), 'first'. */
  activatedBy: string | null;
  /** Hosts that had not acknowledged when the ack timeout activated the key. */
  timedOutHosts: string[];
  /**
   * The ESP mode the key was made for (its policy's encrypt_type then); it
   * keeps it for life (DESIGN §3). Null: stored before modes were recorded.
   */
  mode?: 'gcm' | 'gmac' | null;
}

export interface AckRecord {
  hostId: string;
  version: number;
  keyIds: string[];
  at: number;
}

export interface HostVersionRecord {
  hostId: string;
  version: number;
  hash: string;
  revision: number;
  createdAt: number;
}

/** RFC 4303 §2.1 reserves SPIs 0-255. */
export const FIRST_SPI = 256;
const SCHEMA_VERSION = '1';

const SCHEMA = `${META_TABLE}CREATE TABLE IF NOT EXISTS keys (
  key_id        TEXT PRIMARY KEY,
  policy_id     TEXT NOT NULL,
  algorithm     TEXT NOT NULL,
  phase         TEXT NOT NULL CHECK (phase IN ('receive', 'active', 'retiring', 'removed', 'revoked')),
  spi_gcm       INTEGER NOT NULL UNIQUE CHECK (spi_gcm >= 256),
  spi_gmac      INTEGER NOT NULL UNIQUE CHECK (spi_gmac >= 256),
  not_before    INTEGER NOT NULL,
  not_after     INTEGER,
  created_at    INTEGER NOT NULL,
  phase_since   INTEGER NOT NULL,
  activated_at  INTEGER,
  remove_at     INTEGER,
  activated_by  TEXT,
  timed_out     TEXT NOT NULL DEFAULT '[]',
  seq           INTEGER NOT NULL UNIQUE,
  mode          TEXT CHECK (mode IN ('gcm', 'gmac'))
) STRICT;
CREATE INDEX IF NOT EXISTS keys_by_policy ON keys (policy_id, seq);
CREATE TABLE IF NOT EXISTS acks (
  host_id  TEXT PRIMARY KEY,
  version  INTEGER NOT NULL,
  key_ids  TEXT NOT NULL,
  at       INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS host_versions (
  host_id    TEXT PRIMARY KEY,
  version    INTEGER NOT NULL,
  hash       TEXT NOT NULL,
  revision   INTEGER NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;
`;

interface KeyRow {
  key_id: string;
  policy_id: string;
  algorithm: string;
  phase: KeyPhase;
  spi_gcm: number;
  spi_gmac: number;
  not_before: number;
  not_after: number | null;
  created_at: number;
  phase_since: number;
  activated_at: number | null;
  remove_at: number | null;
  activated_by: string | null;
  timed_out: string;
  mode: 'gcm' | 'gmac' | null;
}

function fromRow(r: KeyRow): KeyRecord {
  return {
    keyId: r.key_id,
    policyId: r.policy_id,
    algorithm: r.algorithm,
    phase: r.phase,
    spiGcm: r.spi_gcm,
    spiGmac: r.spi_gmac,
    notBefore: r.not_before,
    notAfter: r.not_after,
    createdAt: r.created_at,
    phaseSince: r.phase_since,
    activatedAt: r.activated_at,
    removeAt: r.remove_at,
    activatedBy: r.activated_by,
    timedOutHosts: JSON.parse(r.timed_out) as string[],
    mode: r.mode ?? null,
  };
}

export class ControllerStore {
  private readonly db: Database.Database;

  constructor(readonly file: string) {
    const dir = path.dirname(file);
    if (!fs.existsSync(dir)) throw new DneError(ErrorCodes.config, `the folder of the controller database ${file} does not exist`);
    // Create the file 0600 before SQLite opens it (SQLite would use the umask).
    createOwnerOnlyFile(file);
    try {
      this.db = new Database(file);
    } catch (err) {
      if (/Could not locate the bindings file|was compiled against/.test((err as Error).message)) {
        throw new DneError(ErrorCodes.store, "better-sqlite3's native module is not built: run npm rebuild better-sqlite3");
      }
      throw new DneError(ErrorCodes.store, `cannot open the controller database ${file}: ${(err as Error).message}`);
    }
    makeDurable(this.db);
    this.db.pragma('busy_timeout = 10000');
    this.db.exec(SCHEMA);
    const v = this.getMeta('schema_version');
    if (v === undefined) this.setMeta('schema_version', SCHEMA_VERSION);
    else if (v !== SCHEMA_VERSION) throw new DneError(ErrorCodes.store, `${file} has controller schema version ${v}; this build knows ${SCHEMA_VERSION}`);
    // Databases from before keys had a mode: add the column (null: the service pins it).
    if (!(this.db.pragma('table_info(keys)') as Array<{ name: string }>).some((c) => c.name === 'mode')) {
      this.db.exec("ALTER TABLE keys ADD COLUMN mode TEXT CHECK (mode IN ('gcm', 'gmac'))");
    }
    for (const f of [file, `${file}-wal`, `${file}-shm`]) if (fs.existsSync(f)) fs.chmodSync(f, 0o600);
  }

  /** Runs `fn` in one IMMEDIATE transaction: all of it is committed, or none. */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  getMeta(name: string): string | undefined {
    const r = this.db.prepare('SELECT value FROM meta WHERE name = ?').get(name) as { value: string } | undefined;
    return r?.value;
  }

  setMeta(name: string, value: string): void {
    this.db.prepare('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value').run(name, value);
  }

  feedCursor(): number {
    return Number(this.getMeta('feed_cursor') ?? '0');
  }

  setFeedCursor(seq: number): void {
    this.setMeta('feed_cursor', String(seq));
  }

  revision(): Revision | null {
    const t = this.getMeta('revision');
    return t === undefined ? null : (JSON.parse(t) as Revision);
  }

  setRevision(rev: Revision): void {
    this.setMeta('revision', JSON.stringify(rev));
  }

  counter(name: string): number {
    return Number(this.getMeta(`counter.${name}`) ?? '0');
  }

  addCounter(name: string, n: number): void {
    this.setMeta(`counter.${name}`, String(this.counter(name) + n));
  }

  /**
   * Two fresh SPIs (GCM and GMAC) for a new key: a persisted counter from 256
   * upwards, never reused, also not after a key is removed (a late packet
   * under a reused SPI would be opened with the wrong key's SA).
   */
  allocateSpis(): { spiGcm: number; spiGmac: number } {
    const next = Number(this.getMeta('next_spi') ?? String(FIRST_SPI));
    if (next + 1 > 0xffffffff) throw new DneError(ErrorCodes.store, 'the 32-bit SPI space is used up');
    this.setMeta('next_spi', String(next + 2));
    return { spiGcm: next, spiGmac: next + 1 };
  }

  keys(): KeyRecord[] {
    return (this.db.prepare('SELECT * FROM keys ORDER BY seq').all() as KeyRow[]).map(fromRow);
  }

  insertKey(k: KeyRecord): void {
    const seq = (this.db.prepare('SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM keys').get() as { n: number }).n;
    this.db
      .prepare(
        `INSERT INTO keys (key_id, policy_id, algorithm, phase, spi_gcm, spi_gmac, not_before, not_after, created_at, phase_since,
           activated_at, remove_at, activated_by, timed_out, seq, mode) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(k.keyId, k.policyId, k.algorithm, k.phase, k.spiGcm, k.spiGmac, k.notBefore, k.notAfter, k.createdAt, k.phaseSince, k.activatedAt, k.removeAt, k.activatedBy, JSON.stringify(k.timedOutHosts), seq, k.mode ?? null);
  }

  updateKey(k: KeyRecord): void {
    this.db
      .prepare('UPDATE keys SET phase = ?, phase_since = ?, activated_at = ?, remove_at = ?, activated_by = ?, timed_out = ?, mode = ? WHERE key_id = ?')
      .run(k.phase, k.phaseSince, k.activatedAt, k.removeAt, k.activatedBy, JSON.stringify(k.timedOutHosts), k.mode ?? null, k.keyId);
  }

  acks(): AckRecord[] {
    return (this.db.prepare('SELECT host_id, version, key_ids, at FROM acks').all() as Array<{ host_id: string; version: number; key_ids: string; at: number }>).map(
      (r) => ({ hostId: r.host_id, version: r.version, keyIds: JSON.parse(r.key_ids) as string[], at: r.at }),
    );
  }

  /**
   * Many acknowledgements in one transaction, committed without an fsync
   * (synchronous=NORMAL for this transaction only): in WAL mode the commit
   * survives a crash of the controller process, and only an OS crash or
   * power loss can lose the last acks. Losing an ack can only delay a
   * rollover (the barrier waits for that host again, or for the timeout),
   * never activate a key early; an fsync per burst of acks, on the event
   * loop, delayed every other agent's config by as much.
   */
  saveAcks(acks: AckRecord[]): void {
    const st = this.db.prepare(
      'INSERT INTO acks (host_id, version, key_ids, at) VALUES (?, ?, ?, ?) ON CONFLICT (host_id) DO UPDATE SET version = excluded.version, key_ids = excluded.key_ids, at = excluded.at',
    );
    this.db.pragma('synchronous = NORMAL');
    try {
      this.tx(() => {
        for (const a of acks) st.run(a.hostId, a.version, JSON.stringify(a.keyIds), a.at);
      });
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  hostVersions(): HostVersionRecord[] {
    return (this.db.prepare('SELECT host_id, version, hash, revision, created_at FROM host_versions').all() as Array<{
      host_id: string;
      version: number;
      hash: string;
      revision: number;
      created_at: number;
    }>).map((r) => ({ hostId: r.host_id, version: r.version, hash: r.hash, revision: r.revision, createdAt: r.created_at }));
  }

  saveHostVersions(v: HostVersionRecord[]): void {
    const st = this.db.prepare(
      `INSERT INTO host_versions (host_id, version, hash, revision, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (host_id) DO UPDATE SET version = excluded.version, hash = excluded.hash, revision = excluded.revision, created_at = excluded.created_at`,
    );
    this.tx(() => {
      for (const r of v) st.run(r.hostId, r.version, r.hash, r.revision, r.createdAt);
    });
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
