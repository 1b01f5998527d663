/**
 * The controller's two upstreams, each behind a small interface so the
 * service does not care how they are reached:
 *
 *  - FeedSource: the manager's event feed (contracts.ts FeedEvent), a
 *    long-poll `GET {MANAGER_API}/internal/controller-feed?after&wait` over
 *    mutual TLS with the controller's certificate;
 *  - KeyAuthority: the key manager's key lifecycle calls (create, rotate,
 *    revoke; docs/keymanager.md). The controller never asks for key bytes
 *    (its role cannot release them) and never sees any.
 */
import type { FeedResponse } from '../common/contracts';
import { MANAGER_API } from '../common/contracts';
import { HttpError, MtlsClient, TlsMaterial } from '../common/mtls-client';

export interface FeedSource {
  /** Events with seq > after, waiting up to `waitSeconds` when there are none. */
  next(after: number, waitSeconds: number, signal: AbortSignal): Promise<FeedResponse>;
  close(): void;
}

export class HttpsFeedSource implements FeedSource {
  private readonly client: MtlsClient;

  constructor(managerUrl: string, tls: TlsMaterial) {
    this.client = new MtlsClient(managerUrl, tls, { maxSockets: 2 });
  }

  async next(after: number, waitSeconds: number, signal: AbortSignal): Promise<FeedResponse> {
    const r = await this.client.get<FeedResponse>(`${MANAGER_API}/internal/controller-feed?after=${after}&wait=${waitSeconds}`, {
      signal,
      // The manager holds the request up to `wait` seconds; allow for that plus a transfer.
      timeoutMs: (waitSeconds + 15) * 1000,
    });
    const b = r.body;
    if (typeof b !== 'object' || b === null || !Array.isArray(b.events) || typeof b.latest_seq !== 'number') {
      throw new HttpError('GET', '/internal/controller-feed', r.status, 'the manager feed answered without events/latest_seq');
    }
    return b;
  }

  close(): void {
    this.client.close();
  }
}

/** Key metadata as the key manager returns it (no bytes: the schema has no field for them). */
export interface KmKey {
  keyId: string;
  policyId: string;
  algorithm: string;
  state: string;
  notBefore: string | null;
  notAfter: string | null;
}

export interface NewKeyRequest {
  policyId: string;
  algorithm: string;
  notBefore: Date;
  notAfter: Date | null;
}

export interface KeyAuthority {
  /** A new key for the policy; `first` says whether the controller has ever had a key for it. */
  newKey(req: NewKeyRequest, first: boolean): Promise<KmKey>;
  revoke(keyId: string, reason: string): Promise<void>;
  readonly urls: string[];
  close(): void;
}

/**
 * The key manager over HTTPS. A policy's first key is `POST /v1/keys`; each
 * next one is `POST /v1/policies/:id/rotate`, because the key manager keeps
 * one "active" key per policy and a create next to it is a 409. Rotation
 * there marks the previous key `retired`, which the key manager still
 * releases until its notAfter — exactly what the controller's two-phase
 * rollover needs, since the previous key stays in use (as the senders' key,
 * then receive-only) until the controller removes it. The key manager's
 * active/retired labels are therefore not the controller's phases.
 */
export class HttpsKeyAuthority implements KeyAuthority {
  private readonly client: MtlsClient;

  constructor(readonly urls: string[], tls: TlsMaterial) {
    if (urls.length === 0) throw new Error('at least one key manager URL is needed');
    this.client = new MtlsClient(urls[0]!, tls, { maxSockets: 4 });
  }

  async newKey(req: NewKeyRequest, first: boolean): Promise<KmKey> {
    const validity = { notBefore: req.notBefore.toISOString(), ...(req.notAfter ? { notAfter: req.notAfter.toISOString() } : {}) };
    const rotate = async () =>
      (await this.client.post<{ key: KmKey }>(`/v1/policies/${encodeURIComponent(req.policyId)}/rotate`, { algorithm: req.algorithm, ...validity })).body.key;
    if (!first) {
      try {
        return await rotate();
      } catch (err) {
        // The key manager has no key for the policy (another database, or keys removed there): start it afresh.
        if (!(err instanceof HttpError && err.status === 404)) throw err;
      }
    }
    try {
      return (await this.client.post<KmKey>('/v1/keys', { policyId: req.policyId, algorithm: req.algorithm, ...validity })).body;
    } catch (err) {
      // 409: the key manager already has an active key for the policy that this
      // controller never recorded (it crashed between the create and its own
      // commit, or its database was replaced). That key was never granted to
      // anyone; rotating retires it and gives a key the controller knows.
      if (err instanceof HttpError && err.status === 409) return rotate();
      throw err;
    }
  }

  async revoke(keyId: string, reason: string): Promise<void> {
    try {
      await this.client.post(`/v1/keys/${keyId}/revoke`, { reason });
    } catch (err) {
      // Already revoked (a retried revocation): the goal is reached.
      if (err instanceof HttpError && err.status === 409) return;
      throw err;
    }
  }

  close(): void {
    this.client.close();
  }
}
