/**
 * The manager's storage contract (issue #5). The service (service.ts) holds
 * every rule; a backend stores rows and runs a unit of work atomically:
 * `write(fn)` is one serialisable transaction that commits only if `fn`
 * resolves, and nothing is acknowledged to a client before it committed.
 * SQLite (sqlite-store.ts) is the embedded default; a PostgreSQL backend
 * implements the same interface with BEGIN ISOLATION LEVEL SERIALIZABLE …
 * COMMIT around `fn`, `objects` as one table keyed by (kind, id) with JSONB
 * bodies, and the feed/audit sequences as BIGSERIAL columns (DESIGN §8).
 *
 * Objects are stored as JSON documents with a few columns the store must
 * understand: kind and id (the key), parent (a rule's section) and pos (the
 * order of sections, and of rules within a section).
 */

/** The kinds of editable object; `config` has the single id "global". */
export const OBJECT_KINDS = ['key_manager', 'key_policy', 'section', 'rule', 'group', 'ip_set', 'host', 'workload', 'config'] as const;
export type ObjectKind = (typeof OBJECT_KINDS)[number];

export interface StoredObject {
  kind: ObjectKind;
  id: string;
  /** A rule's section id; '' for every other kind. */
  parent: string;
  /** Order among siblings (sections; rules of one section); 0 for unordered kinds. */
  pos: number;
  /** Optimistic-concurrency counter (NSX `_revision`): 0 at creation, +1 at every change. */
  revision: number;
  body: Record<string, unknown>;
}

export interface RevisionRow {
  number: number;
  published_at: string;
  published_by: string;
  /** publish | rollback | auto (inventory change) */
  origin: 'publish' | 'rollback' | 'auto';
  /** For a rollback, the revision rolled back to. */
  source: number | null;
  /** The Revision JSON (ts/common/policy-model.ts). */
  body: string;
}

export interface FeedRow {
  seq: number;
  at: string;
  type: 'revision' | 'rotate' | 'revoke';
  /** revision: { revision: n }; rotate/revoke: the event's other fields. */
  body: Record<string, unknown>;
}

export interface AuditInput {
  at: string;
  /** dne://role/name of a certificate peer, or token:NAME for a bearer-token admin. */
  actor: string;
  action: string;
  object_type: string;
  object_id: string;
  before: unknown;
  after: unknown;
  detail?: Record<string, unknown>;
}

export interface AuditEntry extends AuditInput {
  id: number;
  detail: Record<string, unknown>;
}

export interface StatsRow {
  host_id: string;
  boot_id: string;
  at: string;
  body: string;
}

/** One unit of work. Methods are only valid inside the `read`/`write` call that handed out the tx. */
export interface ManagerStoreTx {
  getMeta(name: string): Promise<string | undefined>;
  setMeta(name: string, value: string): Promise<void>;

  get(kind: ObjectKind, id: string): Promise<StoredObject | undefined>;
  /** Every object of a kind, ordered by (parent, pos, id); with `parent`, only its children. */
  list(kind: ObjectKind, parent?: string): Promise<StoredObject[]>;
  count(kind: ObjectKind): Promise<number>;
  /** Inserts or replaces (by kind and id). */
  put(o: StoredObject): Promise<void>;
  /** Deletes one object; false when it did not exist. */
  delete(kind: ObjectKind, id: string): Promise<boolean>;
  /** Deletes every object of a kind (a rollback replaces the draft). */
  deleteAll(kind: ObjectKind): Promise<void>;

  insertRevision(r: RevisionRow): Promise<void>;
  getRevision(n: number): Promise<RevisionRow | undefined>;
  latestRevision(): Promise<RevisionRow | undefined>;
  /** Newest first, without bodies. */
  listRevisions(limit: number, before?: number): Promise<Omit<RevisionRow, 'body'>[]>;
  countRevisions(): Promise<number>;

  appendFeed(type: FeedRow['type'], at: string, body: Record<string, unknown>): Promise<number>;
  listFeed(after: number, limit: number): Promise<FeedRow[]>;
  latestFeedSeq(): Promise<number>;

  appendAudit(e: AuditInput): Promise<number>;
  /** Entries with id > sinceId, oldest first. */
  listAudit(sinceId: number, limit: number): Promise<AuditEntry[]>;

  /** The latest report of (host, boot): replaces the previous one of that boot. */
  putStats(r: StatsRow): Promise<void>;
  /**
   * Deletes the host's reports except those of its `keep` newest boots (by
   * when each boot first reported); returns how many went. Bounds
   * what one host can store (a new boot_id at every report).
   */
  pruneStats(hostId: string, keep: number): Promise<number>;
  listStats(): Promise<StatsRow[]>;
}

export interface ManagerStore {
  readonly kind: string;
  /** A consistent snapshot for reads. */
  read<T>(fn: (tx: ManagerStoreTx) => Promise<T>): Promise<T>;
  /** One atomic, durable transaction; rolled back if `fn` throws. */
  write<T>(fn: (tx: ManagerStoreTx) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
