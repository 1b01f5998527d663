/**
 * Rollback guard for sender IDs. A sender ID names a counter space under a
 * key (RFC 6054; RFC 4106 §3.1: an IV must never repeat under one key), so
 * the key manager must never hand one out twice. The database alone cannot
 * promise that: started on a restored backup or a copy, it would hand out
 * again every ID allocated since — AES-GCM nonce reuse.
 *
 * So each instance keeps, next to the database, a small file that only grows:
 * its allocation sequence number (also counted in the database, one per
 * release) and, per key it released, the next unallocated ID of its range.
 * It is rewritten (temp file, fsync, rename) after each release commits and
 * before the response is sent. At start, a database whose sequence number or
 * counters are behind the file was restored; a file that is missing while the
 * database has allocations in this range means a copied store. Either refuses
 * to start, unless the operator accepts the restored store: then counters are
 * raised past everything the file records (keys it does not record get no
 * more IDs from this instance) before anything is served.
 *
 * The file is behind the database only for a moment (a crash between COMMIT
 * and the write burns IDs that were never sent): behind is never a refusal.
 */
import * as fs from 'node:fs';
import { DneError, ErrorCodes } from '../common/errors';
import { writeFileAtomic } from '../common/secure-files';
import type { SenderRange } from './store';

export interface HighWaterMarks {
  /** Allocation sequence number: releases by this instance, as the database also counts them. */
  seq: number;
  /** Per key: the next unallocated sender ID in this instance's range. */
  next: Map<string, number>;
}

interface FileFormat {
  v: 1;
  instanceId: string;
  range: [number, number];
  seq: number;
  next: Record<string, number>;
}

/** The file for an instance's database: one per instance, so replicas on one store never write the same file. */
export function highWaterMarkFile(dbFile: string, instanceId: string): string {
  return `${dbFile}.${instanceId}.hwm`;
}

/** The database meta row holding an instance's allocation sequence number. */
export function sequenceMetaName(instanceId: string): string {
  return `sender_alloc_seq:${instanceId}`;
}

/**
 * One instance's high-water-mark file. Shared by every KeyService of this
 * process on the same file (highWaterMark()), so concurrent writers merge
 * into one state that only grows.
 */
export class SenderHighWaterMark {
  #state: HighWaterMarks | null = null;

  constructor(
    readonly file: string,
    readonly instanceId: string,
    readonly range: SenderRange,
  ) {}

  /** What the file records, or null when there is no file. */
  read(): HighWaterMarks | null {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new DneError(ErrorCodes.store, `sender-ID high-water mark ${this.file}: ${(err as Error).message}`);
    }
    const bad = (why: string) => new DneError(ErrorCodes.store, `sender-ID high-water mark ${this.file} is unusable (${why}); restore it, or see docs/keymanager.md "Backups"`);
    let f: FileFormat;
    try {
      f = JSON.parse(text) as FileFormat;
    } catch {
      throw bad('not JSON');
    }
    if (!f || f.v !== 1 || !Number.isSafeInteger(f.seq) || f.seq < 0 || typeof f.next !== 'object' || f.next === null || !Array.isArray(f.range)) throw bad('not a version 1 file');
    if (f.instanceId !== this.instanceId || f.range[0] !== this.range.start || f.range[1] !== this.range.end) {
      throw bad(`it belongs to instance ${f.instanceId} with range [${f.range[0]}, ${f.range[1]}), not ${this.instanceId} with [${this.range.start}, ${this.range.end})`);
    }
    const next = new Map<string, number>();
    for (const [k, v] of Object.entries(f.next)) {
      if (!Number.isSafeInteger(v)) throw bad(`key ${k} has no integer counter`);
      next.set(k, v);
    }
    return { seq: f.seq, next };
  }

  /** Replaces the state (at start, after the checks) and writes it. */
  reset(state: HighWaterMarks): void {
    this.#state = { seq: state.seq, next: new Map(state.next) };
    this.#write();
  }

  /**
   * Records a committed release: its sequence number and the counters it
   * left. Synchronous, so whatever order the releases' continuations run in,
   * each write holds every release merged before it.
   */
  record(seq: number, next: Record<string, number>): void {
    if (!this.#state) this.#state = this.read() ?? { seq: 0, next: new Map() };
    const s = this.#state;
    s.seq = Math.max(s.seq, seq);
    for (const [k, v] of Object.entries(next)) s.next.set(k, Math.max(s.next.get(k) ?? 0, v));
    this.#write();
  }

  #write(): void {
    const s = this.#state!;
    const f: FileFormat = { v: 1, instanceId: this.instanceId, range: [this.range.start, this.range.end], seq: s.seq, next: Object.fromEntries(s.next) };
    writeFileAtomic(this.file, JSON.stringify(f) + '\n', 0o600);
  }
}

const shared = new Map<string, SenderHighWaterMark>();

/** The process-wide guard for a file (KeyServices on one database and instance share it). */
export function highWaterMark(file: string, instanceId: string, range: SenderRange): SenderHighWaterMark {
  let m = shared.get(file);
  if (!m || m.instanceId !== instanceId || m.range.start !== range.start || m.range.end !== range.end) {
    m = new SenderHighWaterMark(file, instanceId, range);
    shared.set(file, m);
  }
  return m;
}
