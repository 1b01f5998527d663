/**
 * The host config stream (DESIGN §6): a long-poll of
 * `GET /v1/hosts/{hostId}/config?after=V&wait=S` that resumes from the last
 * applied version and never skips one (every version is a full HostConfig,
 * so only the last of a batch is applied).
 *
 * When the controller cannot be reached, or a version cannot be applied yet
 * (a key manager down), the last good configuration keeps running and the
 * loop retries with exponential backoff and full jitter (so a fleet of agents
 * does not come back in lockstep after a controller restart).
 */
import type { HostConfigResponse } from '../common/contracts';
import { HttpError, MtlsClient } from '../common/mtls-client';

export interface BackoffOptions {
  minMs: number;
  maxMs: number;
  random?: () => number;
}

/** "Full jitter": uniform in [min, min(max, min * 2^attempt)]. */
export function backoffDelay(attempt: number, o: BackoffOptions): number {
  const cap = Math.min(o.maxMs, o.minMs * 2 ** Math.min(attempt, 30));
  return Math.round(o.minMs + (o.random ?? Math.random)() * (cap - o.minMs));
}

export interface ConfigStreamOptions {
  hostId: string;
  client: MtlsClient;
  waitSeconds: number;
  backoff: BackoffOptions;
  /** Applies the response (the last version); throws if it cannot be applied yet. Returns the version now applied. */
  onResponse: (r: HostConfigResponse) => Promise<number>;
  onReachable: (reachable: boolean, why?: string) => void;
  onError?: (where: 'poll' | 'apply', err: Error, retryInMs: number) => void;
}

export class ConfigStream {
  private after = 0;
  private stopped = false;
  private abort = new AbortController();
  private sleepTimer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private loopDone: Promise<void> | null = null;
  failures = 0;

  constructor(private readonly o: ConfigStreamOptions) {}

  get applied(): number {
    return this.after;
  }

  start(): void {
    this.loopDone ??= this.loop();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      this.wake = r;
      this.sleepTimer = setTimeout(r, ms);
    });
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let resp: HostConfigResponse;
      try {
        const path = `/v1/hosts/${encodeURIComponent(this.o.hostId)}/config?after=${this.after}&wait=${this.o.waitSeconds}`;
        const r = await this.o.client.get<HostConfigResponse>(path, { timeoutMs: (this.o.waitSeconds + 15) * 1000, signal: this.abort.signal });
        resp = r.body;
        this.o.onReachable(true);
      } catch (err) {
        if (this.stopped) break;
        const e = err as HttpError;
        // A 4xx is an answer (the controller is there) but not a usable one.
        this.o.onReachable(e.status >= 400 && e.status < 500, e.message);
        const d = backoffDelay(this.failures++, this.o.backoff);
        this.o.onError?.('poll', e, d);
        await this.sleep(d);
        continue;
      }
      if (!resp || !Array.isArray(resp.versions) || resp.versions.length === 0) {
        this.failures = 0;
        continue;
      }
      try {
        this.after = await this.o.onResponse(resp);
        this.failures = 0;
      } catch (err) {
        if (this.stopped) break;
        const d = backoffDelay(this.failures++, this.o.backoff);
        this.o.onError?.('apply', err as Error, d);
        await this.sleep(d);
      }
    }
  }

  /** Stops polling (an in-flight long-poll is aborted) and waits for the loop to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    if (this.sleepTimer) clearTimeout(this.sleepTimer);
    this.wake?.();
    await this.loopDone;
  }
}
