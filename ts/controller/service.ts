/**
 * The controller service (issue #6, DESIGN §1, §5, §6), independent of HTTP:
 *
 *   manager feed ──▶ handleEvent ──▶ key requests (key manager)
 *                        │                 │
 *                        ▼                 ▼
 *                  rollover state ──▶ republish: translate() per host,
 *                  (SQLite)           a new version only where the host's
 *                        ▲            config changed, wake its long-polls
 *                        │
 *   agents' acks ──▶ barrier: a key in phase `receive` becomes `active`
 *                    when every host that needs it and is up has acked it,
 *                    or when the ack timeout passes (logged, counted)
 *
 * Threading: everything that changes rollover state or versions runs under
 * one async mutex (feed events, the periodic tick, barrier checks after
 * acks). Long-polls and acks only read or update in-memory host state and
 * never wait for the mutex, so a slow key manager never stalls a poll.
 *
 * Time: every decision reads `clock.now()`; tests inject a manual clock and
 * call `tick()` themselves. Only long-poll waits use real timers.
 */
import { createHash, KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { FeedEvent, HostConfigVersion } from '../common/contracts';
import { DneError } from '../common/errors';
import { createGrant } from '../common/grant';
import { httpError } from '../common/http-errors';
import type { KeyPolicy, Revision } from '../common/policy-model';
import { AckRecord, ControllerStore, KeyPhase, KeyRecord } from './store';
import { HostConfig, KeyState, translate } from './translate';
import type { FeedSource, KeyAuthority } from './upstream';

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface ControllerSettings {
  instanceId: string;
  /** Longest wait for acks before a key is activated anyway (DESIGN §5 "or a timeout"). */
  ackTimeoutSeconds: number;
  /** A host that has not polled for this long is "down" and does not hold up a rollover. */
  livenessSeconds: number;
  /** Lifetime of the grants handed to agents (the key manager accepts at most its maxLifetimeSeconds, 300 by default). */
  grantTtlSeconds: number;
  /** Extra lead time, beyond ack timeout and rekey margin, for a lifetime-driven rollover. */
  lifetimeSlackSeconds: number;
  /** Versions held per host for reconnecting agents (contracts.ts: 64). */
  maxVersionsPerHost: number;
  /** ... and at most this many bytes of them (the latest is always held; older ones go first). */
  maxHeldBytesPerHost: number;
}

/** Open long-polls one host may hold; a further one answers the oldest at once (empty). */
export const MAX_POLLS_PER_HOST = 4;

export const DEFAULT_SETTINGS: Omit<ControllerSettings, 'instanceId'> = {
  ackTimeoutSeconds: 60,
  livenessSeconds: 90,
  grantTtlSeconds: 300,
  lifetimeSlackSeconds: 60,
  maxVersionsPerHost: 64,
  maxHeldBytesPerHost: 1024 * 1024,
};

export interface ControllerServiceOptions {
  store: ControllerStore;
  keys: KeyAuthority;
  feed?: FeedSource;
  grantKey: KeyObject;
  settings: ControllerSettings;
  logger: Logger;
  clock?: Clock;
  /** Period of the rollover tick in ms (real time); 0: only explicit tick() calls (tests). */
  tickMs?: number;
  /** `wait` asked of the manager's feed (seconds). */
  feedWaitSeconds?: number;
}

interface HeldVersion {
  version: number;
  revision: number;
  createdAt: number;
  /** The HostConfigVersion as JSON, rendered once and sent to every poll that needs it. */
  json: string;
}

interface HostState {
  id: string;
  versions: HeldVersion[];
  heldBytes: number;
  latest: number;
  revision: number;
  hash: string;
  /** Key IDs of the latest config: what the grant names and what the barrier waits for. */
  keyIds: string[];
  lastSeen: number;
  polling: number;
  ack: { version: number; keyIds: Set<string>; at: number } | null;
  waiters: Set<() => void>;
}

/** What a long-poll returns: pre-rendered JSON (a HostConfigResponse). */
export interface PollResult {
  json: string;
  versions: number[];
  reset: boolean;
}

class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const p = this.tail.then(fn);
    this.tail = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The ESP mode a key policy's type asks for (DESIGN §3). */
const modeOf = (kp: KeyPolicy): 'gcm' | 'gmac' => (kp.encrypt_type === 'ENCRYPTION_AND_INTEGRITY' ? 'gcm' : 'gmac');

/** Phases a host config carries (translate's KeyStateName; revoked keys are dropped there). */
const DISTRIBUTED: ReadonlySet<KeyPhase> = new Set(['receive', 'active', 'retiring']);

/**
 * The config as JSON and a hash of its content. The revision number is not
 * content (a publish that changes nothing for a host sends it nothing), so
 * the hash skips it: translate() builds every config as {hostId, revision,
 * ...}, and host ids cannot contain quotes, so the JSON starts with a prefix
 * we can predict. One stringify per host per publish.
 */
function renderConfig(c: HostConfig): { json: string; hash: string } {
  const json = JSON.stringify(c);
  const prefix = `{"hostId":${JSON.stringify(c.hostId)},"revision":${c.revision},`;
  const content = json.startsWith(prefix) ? json.slice(prefix.length) : JSON.stringify({ ...c, revision: 0 });
  return { json, hash: createHash('sha256').update(content).digest('base64url') };
}

function emptyConfig(hostId: string, rev: Revision): HostConfig {
  return {
    hostId,
    revision: rev.revision,
    defaultAction: rev.config.default_action === 'DROP' ? 'drop' : 'allow',
    ports: [],
    keys: [],
    rules: [],
    keyPolicies: [],
  };
}

export class ControllerService {
  private readonly store: ControllerStore;
  private readonly km: KeyAuthority;
  private readonly feed: FeedSource | undefined;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly s: ControllerSettings;
  private readonly mutex = new Mutex();
  private readonly hosts = new Map<string, HostState>();
  private keys: KeyRecord[] = [];
  private revision: Revision | null = null;
  private usedPolicies = new Set<string>();
  private cursor = 0;
  private closed = false;
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private feedDone: Promise<void> | undefined;
  private pendingAcks = new Map<string, AckRecord>();
  private ackFlush: Promise<void> | null = null;
  private barrierCheckQueued = false;
  /** The last feed seq fully handled. */
  get feedCursor(): number {
    return this.cursor;
  }
  private lastError: string | null = null;
  /**
   * Hosts first seen in a revision count as last seen at start: up for one
   * liveness window after a (re)start, so a controller that lost or never had
   * state does not activate keys before running agents reconnect; a host
   * added later that never polls is down at once and holds up nothing.
   */
  private startedAt = 0;
  private readonly feedWait: number;

  constructor(private readonly opts: ControllerServiceOptions) {
    this.store = opts.store;
    this.km = opts.keys;
    this.feed = opts.feed;
    this.log = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.s = opts.settings;
    this.feedWait = opts.feedWaitSeconds ?? 25;
  }

  get keyManagerUrls(): string[] {
    return this.km.urls;
  }

  // ------------------------------------------------------------ lifecycle

  /**
   * Loads the persisted state and rebuilds every host's latest config from
   * it. Hosts known before the restart count as up for one liveness window
   * from now: no rollover may conclude that they are down (and activate a
   * key) before they had a chance to reconnect.
   */
  async start(): Promise<void> {
    const now = this.clock.now();
    this.startedAt = now;
    this.cursor = this.store.feedCursor();
    this.revision = this.store.revision();
    this.keys = this.store.keys();
    this.pinModes(this.revision);
    for (const v of this.store.hostVersions()) {
      const h = this.host(v.hostId);
      h.latest = v.version;
      h.hash = v.hash;
      h.revision = v.revision;
      h.lastSeen = now;
    }
    for (const a of this.store.acks()) {
      const h = this.host(a.hostId);
      h.ack = { version: a.version, keyIds: new Set(a.keyIds), at: a.at };
      h.lastSeen = now;
    }
    await this.mutex.run(() => this.republish());
    this.log.info(
      { revision: this.revision?.revision ?? null, feedCursor: this.cursor, keys: this.keys.length, hosts: this.hosts.size },
      'controller state loaded',
    );
    const tickMs = this.opts.tickMs ?? 1000;
    if (tickMs > 0) {
      this.timer = setInterval(() => {
        this.tick().catch((err: unknown) => this.log.error({ err }, 'rollover tick failed'));
      }, tickMs);
      this.timer.unref();
    }
    if (this.feed) this.feedDone = this.feedLoop();
  }

  /** Stops the feed and the tick, answers every waiting long-poll (empty), flushes acks. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.abort.abort();
    this.wakeAll();
    await this.feedDone;
    await this.ackFlush?.catch(() => undefined);
    await this.mutex.run(() => undefined);
    this.feed?.close();
    this.km.close();
  }

  /** Answers every waiting long-poll now (shutdown). */
  wakeAll(): void {
    for (const h of this.hosts.values()) this.wake(h);
  }

  // ------------------------------------------------------------ the feed

  private async feedLoop(): Promise<void> {
    let backoff = 500;
    while (!this.closed) {
      try {
        const r = await this.feed!.next(this.cursor, this.feedWait, this.abort.signal);
        for (const ev of r.events) {
          if (this.closed) return;
          if (ev.seq <= this.cursor) continue;
          await this.mutex.run(() => this.handleEvent(ev));
          // Only a fully handled event moves the cursor: a crash before this
          // line hands the same event over again, and handling is idempotent.
          this.store.setFeedCursor(ev.seq);
          this.cursor = ev.seq;
        }
        backoff = 500;
      } catch (err) {
        if (this.closed) return;
        this.lastError = (err as Error).message;
        this.log.warn({ err: (err as Error).message, feedCursor: this.cursor, retryMs: backoff }, 'feed event not handled yet; retrying');
        await new Promise((r) => setTimeout(r, backoff).unref());
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }

  /** Handles one manager event (also called directly by tests and by an in-process manager). */
  async handle(ev: FeedEvent): Promise<void> {
    await this.mutex.run(() => this.handleEvent(ev));
    if (ev.seq > this.cursor) {
      this.store.setFeedCursor(ev.seq);
      this.cursor = ev.seq;
    }
  }

  private async handleEvent(ev: FeedEvent): Promise<void> {
    switch (ev.type) {
      case 'revision':
        return this.onRevision(ev.revision, ev.seq);
      case 'rotate':
        return this.onRotate(ev.key_policy_id, ev.requested_by, ev.seq);
      case 'revoke':
        return this.onRevoke(ev.key_policy_id, ev.requested_by, ev.reason, ev.seq);
      default:
        this.log.warn({ seq: (ev as { seq: number }).seq, type: (ev as { type: string }).type }, 'unknown feed event type ignored');
    }
  }

  private async onRevision(rev: Revision, seq: number): Promise<void> {
    if (this.revision && rev.revision < this.revision.revision) {
      this.log.warn({ seq, revision: rev.revision, current: this.revision.revision }, 'older revision in the feed ignored');
      return;
    }
    let configs: Map<string, HostConfig>;
    // Keys stored before keys had a mode keep the one they were used with.
    this.pinModes(this.revision);
    try {
      configs = translate(rev, this.keyStates(rev));
    } catch (err) {
      if (!(err instanceof DneError)) throw err;
      // The manager validates before publishing; a revision translate refuses
      // would never get better by retrying. Hosts keep the previous one.
      this.lastError = `revision ${rev.revision} refused: ${err.message}`;
      this.log.error({ seq, revision: rev.revision, reason: err.message }, 'revision refused by translation; hosts keep the previous revision');
      return;
    }
    this.store.tx(() => this.store.setRevision(rev));
    this.revision = rev;
    this.usedPolicies = usedPolicies(configs);
    // Keys first, so a new policy's rules and its first key arrive in one
    // version; if the key manager cannot be reached the rules go out anyway
    // (without a key the filter drops as no_sa rather than send clear text)
    // and the event is retried.
    let failure: unknown;
    try {
      await this.ensureKeys();
    } catch (err) {
      failure = err;
    }
    this.republish();
    if (failure) throw failure;
    this.log.info({ seq, revision: rev.revision, hosts: rev.hosts.length }, 'revision published');
  }

  private async onRotate(policyId: string, by: string, seq: number): Promise<void> {
    const kp = this.policy(policyId);
    if (!kp) {
      this.log.warn({ seq, keyPolicy: policyId }, 'rotate for a key policy that is not in the current revision ignored');
      return;
    }
    if (this.keysOf(policyId, 'receive').length > 0) {
      this.log.info({ seq, keyPolicy: policyId, by }, 'rotate requested while a rollover is in progress: nothing more to do');
      return;
    }
    await this.startRollover(kp, `manual (${by})`);
    this.republish();
  }

  /**
   * DESIGN §5 revocation: every key of the policy still in any host config
   * is withdrawn in one version (send and receive), the key manager revokes
   * them, and a replacement is asked for at once. The replacement is active
   * immediately: there is no key left to send with while receivers install
   * it, so packets of this policy can drop until hosts have it.
   */
  private async onRevoke(policyId: string, by: string, reason: string | undefined, seq: number): Promise<void> {
    const now = this.clock.now();
    const victims = this.keys.filter((k) => k.policyId === policyId && DISTRIBUTED.has(k.phase));
    if (victims.length > 0) {
      this.store.tx(() => {
        for (const k of victims) {
          k.phase = 'revoked';
          k.phaseSince = now;
          k.removeAt = null;
          this.store.updateKey(k);
        }
        this.addPendingRevokes(victims.map((k) => k.keyId));
        this.store.addCounter('revocations', 1);
      });
      this.log.warn({ seq, keyPolicy: policyId, keyIds: victims.map((k) => k.keyId), by, reason: reason ?? null }, 'keys revoked: withdrawn from every host');
      this.republish();
    }
    let failure: unknown;
    try {
      await this.flushPendingRevokes(reason ?? `revoked by ${by}`);
    } catch (err) {
      failure = err;
    }
    if (this.policy(policyId) && this.usedPolicies.has(policyId)) {
      try {
        await this.ensureKeys();
      } catch (err) {
        failure ??= err;
      }
      this.republish();
    }
    if (failure) throw failure;
  }

  private addPendingRevokes(ids: string[]): void {
    const cur = new Set(JSON.parse(this.store.getMeta('pending_km_revokes') ?? '[]') as string[]);
    for (const id of ids) cur.add(id);
    this.store.setMeta('pending_km_revokes', JSON.stringify([...cur]));
  }

  /** Tells the key manager about revocations it has not confirmed yet (retried by the tick). */
  private async flushPendingRevokes(reason: string): Promise<void> {
    const pending = JSON.parse(this.store.getMeta('pending_km_revokes') ?? '[]') as string[];
    for (const id of pending) {
      await this.km.revoke(id, reason);
      const rest = (JSON.parse(this.store.getMeta('pending_km_revokes') ?? '[]') as string[]).filter((x) => x !== id);
      this.store.setMeta('pending_km_revokes', JSON.stringify(rest));
    }
  }

  // ------------------------------------------------------------ keys

  private policy(id: string): KeyPolicy | undefined {
    return this.revision?.key_policies.find((k) => k.id === id);
  }

  private keysOf(policyId: string, phase: KeyPhase): KeyRecord[] {
    return this.keys.filter((k) => k.policyId === policyId && k.phase === phase);
  }

  private keyStates(rev: Revision): KeyState[] {
    const ids = new Set(rev.key_policies.map((k) => k.id));
    const by = new Map<string, KeyState>();
    for (const k of this.keys) {
      if (!ids.has(k.policyId) || !DISTRIBUTED.has(k.phase)) continue;
      let ks = by.get(k.policyId);
      if (!ks) by.set(k.policyId, (ks = { keyPolicyId: k.policyId, keys: [] }));
      ks.keys.push({
        keyId: k.keyId,
        spiGcm: k.spiGcm,
        spiGmac: k.spiGmac,
        state: k.phase as 'receive' | 'active' | 'retiring',
        notBefore: new Date(k.notBefore).toISOString(),
        // Lifetime 0 means the key does not expire; agents read '' as "no notAfter".
        notAfter: k.notAfter === null ? '' : new Date(k.notAfter).toISOString(),
        // A key keeps the mode it was made for; null (a key stored before modes were): the policy's.
        ...(k.mode ? { mode: k.mode } : {}),
      });
    }
    return [...by.values()];
  }

  /**
   * Every key policy some host uses needs a key in phase receive or active.
   * A policy's very first key goes through the barrier like any other
   * (receive first); the replacement of a revoked key is active at once.
   */
  private async ensureKeys(): Promise<void> {
    for (const id of [...this.usedPolicies].sort()) {
      const kp = this.policy(id);
      if (!kp) continue;
      if (this.keys.some((k) => k.policyId === id && (k.phase === 'receive' || k.phase === 'active'))) continue;
      const mine = this.keys.filter((k) => k.policyId === id);
      const last = mine[mine.length - 1];
      const replacement = last !== undefined && last.phase === 'revoked';
      await this.createKey(kp, replacement ? 'active' : 'receive', mine.length === 0, replacement ? 'replacement' : 'first');
    }
  }

  private async startRollover(kp: KeyPolicy, why: string): Promise<void> {
    const k = await this.createKey(kp, 'receive', !this.keys.some((x) => x.policyId === kp.id), why);
    this.store.tx(() => this.store.addCounter('rollovers', 1));
    this.log.info({ keyPolicy: kp.id, keyId: k.keyId, reason: why }, 'rollover started: new key published receive-only');
  }

  /**
   * Gives keys stored without a mode (before modes were recorded) the one
   * their policy had in `rev` — the one they were used with — so a later
   * type change rolls them over instead of reusing them in the other mode.
   */
  private pinModes(rev: Revision | null): void {
    if (!rev) return;
    const pinned: KeyRecord[] = [];
    for (const k of this.keys) {
      if (k.mode) continue;
      const kp = rev.key_policies.find((p) => p.id === k.policyId);
      if (!kp) continue;
      k.mode = modeOf(kp);
      pinned.push(k);
    }
    if (pinned.length) this.store.tx(() => pinned.forEach((k) => this.store.updateKey(k)));
  }

  private async createKey(kp: KeyPolicy, phase: 'receive' | 'active', first: boolean, why: string): Promise<KeyRecord> {
    const now = this.clock.now();
    const notAfter = kp.lifetime > 0 ? new Date(now + kp.lifetime * 1000) : null;
    const km = await this.km.newKey({ policyId: kp.id, algorithm: kp.encrypt_algorithm, notBefore: new Date(now), notAfter }, first);
    const rec: KeyRecord = {
      keyId: km.keyId.toLowerCase(),
      policyId: kp.id,
      algorithm: km.algorithm,
      phase,
      spiGcm: 0,
      spiGmac: 0,
      notBefore: now,
      notAfter: notAfter?.getTime() ?? null,
      createdAt: now,
      phaseSince: now,
      activatedAt: phase === 'active' ? now : null,
      removeAt: null,
      activatedBy: phase === 'active' ? why : null,
      timedOutHosts: [],
      mode: modeOf(kp),
    };
    this.store.tx(() => {
      Object.assign(rec, this.store.allocateSpis());
      this.store.insertKey(rec);
    });
    this.keys.push(rec);
    if (phase === 'active') this.log.warn({ keyPolicy: kp.id, keyId: rec.keyId, reason: why }, 'replacement key active at once');
    return rec;
  }

  /**
   * DESIGN §5 activation: `key` becomes the senders' key; the policy's
   * previous active key turns receive-only until the rekey margin has passed.
   */
  private activate(key: KeyRecord, by: 'acks' | 'timeout', timedOut: string[], downSkipped = 0): void {
    const now = this.clock.now();
    const margin = (this.revision?.config.rekey_margin ?? 0) * 1000;
    const old = this.keysOf(key.policyId, 'active');
    this.store.tx(() => {
      key.phase = 'active';
      key.phaseSince = now;
      key.activatedAt = now;
      key.activatedBy = by;
      key.timedOutHosts = timedOut;
      this.store.updateKey(key);
      for (const o of old) {
        o.phase = 'retiring';
        o.phaseSince = now;
        o.removeAt = now + margin;
        this.store.updateKey(o);
      }
      if (by === 'timeout') {
        this.store.addCounter('ack_timeouts', 1);
        this.store.addCounter('hosts_timed_out', timedOut.length);
      }
      if (downSkipped > 0) this.store.addCounter('hosts_down_skipped', downSkipped);
    });
  }

  // ------------------------------------------------------------ the tick

  /** Time-driven work: barrier timeouts, removals, automatic rotation, retries. */
  async tick(): Promise<void> {
    if (this.closed) return;
    await this.mutex.run(() => this.tickLocked());
  }

  private async tickLocked(): Promise<void> {
    if (!this.revision) return;
    const now = this.clock.now();
    let changed = this.checkBarriers();
    for (const k of this.keys) {
      if (k.phase === 'retiring' && k.removeAt !== null && k.removeAt <= now) {
        k.phase = 'removed';
        k.phaseSince = now;
        this.store.tx(() => this.store.updateKey(k));
        this.log.info({ keyPolicy: k.policyId, keyId: k.keyId }, 'retired key removed after the rekey margin');
        changed = true;
      }
    }
    const margin = this.revision.config.rekey_margin;
    for (const id of [...this.usedPolicies].sort()) {
      const kp = this.policy(id);
      if (!kp || this.keysOf(id, 'receive').length > 0) continue;
      const active = this.keysOf(id, 'active')[0];
      if (!active) continue;
      let why: string | null = null;
      if (kp.rekey_frequency > 0 && now >= (active.activatedAt ?? active.createdAt) + kp.rekey_frequency * 1000) why = 'rekey frequency';
      // Start early enough that the next key is active, and this one has been
      // receive-only for the rekey margin, before this one's notAfter.
      else if (active.notAfter !== null && now >= active.notAfter - (this.s.ackTimeoutSeconds + margin + this.s.lifetimeSlackSeconds) * 1000) why = 'key lifetime';
      else if (active.algorithm !== kp.encrypt_algorithm) why = `algorithm changed to ${kp.encrypt_algorithm}`;
      // A new type needs a new key: the current one must never serve GCM and
      // GMAC both (DESIGN §3); until the new key is active, senders keep the
      // current one in its mode (translate keeps the rules' old action).
      else if (active.mode && active.mode !== modeOf(kp)) why = `encrypt_type changed to ${kp.encrypt_type}`;
      if (!why) continue;
      try {
        await this.startRollover(kp, why);
        changed = true;
      } catch (err) {
        this.lastError = (err as Error).message;
        this.log.warn({ keyPolicy: id, reason: why, err: (err as Error).message }, 'could not start a rollover; retrying at the next tick');
      }
    }
    try {
      await this.flushPendingRevokes('revoked by the controller (retry)');
      const before = this.keys.length;
      await this.ensureKeys();
      if (this.keys.length !== before) changed = true;
    } catch (err) {
      this.lastError = (err as Error).message;
      this.log.warn({ err: (err as Error).message }, 'key manager request failed; retrying at the next tick');
    }
    if (changed) this.republish();
  }

  private isUp(h: HostState, now: number): boolean {
    return h.polling > 0 || now - h.lastSeen <= this.s.livenessSeconds * 1000;
  }

  /** Barrier state of one receive-phase key. */
  private barrier(k: KeyRecord, now: number): { needing: HostState[]; acked: HostState[]; waiting: HostState[]; down: HostState[] } {
    const needing: HostState[] = [];
    const acked: HostState[] = [];
    const waiting: HostState[] = [];
    const down: HostState[] = [];
    for (const h of this.hosts.values()) {
      if (!h.keyIds.includes(k.keyId)) continue;
      needing.push(h);
      if (h.ack?.keyIds.has(k.keyId)) acked.push(h);
      else if (this.isUp(h, now)) waiting.push(h);
      else down.push(h);
    }
    return { needing, acked, waiting, down };
  }

  /** Activates every receive key whose barrier has passed; true when something changed. */
  private checkBarriers(): boolean {
    const now = this.clock.now();
    let changed = false;
    for (const k of this.keys) {
      if (k.phase !== 'receive') continue;
      const b = this.barrier(k, now);
      if (b.waiting.length === 0) {
        if (b.down.length > 0) {
          this.log.warn({ keyPolicy: k.policyId, keyId: k.keyId, down: b.down.map((h) => h.id) }, 'hosts that are down did not acknowledge the key; activating without them');
        }
        this.activate(k, 'acks', b.down.map((h) => h.id), b.down.length);
        this.log.info({ keyPolicy: k.policyId, keyId: k.keyId, acked: b.acked.length, waitedMs: now - k.phaseSince }, 'key active: every host that needs it has it');
        changed = true;
      } else if (now - k.phaseSince >= this.s.ackTimeoutSeconds * 1000) {
        const missing = [...b.waiting, ...b.down].map((h) => h.id);
        this.activate(k, 'timeout', missing);
        this.log.warn(
          { keyPolicy: k.policyId, keyId: k.keyId, notAcked: missing.slice(0, 100), count: missing.length, ackTimeoutSeconds: this.s.ackTimeoutSeconds },
          'ack timeout: key activated although these hosts did not acknowledge it',
        );
        changed = true;
      }
    }
    return changed;
  }

  private scheduleBarrierCheck(): void {
    if (this.barrierCheckQueued || this.closed) return;
    if (!this.keys.some((k) => k.phase === 'receive')) return;
    this.barrierCheckQueued = true;
    setImmediate(() => {
      this.barrierCheckQueued = false;
      this.mutex
        .run(() => {
          if (this.checkBarriers()) this.republish();
        })
        .catch((err: unknown) => this.log.error({ err }, 'barrier check failed'));
    });
  }

  // ------------------------------------------------------------ versions

  private host(id: string): HostState {
    let h = this.hosts.get(id);
    if (!h) {
      h = { id, versions: [], heldBytes: 0, latest: 0, revision: 0, hash: '', keyIds: [], lastSeen: this.startedAt, polling: 0, ack: null, waiters: new Set() };
      this.hosts.set(id, h);
    }
    return h;
  }

  /**
   * Translates the current revision with the current key phases and gives
   * every host whose config changed a new version (a host dropped from the
   * revision gets an empty config, so its agent clears tables and keys).
   */
  private republish(): void {
    const rev = this.revision;
    if (!rev) return;
    const now = this.clock.now();
    const configs = translate(rev, this.keyStates(rev));
    this.usedPolicies = usedPolicies(configs);
    for (const h of this.hosts.values()) if (!configs.has(h.id) && h.latest > 0) configs.set(h.id, emptyConfig(h.id, rev));
    const records = [];
    const woken: HostState[] = [];
    for (const [id, cfg] of configs) {
      const h = this.host(id);
      let { json, hash } = renderConfig(cfg);
      if (hash === h.hash && h.versions.length > 0) continue;
      const restored = hash === h.hash && h.latest > 0;
      if (restored) json = renderConfig({ ...cfg, revision: h.revision }).json;
      const v: Omit<HostConfigVersion, 'config'> = { version: restored ? h.latest : h.latest + 1, revision: restored ? h.revision : rev.revision, created_at: new Date(now).toISOString() };
      // A restored version keeps its number; its config is rebuilt from the same state, so it is the same content.
      const held: HeldVersion = { version: v.version, revision: v.revision, createdAt: now, json: `${JSON.stringify(v).slice(0, -1)},"config":${json}}` };
      h.versions.push(held);
      h.heldBytes += held.json.length;
      while (h.versions.length > this.s.maxVersionsPerHost || (h.versions.length > 1 && h.heldBytes > this.s.maxHeldBytesPerHost)) {
        h.heldBytes -= h.versions.shift()!.json.length;
      }
      h.keyIds = cfg.keys.map((k) => k.keyId);
      if (!restored) {
        h.latest = v.version;
        h.hash = hash;
        h.revision = v.revision;
        records.push({ hostId: id, version: v.version, hash, revision: v.revision, createdAt: now });
        woken.push(h);
      }
    }
    if (records.length) this.store.saveHostVersions(records);
    for (const h of woken) this.wake(h);
  }

  private wake(h: HostState): void {
    const w = [...h.waiters];
    h.waiters.clear();
    for (const f of w) f();
  }

  // ------------------------------------------------------------ agents

  /**
   * `GET /v1/hosts/{hostId}/config?after&wait` (contracts.ts). `onClose`
   * registers a callback for a client that goes away mid-wait.
   */
  async poll(hostId: string, after: number, waitSeconds: number, onClose: (f: () => void) => void): Promise<PollResult> {
    const h = this.host(hostId);
    h.polling++;
    h.lastSeen = this.clock.now();
    try {
      let r = this.collect(h, after);
      if (r === null && waitSeconds > 0 && !this.closed) {
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(t);
            h.waiters.delete(done);
            resolve();
          };
          const t = setTimeout(done, waitSeconds * 1000);
          // A host needs one open poll; each one holds a socket, a request and
          // a timer. So a host may hold MAX_POLLS_PER_HOST at most: the oldest
          // is answered (empty, as on timeout) to make room (Set iterates in
          // insertion order). 3,000 concurrent polls from one certificate
          // otherwise held ~280 MB and as many file descriptors.
          if (h.waiters.size >= MAX_POLLS_PER_HOST) h.waiters.values().next().value!();
          h.waiters.add(done);
          onClose(done);
        });
        r = this.collect(h, after);
      }
      return this.render(h, r ?? { versions: [], reset: false });
    } finally {
      h.polling--;
      h.lastSeen = this.clock.now();
    }
  }

  private collect(h: HostState, after: number): { versions: HeldVersion[]; reset: boolean } | null {
    if (h.versions.length === 0 || after === h.latest) return null;
    const oldest = h.versions[0]!.version;
    // Newer than anything we have (the controller lost state) or older than
    // what is held: the latest version as a full replacement.
    if (after > h.latest || after < oldest - 1) return { versions: [h.versions[h.versions.length - 1]!], reset: true };
    return { versions: h.versions.filter((v) => v.version > after), reset: false };
  }

  private render(h: HostState, r: { versions: HeldVersion[]; reset: boolean }): PollResult {
    const grant = this.grantFor(h);
    const parts = [`{"host_id":${JSON.stringify(h.id)},"versions":[${r.versions.map((v) => v.json).join(',')}]`];
    if (r.reset) parts.push(',"reset":true');
    if (grant) parts.push(`,"grant":${JSON.stringify(grant.grant)}`);
    parts.push(`,"key_managers":${JSON.stringify(this.km.urls)}}`);
    return { json: parts.join(''), versions: r.versions.map((v) => v.version), reset: r.reset };
  }

  /** A grant for exactly the key IDs of the host's latest config (DESIGN §5 access control). */
  grantFor(h: HostState): { grant: string; expiresAt: number } | null {
    if (h.keyIds.length === 0) return null;
    const now = Math.floor(this.clock.now() / 1000);
    const grant = createGrant({ host: h.id, keyIds: h.keyIds, ttlSeconds: this.s.grantTtlSeconds, now }, this.opts.grantKey);
    return { grant, expiresAt: (now + this.s.grantTtlSeconds) * 1000 };
  }

  grant(hostId: string): { grant: string | null; key_ids: string[]; expires_at: string | null } {
    const h = this.host(hostId);
    h.lastSeen = this.clock.now();
    const g = this.grantFor(h);
    return { grant: g?.grant ?? null, key_ids: [...h.keyIds], expires_at: g ? iso(g.expiresAt) : null };
  }

  /**
   * `POST /v1/hosts/{hostId}/ack`. Acks of many agents are written in one
   * transaction (group commit); the agent gets its 204 after the commit, so
   * an acknowledged ack survives a restart.
   */
  async ack(hostId: string, version: number, installedKeyIds: string[]): Promise<void> {
    const h = this.hosts.get(hostId);
    if (!h || version > h.latest) {
      throw httpError('conflict', `host ${hostId} was never sent version ${version} (its latest is ${h?.latest ?? 0})`);
    }
    const now = this.clock.now();
    h.lastSeen = now;
    // A late ack of an older version must not undo a newer one.
    if (h.ack && version < h.ack.version) return;
    const keyIds = [...new Set(installedKeyIds.map((k) => k.toLowerCase()))];
    h.ack = { version, keyIds: new Set(keyIds), at: now };
    this.pendingAcks.set(hostId, { hostId, version, keyIds, at: now });
    await this.flushAcks();
    this.scheduleBarrierCheck();
  }

  private flushAcks(): Promise<void> {
    if (this.ackFlush) return this.ackFlush;
    this.ackFlush = new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        const batch = [...this.pendingAcks.values()];
        this.pendingAcks.clear();
        this.ackFlush = null;
        try {
          if (batch.length) this.store.saveAcks(batch);
          resolve();
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    return this.ackFlush;
  }

  // ------------------------------------------------------------ status

  status() {
    const now = this.clock.now();
    const policies = new Map<string, KeyRecord[]>();
    for (const k of this.keys) {
      const l = policies.get(k.policyId) ?? [];
      l.push(k);
      policies.set(k.policyId, l);
    }
    const ids = new Set([...(this.revision?.key_policies.map((k) => k.id) ?? []), ...policies.keys()]);
    return {
      instance_id: this.s.instanceId,
      revision: this.revision?.revision ?? null,
      feed_cursor: this.cursor,
      key_managers: this.km.urls,
      ack_timeout_seconds: this.s.ackTimeoutSeconds,
      liveness_seconds: this.s.livenessSeconds,
      counters: {
        rollovers: this.store.counter('rollovers'),
        revocations: this.store.counter('revocations'),
        ack_timeouts: this.store.counter('ack_timeouts'),
        hosts_timed_out: this.store.counter('hosts_timed_out'),
        hosts_down_skipped: this.store.counter('hosts_down_skipped'),
      },
      last_error: this.lastError,
      key_policies: [...ids].sort().map((id) => {
        const keys = policies.get(id) ?? [];
        const pending = keys.find((k) => k.phase === 'receive');
        let barrier = null;
        if (pending) {
          const b = this.barrier(pending, now);
          barrier = {
            key_id: pending.keyId,
            since: iso(pending.phaseSince)!,
            deadline: iso(pending.phaseSince + this.s.ackTimeoutSeconds * 1000)!,
            hosts_needing: b.needing.length,
            hosts_acked: b.acked.length,
            waiting_for: b.waiting.slice(0, 100).map((h) => h.id),
            down: b.down.slice(0, 100).map((h) => h.id),
          };
        }
        return {
          id,
          in_revision: this.policy(id) !== undefined,
          in_use: this.usedPolicies.has(id),
          keys: keys
            .filter((k) => k.phase !== 'removed')
            .map((k) => ({
              key_id: k.keyId,
              phase: k.phase,
              spi_gcm: k.spiGcm,
              spi_gmac: k.spiGmac,
              not_before: iso(k.notBefore)!,
              not_after: iso(k.notAfter),
              created_at: iso(k.createdAt)!,
              phase_since: iso(k.phaseSince)!,
              activated_at: iso(k.activatedAt),
              activated_by: k.activatedBy,
              remove_at: iso(k.removeAt),
              timed_out_hosts: k.timedOutHosts.slice(0, 100),
            })),
          barrier,
        };
      }),
      hosts: [...this.hosts.values()]
        .sort((a, b) => (a.id < b.id ? -1 : 1))
        .map((h) => ({
          id: h.id,
          version: h.latest,
          revision: h.revision,
          up: this.isUp(h, now),
          polling: h.polling > 0,
          last_seen_at: iso(h.lastSeen)!,
          ack_version: h.ack?.version ?? null,
          ack_at: iso(h.ack?.at ?? null),
        })),
    };
  }

  /** For tests: the key records as the controller holds them. */
  keyRecords(): KeyRecord[] {
    return this.keys.map((k) => ({ ...k, timedOutHosts: [...k.timedOutHosts] }));
  }

  /** For tests and status: the latest version number of a host (0: none). */
  latestVersion(hostId: string): number {
    return this.hosts.get(hostId)?.latest ?? 0;
  }
}

function usedPolicies(configs: Map<string, HostConfig>): Set<string> {
  const s = new Set<string>();
  for (const c of configs.values()) for (const p of c.keyPolicies) s.add(p.id);
  return s;
}

