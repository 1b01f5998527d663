/**
 * The key manager's rules (DESIGN §1, §3, §5), independent of HTTP:
 *
 *  - who may do what: only the controller creates, rotates and revokes keys
 *    (it runs the rollover barrier and must know every key's state: a key
 *    changed behind its back, e.g. revoked, would stay in host configs);
 *    controller/manager/admin read metadata; only a host holding a valid
 *    grant that names it gets key bytes; only admin reads the audit log;
 *  - key lifecycle per key policy: create (one active key per policy), rotate
 *    (new active key, previous one retired), revoke, expire (notAfter passed);
 *  - release: grant checks, then per key fresh sender IDs from this
 *    instance's range (RFC 6407 §3.5, RFC 6054), persisted in the same
 *    transaction as the audit record, before anything is returned;
 *  - every change and every refusal goes to the append-only audit log,
 *    without key bytes.
 *
 * Each public method is one store transaction: an error rolls everything
 * back, then the refusal is audited in a transaction of its own.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { DneError, ErrorCodes } from '../common/errors';
import { GrantError, TrustedGrantKey, verifyGrant } from '../common/grant';
import { HttpError, httpError, statusOf } from '../common/http-errors';
import { Identity, identityUri, Role } from '../common/identity';
import { highWaterMark, HighWaterMarks, highWaterMarkFile, SenderHighWaterMark, sequenceMetaName } from './high-water-mark';
import { keyAad, MasterKey } from './master-key';
import {
  Algorithm,
  ALGORITHMS,
  AuditEntry,
  AuditInput,
  KEY_BYTES,
  KeyRow,
  KeyStore,
  KeyStoreTx,
  SALT_BYTES,
  SenderRange,
  StoredState,
} from './store';

// Not "." or ".." alone: clients normalise those away in URL paths.
export const POLICY_ID_PATTERN = '^(?!\\.{1,2}$)[A-Za-z0-9._:-]{1,128}$';
const POLICY_ID_RE = new RegExp(POLICY_ID_PATTERN);
export const MAX_RELEASE_COUNT = 64;
export const SENDER_ID_BITS = [8, 16, 24, 32] as const;

export interface KeyManagerSettings {
  /** This instance's name: its audit actor is dne://keymanager/<instanceId>, and its sender-ID range is registered under it. */
  instanceId: string;
  senderIdBits: number;
  senderRange: SenderRange;
  grantKeys: TrustedGrantKey[];
  grantMaxLifetimeSeconds: number;
  grantClockSkewSeconds: number;
  /**
   * The sender-ID high-water-mark file (rollback guard, high-water-mark.ts).
   * Default: `<database>.<instanceId>.hwm` for a store with a database file;
   * null: none (a store in memory).
   */
  highWaterMarkFile?: string | null;
  /**
   * Start on a database that is behind its high-water mark (restored from a
   * backup) or has allocations but no file (copied): counters are raised past
   * the file's values first. An operator's one-off decision, never a default.
   */
  acceptRestoredStore?: boolean;
}

/** The authenticated TLS peer of a request (or a trusted in-process caller). */
export interface Peer extends Identity {
  remoteAddress?: string;
}

export type KeyState = StoredState;

export interface KeyMetadata {
  keyId: string;
  policyId: string;
  algorithm: Algorithm;
  state: KeyState;
  senderIdBits: number;
  notBefore: string | null;
  notAfter: string | null;
  createdAt: string;
  createdBy: string;
  retiredAt: string | null;
  revokedAt: string | null;
  revokeReason: string | null;
}

export interface ReleasedKey {
  keyId: string;
  policyId: string;
  algorithm: Algorithm;
  /** base64 */
  key: string;
  /** base64 */
  salt: string;
  senderIds: number[];
  senderIdBits: number;
  state: KeyState;
  notBefore: string | null;
  notAfter: string | null;
}

export interface CreateKeyInput {
  policyId: string;
  algorithm: Algorithm;
  /** Unix ms */
  notBefore?: number;
  notAfter?: number;
}

export interface RotateInput {
  algorithm?: Algorithm;
  notBefore?: number;
  notAfter?: number;
}

export interface ReleaseInput {
  grant?: string;
  keyIds?: string[];
  count: number;
}

/** Roles that may read key metadata. */
const READERS: Role[] = ['controller', 'manager', 'admin'];
/**
 * Roles that may change keys: the controller alone. It holds the two-phase
 * rollover state (DESIGN §5) and never learns of a change made by anyone
 * else; operators act through the manager, whose feed reaches the controller.
 */
const WRITERS: Role[] = ['controller'];

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** Marks an error as already written to the audit log, so the HTTP layer does not write it twice. */
export const AUDITED = Symbol('dne.audited');

function rangesOverlap(a: SenderRange, b: SenderRange): boolean {
  return a.start < b.end && b.start < a.end;
}

export function validateSettings(s: KeyManagerSettings): void {
  const bad = (m: string) => new DneError(ErrorCodes.config, m);
  if (!(SENDER_ID_BITS as readonly number[]).includes(s.senderIdBits)) throw bad(`senderIdBits must be one of ${SENDER_ID_BITS.join(', ')}`);
  const { start, end } = s.senderRange;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end <= start || end > 2 ** s.senderIdBits) {
    throw bad(`the sender-ID range [${start}, ${end}) must satisfy 0 <= start < end <= 2^${s.senderIdBits}`);
  }
  if (s.grantKeys.length === 0) throw bad('at least one trusted grant key (the controllers\' Ed25519 public keys) is required');
  if (!Number.isInteger(s.grantMaxLifetimeSeconds) || s.grantMaxLifetimeSeconds < 1) throw bad('grantMaxLifetimeSeconds must be a positive integer');
  if (!Number.isInteger(s.grantClockSkewSeconds) || s.grantClockSkewSeconds < 0) throw bad('grantClockSkewSeconds must be a non-negative integer');
}

/** The high-water-mark file of a store with a database file, else null. */
function defaultHighWaterMarkFile(store: KeyStore, instanceId: string): string | null {
  const file = (store as { file?: unknown }).file;
  return typeof file === 'string' && file !== '' && file !== ':memory:' ? highWaterMarkFile(file, instanceId) : null;
}

export class KeyService {
  readonly actor: string;
  /** Null when the store has no file next to which it could live (in memory). */
  readonly highWaterMark: SenderHighWaterMark | null;

  constructor(
    private readonly store: KeyStore,
    private readonly master: MasterKey,
    readonly settings: KeyManagerSettings,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    validateSettings(settings);
    this.actor = identityUri({ role: 'keymanager', name: settings.instanceId });
    const hwm = settings.highWaterMarkFile === undefined ? defaultHighWaterMarkFile(store, settings.instanceId) : settings.highWaterMarkFile;
    this.highWaterMark = hwm ? highWaterMark(path.resolve(hwm), settings.instanceId, settings.senderRange) : null;
  }

  /**
   * Before serving: the master key must be the one the database was sealed
   * with, and this instance's sender-ID range must not overlap any range
   * another instance (or an earlier configuration of this one) registered in
   * the same store — overlapping ranges would hand one sender ID to two hosts.
   */
  async start(): Promise<void> {
    const marks = await this.store.write(async (tx) => {
      const mk = await tx.getMeta('master_key_id');
      if (mk === undefined) {
        if ((await tx.countKeys()) > 0) throw new DneError(ErrorCodes.store, 'the database holds keys but records no master key id');
        await tx.setMeta('master_key_id', this.master.id);
      } else if (mk !== this.master.id) {
        throw new DneError(
          ErrorCodes.masterKey,
          `the master key (id ${this.master.id}) is not the one this database's keys are sealed with (id ${mk}); use the right key or 'dne keymanager rewrap'`,
        );
      }
      const mine = this.settings.senderRange;
      let registered = false;
      for (const r of await tx.listSenderRanges()) {
        const same = r.instanceId === this.settings.instanceId && r.start === mine.start && r.end === mine.end;
        if (same) {
          if (r.bits !== this.settings.senderIdBits) {
            throw new DneError(ErrorCodes.config, `instance ${r.instanceId} registered its range with ${r.bits}-bit sender IDs; it is now configured for ${this.settings.senderIdBits}`);
          }
          registered = true;
        } else if (rangesOverlap(r, mine)) {
          throw new DneError(
            ErrorCodes.config,
            `sender-ID range [${mine.start}, ${mine.end}) overlaps [${r.start}, ${r.end}) registered by instance ${r.instanceId} in this store; ranges must be disjoint so no sender ID is handed out twice`,
          );
        }
      }
      if (!registered) {
        await tx.addSenderRange({ instanceId: this.settings.instanceId, ...mine, bits: this.settings.senderIdBits, registeredAt: this.now() });
        await tx.appendAudit({
          at: this.now(),
          actor: this.actor,
          action: 'register-sender-range',
          outcome: 'ok',
          detail: { start: mine.start, end: mine.end, bits: this.settings.senderIdBits },
        });
      }
      return this.checkHighWaterMark(tx);
    });
    // After COMMIT: the file never records more than the database holds (a
    // failed start must not make the next one look restored).
    if (marks) this.highWaterMark!.reset(marks);
    await this.sweepExpired();
  }

  /**
   * The rollback guard (high-water-mark.ts): refuses a database that is
   * behind this instance's high-water mark (restored) or that has
   * allocations in this range but no file (copied), unless the operator
   * accepts it; then raises the counters past what the file records (keys
   * it does not record: to the end of the range) before anything is served.
   * Returns the state to write: the database's counters, without keys that
   * are never released again (revoked, expired).
   */
  private async checkHighWaterMark(tx: KeyStoreTx): Promise<HighWaterMarks | null> {
    const hwm = this.highWaterMark;
    if (!hwm) return null;
    const range = this.settings.senderRange;
    const seqName = sequenceMetaName(this.settings.instanceId);
    const stored = await tx.getMeta(seqName);
    let dbSeq = Number(stored ?? '0');
    const counters = new Map((await tx.senderCounters(range)).map((c) => [c.keyId, c.next]));
    const file = hwm.read();
    let problem: string | null = null;
    if (file === null && stored === undefined) {
      // The first start with the guard (a new database, or one from before
      // it): nothing to compare with. From now on the database says it has a file.
      await tx.setMeta(seqName, '0');
      if (counters.size > 0) this.log.info({ file: hwm.file }, 'sender-ID high-water mark created for an existing database');
    } else if (file === null) {
      if (dbSeq > 0 || counters.size > 0) {
        problem = `the database has sender IDs allocated by instance ${this.settings.instanceId} (${counters.size} key(s)) but its high-water-mark file ${hwm.file} is missing: the database was copied (or the file deleted)`;
      }
    } else {
      const behind = [...file.next].filter(([k, n]) => (counters.get(k) ?? range.start) < n).length;
      if (file.seq > dbSeq || behind > 0) {
        problem = `the database is behind its sender-ID high-water mark ${hwm.file} (allocation ${dbSeq} of ${file.seq}; ${behind} key counter(s) behind): it was restored from a backup or replaced`;
      }
    }
    const keys: KeyRow[] = [];
    for (let after: string | undefined; ; ) {
      const page = await tx.listKeys({ afterKeyId: after, limit: 500 });
      if (page.length === 0) break;
      keys.push(...page);
      after = page[page.length - 1].keyId;
    }
    if (problem) {
      if (!this.settings.acceptRestoredStore) {
        throw new DneError(
          ErrorCodes.store,
          `${problem}. Serving it would hand out again sender IDs that hosts already use (AES-GCM nonce reuse). ` +
            'Rotate every key once it runs (revocations made since the backup are lost too). To start anyway, pass ' +
            "--accept-restored-store: counters are first raised past the file's values, and keys the file does not record get no more sender IDs from this instance.",
        );
      }
      let raised = 0;
      let closed = 0;
      for (const k of keys) {
        const target = file?.next.get(k.keyId) ?? range.end;
        if ((counters.get(k.keyId) ?? range.start) >= target) continue;
        await tx.raiseSenderCounter(k.keyId, range, target);
        counters.set(k.keyId, target);
        if (target === range.end) closed++;
        else raised++;
      }
      const fromSeq = dbSeq;
      dbSeq = Math.max(dbSeq, file?.seq ?? 0) + 1;
      await tx.setMeta(seqName, String(dbSeq));
      await tx.appendAudit({
        at: this.now(),
        actor: this.actor,
        action: 'accept-restored-store',
        outcome: 'ok',
        detail: { file: hwm.file, databaseSeq: fromSeq, fileSeq: file?.seq ?? null, countersRaised: raised, keysClosed: closed },
      });
      this.log.warn(
        { file: hwm.file, databaseSeq: fromSeq, fileSeq: file?.seq ?? null, countersRaised: raised, keysClosed: closed },
        'started on a restored or copied database (--accept-restored-store): sender-ID counters raised; rotate every key',
      );
    }
    const releasable = new Set(keys.filter((k) => k.state === 'active' || k.state === 'retired').map((k) => k.keyId));
    return { seq: dbSeq, next: new Map([...counters].filter(([k]) => releasable.has(k))) };
  }

  // ---- queries -------------------------------------------------------------

  metadata(row: KeyRow): KeyMetadata {
    return {
      keyId: row.keyId,
      policyId: row.policyId,
      algorithm: row.algorithm,
      state: this.effectiveState(row),
      senderIdBits: row.senderIdBits,
      notBefore: iso(row.notBefore),
      notAfter: iso(row.notAfter),
      createdAt: iso(row.createdAt)!,
      createdBy: row.createdBy,
      retiredAt: iso(row.retiredAt),
      revokedAt: iso(row.revokedAt),
      revokeReason: row.revokeReason,
    };
  }

  /** Revoked wins; otherwise a key past notAfter is expired even before the sweep persisted it. */
  effectiveState(row: KeyRow, now = this.now()): KeyState {
    if (row.state === 'revoked' || row.state === 'expired') return row.state;
    if (row.notAfter !== null && row.notAfter <= now) return 'expired';
    return row.state;
  }

  async listKeys(peer: Peer, filter: { policyId?: string; after?: string; limit?: number }): Promise<KeyMetadata[]> {
    return this.guard(peer, 'list', { policyId: filter.policyId }, async () => {
      this.requireRole(peer, READERS, 'list keys');
      const rows = await this.store.read((tx) =>
        tx.listKeys({ policyId: filter.policyId, afterKeyId: filter.after?.toLowerCase(), limit: filter.limit ?? 100 }),
      );
      return rows.map((r) => this.metadata(r));
    });
  }

  async getKey(peer: Peer, keyId: string): Promise<KeyMetadata> {
    const id = keyId.toLowerCase();
    return this.guard(peer, 'get', { keyIds: [id] }, async () => {
      this.requireRole(peer, READERS, 'read key metadata');
      const row = await this.store.read((tx) => tx.getKey(id));
      if (!row) throw httpError('notFound', `key ${id} does not exist`);
      return this.metadata(row);
    });
  }

  async audit(peer: Peer, sinceId: number, limit: number): Promise<AuditEntry[]> {
    return this.guard(peer, 'audit-read', {}, async () => {
      this.requireRole(peer, ['admin'], 'read the audit log');
      return this.store.read((tx) => tx.listAudit(sinceId, limit));
    });
  }

  // ---- lifecycle -----------------------------------------------------------

  async createKey(peer: Peer, input: CreateKeyInput): Promise<KeyMetadata> {
    return this.guard(peer, 'create', { policyId: input.policyId }, async () => {
      this.requireRole(peer, WRITERS, 'create keys');
      this.checkPolicyId(input.policyId);
      this.checkAlgorithm(input.algorithm);
      const now = this.now();
      this.checkValidity(input.notBefore, input.notAfter, now);
      return this.store.write(async (tx) => {
        await this.checkMasterKeyUnchanged(tx);
        await this.expirePolicy(tx, input.policyId, now);
        const active = (await tx.keysOfPolicy(input.policyId)).find((r) => r.state === 'active');
        if (active) {
          throw httpError(
            'conflict',
            `policy ${input.policyId} already has an active key ${active.keyId}; rotate it with POST /v1/policies/${input.policyId}/rotate`,
          );
        }
        const row = await this.newKey(tx, peer, input.policyId, input.algorithm, input.notBefore, input.notAfter, now);
        await tx.appendAudit({
          at: now,
          actor: identityUri(peer),
          action: 'create',
          outcome: 'ok',
          policyId: row.policyId,
          keyIds: [row.keyId],
          detail: { algorithm: row.algorithm, notBefore: iso(row.notBefore), notAfter: iso(row.notAfter) },
        });
        return this.metadata(row);
      });
    });
  }

  async rotatePolicy(peer: Peer, policyId: string, input: RotateInput): Promise<{ key: KeyMetadata; retired: string[] }> {
    return this.guard(peer, 'rotate', { policyId }, async () => {
      this.requireRole(peer, WRITERS, 'rotate keys');
      this.checkPolicyId(policyId);
      if (input.algorithm !== undefined) this.checkAlgorithm(input.algorithm);
      const now = this.now();
      this.checkValidity(input.notBefore, input.notAfter, now);
      return this.store.write(async (tx) => {
        await this.checkMasterKeyUnchanged(tx);
        const rows = await tx.keysOfPolicy(policyId);
        if (rows.length === 0) throw httpError('notFound', `policy ${policyId} has no keys; create its first key with POST /v1/keys`);
        await this.expirePolicy(tx, policyId, now);
        const current = await tx.keysOfPolicy(policyId);
        const active = current.filter((r) => r.state === 'active');
        const algorithm = input.algorithm ?? (active[0] ?? current[current.length - 1]).algorithm;
        for (const r of active) await tx.setState(r.keyId, 'retired', now);
        const row = await this.newKey(tx, peer, policyId, algorithm, input.notBefore, input.notAfter, now);
        const retired = active.map((r) => r.keyId);
        await tx.appendAudit({
          at: now,
          actor: identityUri(peer),
          action: 'rotate',
          outcome: 'ok',
          policyId,
          keyIds: [row.keyId, ...retired],
          detail: { newKeyId: row.keyId, retired, algorithm, notBefore: iso(row.notBefore), notAfter: iso(row.notAfter) },
        });
        return { key: this.metadata(row), retired };
      });
    });
  }

  async revokeKey(peer: Peer, keyId: string, reason?: string): Promise<KeyMetadata> {
    const id = keyId.toLowerCase();
    return this.guard(peer, 'revoke', { keyIds: [id] }, async () => {
      this.requireRole(peer, WRITERS, 'revoke keys');
      const now = this.now();
      return this.store.write(async (tx) => {
        const row = await tx.getKey(id);
        if (!row) throw httpError('notFound', `key ${id} does not exist`);
        if (row.state === 'revoked') throw httpError('conflict', `key ${id} is already revoked (since ${iso(row.revokedAt)})`);
        await tx.setState(id, 'revoked', now, reason ?? null);
        await tx.appendAudit({
          at: now,
          actor: identityUri(peer),
          action: 'revoke',
          outcome: 'ok',
          policyId: row.policyId,
          keyIds: [id],
          detail: { previousState: this.effectiveState(row, now), reason: reason ?? null },
        });
        return this.metadata((await tx.getKey(id))!);
      });
    });
  }

  /** Persists `expired` for keys past notAfter and audits each; returns how many. */
  async sweepExpired(): Promise<number> {
    const now = this.now();
    return this.store.write(async (tx) => {
      const rows = await tx.keysToExpire(now);
      for (const r of rows) await this.expireRow(tx, r, now);
      return rows.length;
    });
  }

  // ---- release -------------------------------------------------------------

  async release(peer: Peer, input: ReleaseInput): Promise<ReleasedKey[]> {
    const context: { keyIds?: string[]; detail: Record<string, unknown> } = { keyIds: input.keyIds?.map((k) => k.toLowerCase()), detail: {} };
    return this.guard(peer, 'release', context, async () => {
      this.requireRole(peer, ['host'], 'fetch key material');
      if (!Number.isInteger(input.count) || input.count < 1 || input.count > MAX_RELEASE_COUNT) {
        throw httpError('badRequest', `count must be an integer from 1 to ${MAX_RELEASE_COUNT}`);
      }
      let grant;
      try {
        grant = verifyGrant(input.grant, {
          trusted: this.settings.grantKeys,
          now: Math.floor(this.now() / 1000),
          maxLifetimeSeconds: this.settings.grantMaxLifetimeSeconds,
          clockSkewSeconds: this.settings.grantClockSkewSeconds,
        });
      } catch (err) {
        if (err instanceof GrantError) throw httpError('grantRefused', `grant refused: ${err.message}`, { reason: err.reason });
        throw err;
      }
      const g = grant.payload;
      context.detail = { jti: g.jti, grantHost: g.host, grantSigner: grant.signer, grantExp: g.exp };
      context.keyIds ??= g.keyIds;
      if (g.host !== peer.name) {
        throw httpError('grantRefused', `grant refused: it names host ${g.host}, but the TLS peer is ${identityUri(peer)}`, { reason: 'other_host' });
      }
      const wanted = input.keyIds ? [...new Set(input.keyIds.map((k) => k.toLowerCase()))] : g.keyIds;
      context.keyIds = wanted;
      const notNamed = wanted.filter((k) => !g.keyIds.includes(k));
      if (notNamed.length) {
        throw httpError('grantRefused', `grant refused: it does not name key ${notNamed[0]}`, { reason: 'key_not_granted' });
      }

      const now = this.now();
      const { start, end } = this.settings.senderRange;
      const done = await this.store.write(async (tx) => {
        const out: ReleasedKey[] = [];
        const allocated: Record<string, number[]> = {};
        for (const keyId of wanted) {
          const row = await tx.getKey(keyId);
          if (!row) throw httpError('notFound', `key ${keyId} does not exist`);
          const state = this.effectiveState(row, now);
          if (state === 'revoked') throw httpError('keyNotReleasable', `key ${keyId} is revoked and is never released`);
          if (state === 'expired') throw httpError('keyNotReleasable', `key ${keyId} expired at ${iso(row.notAfter) ?? iso(row.expiredAt)}`);
          if (end > 2 ** row.senderIdBits) {
            throw httpError('conflict', `key ${keyId} uses ${row.senderIdBits}-bit sender IDs; this instance's range [${start}, ${end}) does not fit`);
          }
          const ids = await tx.allocateSenderIds(keyId, { start, end }, input.count);
          if (!ids) {
            throw httpError(
              'senderIdsExhausted',
              `key ${keyId} has fewer than ${input.count} sender IDs left in this instance's range [${start}, ${end}); rotate the key`,
            );
          }
          allocated[keyId] = ids;
          const material = this.openRow(row);
          try {
            const keyLen = KEY_BYTES[row.algorithm];
            out.push({
              keyId,
              policyId: row.policyId,
              algorithm: row.algorithm,
              key: material.subarray(0, keyLen).toString('base64'),
              salt: material.subarray(keyLen, keyLen + SALT_BYTES).toString('base64'),
              senderIds: ids,
              senderIdBits: row.senderIdBits,
              state,
              notBefore: iso(row.notBefore),
              notAfter: iso(row.notAfter),
            });
          } finally {
            material.fill(0);
          }
        }
        await tx.appendAudit({
          at: now,
          actor: identityUri(peer),
          action: 'release',
          outcome: 'ok',
          keyIds: wanted,
          detail: {
            ...context.detail,
            policyIds: [...new Set(out.map((k) => k.policyId))],
            count: input.count,
            senderIds: allocated,
            remoteAddress: peer.remoteAddress ?? null,
          },
        });
        // One allocation sequence number per release, in the same transaction (rollback guard).
        let seq = 0;
        if (this.highWaterMark) {
          const seqName = sequenceMetaName(this.settings.instanceId);
          seq = Number((await tx.getMeta(seqName)) ?? '0') + 1;
          await tx.setMeta(seqName, String(seq));
        }
        return { out, seq, next: Object.fromEntries(Object.entries(allocated).map(([k, ids]) => [k, ids[ids.length - 1] + 1])) };
      });
      // Committed; the high-water mark is on disk before any ID leaves (a
      // crash in between only burns IDs nobody received).
      this.highWaterMark?.record(done.seq, done.next);
      return done.out;
    });
  }

  // ---- audit of refusals ---------------------------------------------------

  /**
   * Runs `fn`; a refusal (4xx) or failure is audited after the failed
   * transaction rolled back, then rethrown.
   */
  private async guard<T>(
    peer: Peer,
    action: string,
    context: { policyId?: string; keyIds?: string[]; detail?: Record<string, unknown> },
    fn: () => Promise<T>,
  ): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      await this.recordFailure(identityUri(peer), action, err, {
        policyId: context.policyId,
        keyIds: context.keyIds,
        detail: { ...(context.detail ?? {}), remoteAddress: peer.remoteAddress ?? null },
      });
      throw err;
    }
  }

  /** Audits a refused or failed request (also used by the HTTP layer for refusals that never reach a method). */
  async recordFailure(
    actor: string,
    action: string,
    err: unknown,
    context: { policyId?: string | null; keyIds?: string[]; detail?: Record<string, unknown> } = {},
  ): Promise<void> {
    if (err && typeof err === 'object' && (err as Record<symbol, unknown>)[AUDITED]) return;
    const status = statusOf(err);
    const refused = status < 500;
    const entry: AuditInput = {
      at: this.now(),
      actor,
      action,
      outcome: refused ? 'refused' : 'error',
      policyId: context.policyId ?? null,
      keyIds: context.keyIds ?? [],
      detail: {
        ...(context.detail ?? {}),
        status,
        code: err instanceof DneError ? err.code : ErrorCodes.internal,
        // 4xx messages are precise and secret-free by construction; 5xx are summarised.
        message: refused && err instanceof Error ? err.message : 'internal error',
        ...(err instanceof HttpError && err.detail ? err.detail : {}),
      },
    };
    try {
      await this.store.write((tx) => tx.appendAudit(entry));
      if (err && typeof err === 'object') (err as Record<symbol, unknown>)[AUDITED] = true;
    } catch (auditErr) {
      this.log.error({ err: auditErr, action, actor }, 'could not write an audit record for a refused request');
    }
    this.log.warn({ actor, action, status, code: entry.detail!.code, reason: entry.detail!.message }, refused ? `refused ${action}` : `${action} failed`);
  }

  // ---- helpers -------------------------------------------------------------

  private requireRole(peer: Peer, roles: Role[], what: string): void {
    if (!roles.includes(peer.role)) {
      throw httpError('forbidden', `${identityUri(peer)} may not ${what}; that needs the role ${roles.join(' or ')}`);
    }
  }

  private checkPolicyId(policyId: string): void {
    if (typeof policyId !== 'string' || !POLICY_ID_RE.test(policyId)) {
      throw httpError('badRequest', 'policyId must be 1..128 characters of A-Z a-z 0-9 . _ : -');
    }
  }

  private checkAlgorithm(a: string): void {
    if (!(ALGORITHMS as readonly string[]).includes(a)) throw httpError('badRequest', `algorithm must be one of ${ALGORITHMS.join(', ')}`);
  }

  private checkValidity(notBefore: number | undefined, notAfter: number | undefined, now: number): void {
    if (notAfter !== undefined && notAfter <= now) throw httpError('badRequest', 'notAfter must be in the future');
    if (notBefore !== undefined && notAfter !== undefined && notBefore >= notAfter) throw httpError('badRequest', 'notBefore must be before notAfter');
  }

  private async checkMasterKeyUnchanged(tx: KeyStoreTx): Promise<void> {
    const mk = await tx.getMeta('master_key_id');
    if (mk !== this.master.id) {
      this.log.error({ expected: mk, have: this.master.id }, 'the database was re-wrapped under another master key while this key manager ran; restart it with the new master key');
      throw new DneError(ErrorCodes.masterKey, 'master key mismatch');
    }
  }

  private async newKey(
    tx: KeyStoreTx,
    peer: Peer,
    policyId: string,
    algorithm: Algorithm,
    notBefore: number | undefined,
    notAfter: number | undefined,
    now: number,
  ): Promise<KeyRow> {
    const keyId = randomUUID();
    // key ‖ salt straight from the OS CSPRNG (node's randomBytes: OpenSSL seeded by getrandom).
    const material = randomBytes(KEY_BYTES[algorithm] + SALT_BYTES);
    let sealed: Buffer;
    try {
      sealed = this.master.seal(material, keyAad(keyId, policyId, algorithm));
    } finally {
      material.fill(0);
    }
    const row: KeyRow = {
      keyId,
      policyId,
      algorithm,
      state: 'active',
      senderIdBits: this.settings.senderIdBits,
      notBefore: notBefore ?? null,
      notAfter: notAfter ?? null,
      createdAt: now,
      createdBy: identityUri(peer),
      retiredAt: null,
      revokedAt: null,
      revokeReason: null,
      expiredAt: null,
      masterKeyId: this.master.id,
      sealed,
    };
    await tx.insertKey(row);
    return row;
  }

  private openRow(row: KeyRow): Buffer {
    if (row.masterKeyId !== this.master.id) {
      this.log.error({ keyId: row.keyId, rowMasterKeyId: row.masterKeyId, masterKeyId: this.master.id }, 'a key is sealed under another master key');
      throw new DneError(ErrorCodes.masterKey, 'master key mismatch');
    }
    try {
      const m = this.master.open(row.sealed, keyAad(row.keyId, row.policyId, row.algorithm));
      if (m.length !== KEY_BYTES[row.algorithm] + SALT_BYTES) throw new Error('wrong length');
      return m;
    } catch {
      this.log.error({ keyId: row.keyId }, 'stored key material does not open under the master key (altered or swapped row)');
      throw new DneError(ErrorCodes.store, 'stored key material is corrupt');
    }
  }

  private async expirePolicy(tx: KeyStoreTx, policyId: string, now: number): Promise<void> {
    for (const r of await tx.keysOfPolicy(policyId)) {
      if ((r.state === 'active' || r.state === 'retired') && r.notAfter !== null && r.notAfter <= now) await this.expireRow(tx, r, now);
    }
  }

  private async expireRow(tx: KeyStoreTx, r: KeyRow, now: number): Promise<void> {
    await tx.setState(r.keyId, 'expired', now);
    await tx.appendAudit({
      at: now,
      actor: this.actor,
      action: 'expire',
      outcome: 'ok',
      policyId: r.policyId,
      keyIds: [r.keyId],
      detail: { previousState: r.state, notAfter: iso(r.notAfter) },
    });
  }

  /** For the rewrap command and tests: every key row opened, checked and re-sealed under `next`. */
  static async rewrap(store: KeyStore, from: MasterKey, next: MasterKey): Promise<number> {
    return store.write(async (tx) => {
      const mk = await tx.getMeta('master_key_id');
      if (mk !== undefined && mk !== from.id) {
        throw new DneError(ErrorCodes.masterKey, `the old master key (id ${from.id}) is not the one this database is sealed with (id ${mk})`);
      }
      if (mk === next.id) throw new DneError(ErrorCodes.masterKey, 'the new master key is the same as the old one');
      let n = 0;
      let after: string | undefined;
      for (;;) {
        const rows = await tx.listKeys({ afterKeyId: after, limit: 500 });
        if (rows.length === 0) break;
        for (const r of rows) {
          const aad = keyAad(r.keyId, r.policyId, r.algorithm);
          let plain: Buffer;
          try {
            plain = from.open(r.sealed, aad);
          } catch {
            throw new DneError(ErrorCodes.masterKey, `key ${r.keyId} does not open under the old master key; nothing was changed`);
          }
          try {
            await tx.setSealed(r.keyId, next.seal(plain, aad), next.id);
          } finally {
            plain.fill(0);
          }
          n++;
        }
        after = rows[rows.length - 1].keyId;
      }
      await tx.setMeta('master_key_id', next.id);
      await tx.appendAudit({
        at: Date.now(),
        actor: 'dne keymanager rewrap',
        action: 'rewrap',
        outcome: 'ok',
        detail: { keys: n, fromMasterKeyId: from.id, toMasterKeyId: next.id },
      });
      return n;
    });
  }
}
