/**
 * The key manager's storage contract. The service (service.ts) holds every
 * rule; a backend only stores rows and runs a unit of work atomically:
 * `write(fn)` is one serialisable transaction that commits only if `fn`
 * resolves, and nothing is acknowledged to a client before it committed.
 * SQLite (sqlite-store.ts) is the embedded default; a PostgreSQL backend
 * implements the same interface with BEGIN ISOLATION LEVEL SERIALIZABLE …
 * COMMIT around `fn`, and the sender-ID counter as one
 * `UPDATE … SET next = next + n … RETURNING` (DESIGN §8).
 */
import { createHash } from 'node:crypto';

export const ALGORITHMS = ['AES_GCM_128', 'AES_GCM_256'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];
export const KEY_BYTES: Record<Algorithm, number> = { AES_GCM_128: 16, AES_GCM_256: 32 };
/** RFC 4106 §8.1: the 4-byte salt that completes the nonce. */
export const SALT_BYTES = 4;

/** States as stored. `expired` is also computed at read time from notAfter. */
export type StoredState = 'active' | 'retired' | 'revoked' | 'expired';

export interface KeyRow {
  keyId: string;
  policyId: string;
  algorithm: Algorithm;
  state: StoredState;
  senderIdBits: number;
  /** Unix milliseconds, or null when unbounded. */
  notBefore: number | null;
  notAfter: number | null;
  createdAt: number;
  createdBy: string;
  retiredAt: number | null;
  revokedAt: number | null;
  revokeReason: string | null;
  expiredAt: number | null;
  /** Id of the master key that sealed `sealed`. */
  masterKeyId: string;
  /** key ‖ salt sealed under the master key (master-key.ts). Never leaves the process. */
  sealed: Buffer;
}

export interface SenderRange {
  start: number;
  /** Exclusive. */
  end: number;
}

export interface RegisteredRange extends SenderRange {
  instanceId: string;
  bits: number;
  registeredAt: number;
}

export type AuditOutcome = 'ok' | 'refused' | 'error';

export interface AuditInput {
  at: number;
  /** dne://role/name of the peer, or a description of an unidentified one. */
  actor: string;
  action: string;
  outcome: AuditOutcome;
  policyId?: string | null;
  keyIds?: string[];
  /** Never key bytes, salts, grants or master keys. */
  detail?: Record<string, unknown>;
}

export interface AuditEntry extends Required<Omit<AuditInput, 'detail'>> {
  id: number;
  detail: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export const AUDIT_GENESIS = '0'.repeat(64);

/**
 * The audit log is a hash chain: each entry commits to its content and to the
 * previous entry's hash, so an edited, removed or reordered entry is visible
 * (verifyAuditChain). The chain is the same for every backend.
 */
export function auditHash(prevHash: string, e: AuditInput): string {
  const canonical = JSON.stringify([
    e.at,
    e.actor,
    e.action,
    e.outcome,
    e.policyId ?? null,
    e.keyIds ?? [],
    e.detail ?? {},
  ]);
  return createHash('sha256').update(prevHash).update('\n').update(canonical).digest('hex');
}

/** Returns the id of the first entry that breaks the chain, or null. `entries` must start at the genesis. */
export function verifyAuditChain(entries: AuditEntry[]): number | null {
  let prev = AUDIT_GENESIS;
  for (const e of entries) {
    if (e.prevHash !== prev || auditHash(prev, e) !== e.hash) return e.id;
    prev = e.hash;
  }
  return null;
}

export interface ListKeysFilter {
  policyId?: string;
  /** Keyset cursor: keys created after this one (in list order). */
  afterKeyId?: string;
  limit: number;
}

/** One unit of work. Methods are only valid inside the `read`/`write` call that handed out the tx. */
export interface KeyStoreTx {
  getMeta(name: string): Promise<string | undefined>;
  setMeta(name: string, value: string): Promise<void>;

  getKey(keyId: string): Promise<KeyRow | undefined>;
  /** Ordered by creation (oldest first), then keyId. */
  listKeys(filter: ListKeysFilter): Promise<KeyRow[]>;
  keysOfPolicy(policyId: string): Promise<KeyRow[]>;
  /** Keys whose stored state is active or retired and whose notAfter is at or before `now`. */
  keysToExpire(now: number): Promise<KeyRow[]>;
  countKeys(): Promise<number>;
  insertKey(row: KeyRow): Promise<void>;
  setState(keyId: string, state: StoredState, at: number, reason?: string | null): Promise<void>;
  /** Replaces the sealed material (master-key rewrap). */
  setSealed(keyId: string, sealed: Buffer, masterKeyId: string): Promise<void>;

  /**
   * Takes `count` consecutive sender IDs for `keyId` from `range`, persisting
   * the counter before returning. Null when the range has fewer than `count` left.
   */
  allocateSenderIds(keyId: string, range: SenderRange, count: number): Promise<number[] | null>;
  /** The counters of `range`, one per key that got IDs from it: the next unallocated ID. */
  senderCounters(range: SenderRange): Promise<{ keyId: string; next: number }[]>;
  /** Raises the key's counter in `range` to `next`, never lowers it (`range.end`: no more IDs from this range). */
  raiseSenderCounter(keyId: string, range: SenderRange, next: number): Promise<void>;
  listSenderRanges(): Promise<RegisteredRange[]>;
  addSenderRange(r: RegisteredRange): Promise<void>;

  appendAudit(e: AuditInput): Promise<AuditEntry>;
  /** Entries with id > sinceId, oldest first. */
  listAudit(sinceId: number, limit: number): Promise<AuditEntry[]>;
}

export interface KeyStore {
  readonly kind: string;
  /** A consistent snapshot for reads. */
  read<T>(fn: (tx: KeyStoreTx) => Promise<T>): Promise<T>;
  /** One atomic, durable transaction; rolled back if `fn` throws. */
  write<T>(fn: (tx: KeyStoreTx) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
