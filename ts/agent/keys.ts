/**
 * Key fetching (DESIGN §5 access control, §3 sender IDs): the agent asks a
 * key manager for the keys its HostConfig lists, over mutual TLS, with the
 * controller's grant; every release carries fresh sender IDs, one per filter
 * worker (RFC 6407 §3.5, RFC 6054), so a restarted agent never reuses a
 * counter space.
 *
 * Key bytes: the release response is base64 JSON; it is decoded into Buffers
 * that go straight to the dataplane (which copies them into locked native
 * memory) and are zero-filled right after (reconciler.apply). The base64
 * text itself is an immutable JS string that cannot be wiped; it is dropped
 * at once and never logged (docs/agent.md, "Key bytes").
 */
import { HttpError, MtlsClient, TlsMaterial } from '../common/mtls-client';
import type { GrantResponse } from '../common/contracts';
import type { KeyMaterial } from './reconciler';

interface ReleasedKey {
  keyId: string;
  policyId: string;
  algorithm: string;
  key: string;
  salt: string;
  senderIds: number[];
  senderIdBits: number;
  state: string;
  notBefore: string | null;
  notAfter: string | null;
}

export class KeyFetchError extends Error {
  constructor(
    message: string,
    /** True when the key manager answered that a key is revoked or expired (it must not be kept). */
    readonly notReleasable = false,
  ) {
    super(message);
    this.name = 'KeyFetchError';
  }
}

/** The grant the agent currently holds, with when it expires (from its payload; the agent does not verify it: the key manager does). */
export interface HeldGrant {
  grant: string;
  keyIds: Set<string>;
  exp: number;
}

export function readGrant(grant: string): HeldGrant | null {
  try {
    const p = JSON.parse(Buffer.from(grant.split('.')[0] ?? '', 'base64url').toString('utf8')) as { keyIds?: unknown; exp?: unknown };
    if (!Array.isArray(p.keyIds) || typeof p.exp !== 'number') return null;
    return { grant, keyIds: new Set(p.keyIds.map((k) => String(k).toLowerCase())), exp: p.exp };
  } catch {
    return null;
  }
}

export interface KeyFetcherOptions {
  hostId: string;
  tls: TlsMaterial;
  controller: MtlsClient;
  /** Fixed key manager URLs from the agent config; empty: use the controller's list. */
  keyManagers: string[];
  /** Sender IDs per release: one per filter worker. */
  workers: number;
  onReachable?: (reachable: boolean) => void;
  timeoutMs?: number;
}

export class KeyFetcher {
  private held: HeldGrant | null = null;
  private advertised: string[] = [];
  private readonly clients = new Map<string, MtlsClient>();

  constructor(private readonly o: KeyFetcherOptions) {}

  /** The grant and key-manager list that came with a config response. */
  offer(grant: string | undefined, keyManagers: string[] | undefined): void {
    if (grant) this.held = readGrant(grant) ?? this.held;
    if (keyManagers?.length) this.advertised = keyManagers;
  }

  get keyManagerUrls(): string[] {
    return this.o.keyManagers.length ? this.o.keyManagers : this.advertised;
  }

  private client(url: string): MtlsClient {
    let c = this.clients.get(url);
    if (!c) {
      c = new MtlsClient(url, this.o.tls);
      this.clients.set(url, c);
    }
    return c;
  }

  private async grantFor(keyIds: string[], fresh: boolean): Promise<string> {
    const now = Date.now() / 1000;
    const h = this.held;
    // 15 s of margin: the grant must still be valid when the key manager checks it.
    if (!fresh && h && h.exp - 15 > now && keyIds.every((k) => h.keyIds.has(k.toLowerCase()))) return h.grant;
    const r = await this.o.controller.get<GrantResponse>(`/v1/hosts/${encodeURIComponent(this.o.hostId)}/grant`, { timeoutMs: this.o.timeoutMs });
    const g = r.body?.grant;
    if (!g) throw new KeyFetchError('the controller holds no grant for this host (no keys are assigned to it)');
    const held = readGrant(g);
    if (!held) throw new KeyFetchError('the controller returned a grant that cannot be read');
    this.held = held;
    const missing = keyIds.filter((k) => !held.keyIds.has(k.toLowerCase()));
    if (missing.length) throw new KeyFetchError(`the controller's grant does not cover key(s) ${missing.join(', ')}`);
    return g;
  }

  /**
   * Releases `keyIds` (each with fresh sender IDs). Tries every key manager
   * in turn; a grant the key manager refuses is renewed once.
   */
  async release(keyIds: string[]): Promise<Map<string, KeyMaterial>> {
    if (keyIds.length === 0) return new Map();
    const urls = this.keyManagerUrls;
    if (urls.length === 0) throw new KeyFetchError('no key manager is known (none configured, none named by the controller)');
    let last: Error = new KeyFetchError('no key manager answered');
    let renewed = false;
    for (let i = 0; i < urls.length; i++) {
      let grant: string;
      try {
        grant = await this.grantFor(keyIds, false);
      } catch (err) {
        throw err instanceof KeyFetchError ? err : new KeyFetchError(`cannot get a grant: ${(err as Error).message}`);
      }
      try {
        const r = await this.client(urls[i]!).post<{ keys: ReleasedKey[] }>('/v1/release', { grant, keyIds, count: this.o.workers }, { timeoutMs: this.o.timeoutMs });
        this.o.onReachable?.(true);
        return this.decode(keyIds, r.body?.keys ?? []);
      } catch (err) {
        if (err instanceof KeyFetchError) throw err;
        const e = err as HttpError;
        if (e.status === 0 || e.status >= 500) {
          this.o.onReachable?.(false);
          last = new KeyFetchError(`key manager ${urls[i]}: ${e.message}`);
          continue;
        }
        this.o.onReachable?.(true);
        if (e.code === 'ERR_DNE_GRANT_REFUSED' && !renewed) {
          renewed = true;
          this.held = null;
          await this.grantFor(keyIds, true);
          i--; // same key manager, new grant
          continue;
        }
        throw new KeyFetchError(`key manager ${urls[i]}: ${e.message}`, e.code === 'ERR_DNE_KEY_NOT_RELEASABLE');
      }
    }
    throw last;
  }

  private decode(keyIds: string[], keys: ReleasedKey[]): Map<string, KeyMaterial> {
    const out = new Map<string, KeyMaterial>();
    const fail = (msg: string, notReleasable = false): never => {
      for (const m of out.values()) {
        m.key.fill(0);
        m.salt.fill(0);
      }
      throw new KeyFetchError(msg, notReleasable);
    };
    for (const k of keys) {
      if (!keyIds.includes(k.keyId)) continue;
      // Revoked keys are never kept (DESIGN §5), whatever the config says.
      if (k.state === 'revoked') fail(`key ${k.keyId} is revoked`, true);
      const key = Buffer.from(k.key ?? '', 'base64');
      const salt = Buffer.from(k.salt ?? '', 'base64');
      // The base64 text goes out of reach at once; only the Buffers live on, until apply() wipes them.
      k.key = '';
      k.salt = '';
      const bits = k.senderIdBits;
      out.set(k.keyId, { keyId: k.keyId, key, salt, senderIds: k.senderIds, senderIdBits: bits as KeyMaterial['senderIdBits'] });
      if (key.length !== 16 && key.length !== 32) fail(`key ${k.keyId}: the key manager returned a key of ${key.length} bytes`);
      if (salt.length !== 4) fail(`key ${k.keyId}: the key manager returned a salt of ${salt.length} bytes`);
      if (![8, 16, 24, 32].includes(bits)) fail(`key ${k.keyId}: sender-ID width ${bits} is not 8, 16, 24 or 32`);
      if (!Array.isArray(k.senderIds) || k.senderIds.length < this.o.workers) fail(`key ${k.keyId}: ${k.senderIds?.length ?? 0} sender IDs for ${this.o.workers} workers`);
    }
    for (const id of keyIds) if (!out.has(id)) fail(`the key manager did not return key ${id}`);
    return out;
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
