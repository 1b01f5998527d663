/**
 * A small JSON-over-HTTPS client with mutual TLS, shared by every component
 * that calls another (controller -> manager and key manager, agent ->
 * controller, manager and key manager; DESIGN §6). One keep-alive agent per
 * client; every call has a deadline and can be aborted (long-polls are
 * aborted on shutdown). Response bodies are size-capped.
 *
 * Errors never carry request or response bodies (a release response holds
 * key bytes): only method, path, status and the server's `message` field.
 */
import * as https from 'node:https';
import { readFileSync } from 'node:fs';

export interface TlsFiles {
  cert: string;
  key: string;
  ca: string;
}

export interface TlsMaterial {
  cert: string | Buffer;
  key: string | Buffer;
  ca: string | Buffer;
}

export function readTlsFiles(f: TlsFiles): TlsMaterial {
  return { cert: readFileSync(f.cert), key: readFileSync(f.key), ca: readFileSync(f.ca) };
}

export class HttpError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    /** 0: no HTTP answer (connection refused, TLS failure, timeout). */
    readonly status: number,
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  /** Deadline for the whole exchange, ms (default 10 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface JsonResponse<T> {
  status: number;
  body: T;
}

const MAX_BODY = 64 * 1024 * 1024;

export class MtlsClient {
  private readonly agent: https.Agent;
  private readonly url: URL;

  constructor(baseUrl: string, tls: TlsMaterial, opts: { maxSockets?: number } = {}) {
    this.url = new URL(baseUrl);
    if (this.url.protocol !== 'https:') throw new Error(`${baseUrl}: only https:// URLs are supported`);
    this.agent = new https.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 8, cert: tls.cert, key: tls.key, ca: tls.ca });
  }

  get baseUrl(): string {
    return this.url.origin;
  }

  /** Any 2xx resolves; anything else rejects with HttpError. */
  async request<T = unknown>(method: string, path: string, o: RequestOptions = {}): Promise<JsonResponse<T>> {
    const payload = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
    const headers: Record<string, string | number> = { accept: 'application/json', ...o.headers };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    return new Promise<JsonResponse<T>>((resolve, reject) => {
      const fail = (status: number, msg: string, code?: string) => reject(new HttpError(method, path, status, `${method} ${this.url.origin}${path}: ${msg}`, code));
      const req = https.request(
        { protocol: 'https:', host: this.url.hostname, port: this.url.port || 443, method, path, agent: this.agent, headers, timeout: o.timeoutMs ?? 10_000, signal: o.signal },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_BODY) req.destroy(new Error('response too large'));
            else chunks.push(c);
          });
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            const raw = Buffer.concat(chunks);
            const text = raw.toString('utf8');
            // A key release answer holds key bytes: do not leave them in
            // Buffers waiting for the GC (the string cannot be wiped).
            raw.fill(0);
            for (const c of chunks) c.fill(0);
            let body: unknown = undefined;
            if (text.length > 0) {
              try {
                body = JSON.parse(text);
              } catch {
                return fail(status, `status ${status}, body is not JSON`);
              }
            }
            if (status >= 200 && status < 300) return resolve({ status, body: body as T });
            const b = body as { message?: unknown; code?: unknown } | undefined;
            const m = typeof b?.message === 'string' ? b.message : '';
            fail(status, `status ${status}${m ? `: ${m}` : ''}`, typeof b?.code === 'string' ? b.code : undefined);
          });
          res.on('error', (e) => fail(0, e.message));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs ?? 10_000} ms`)));
      req.on('error', (e: Error & { code?: string }) => fail(0, e.message, e.code));
      req.end(payload);
    });
  }

  get<T = unknown>(path: string, o?: RequestOptions) {
    return this.request<T>('GET', path, o);
  }
  post<T = unknown>(path: string, body?: unknown, o?: RequestOptions) {
    return this.request<T>('POST', path, { ...o, body });
  }
  put<T = unknown>(path: string, body?: unknown, o?: RequestOptions) {
    return this.request<T>('PUT', path, { ...o, body });
  }

  close(): void {
    this.agent.destroy();
  }
}
