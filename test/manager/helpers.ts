/**
 * Helpers for the manager suites: an app on a temporary SQLite file driven
 * through app.inject with an admin bearer token, and small builders for
 * request bodies.
 */
import * as path from 'node:path';
import { MANAGER_API } from '../../ts/common/contracts';
import { buildManagerApp, hashToken, ManagerApp, ManagerTls } from '../../ts/manager/app';
import { SqliteManagerStore } from '../../ts/manager/sqlite-store';
import { makeTmpDir, removedAfterAll, testLogger } from '../common/helpers';

// light-my-request (app.inject) requires the `cookie` package, which is ESM
// only since v1; jest's CommonJS loader cannot load it (node itself can).
// The manager never sets cookies, so a stand-in that refuses to be used is
// enough for inject to load.
jest.mock('cookie', () => ({
  stringifySetCookie: () => {
    throw new Error('the manager sets no cookies');
  },
  parseCookie: () => ({}),
  parse: () => ({}),
}));

const created = removedAfterAll();

export function tmpDir(prefix: string): string {
  return makeTmpDir(prefix, created);
}

export const TOKEN = 'test-admin-token-0123456789abcdef';
export const API = MANAGER_API;

export interface Harness {
  app: ManagerApp;
  store: SqliteManagerStore;
  dbFile: string;
  /** Admin request through app.inject (bearer token). */
  req(method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; text: string }>; // eslint-disable-line @typescript-eslint/no-explicit-any
  close(): Promise<void>;
}

export interface HarnessOptions {
  autoPublishInventory?: boolean;
  /** Default 0 here (every inventory change publishes at once, as the older suites expect); the manager's own default is 2. */
  autoPublishMinIntervalSeconds?: number;
  trustedReportedTagScopes?: string[];
  bodyLimit?: number;
  tls?: ManagerTls;
  dbFile?: string;
  now?: () => Date;
}

export async function harness(o: HarnessOptions = {}): Promise<Harness> {
  const dbFile = o.dbFile ?? path.join(tmpDir('mgr'), 'manager.db');
  const store = new SqliteManagerStore(dbFile);
  const logger = testLogger('manager');
  const app = await buildManagerApp({
    store,
    settings: {
      autoPublishInventory: o.autoPublishInventory ?? true,
      autoPublishMinIntervalSeconds: o.autoPublishMinIntervalSeconds ?? 0,
      trustedReportedTagScopes: o.trustedReportedTagScopes ?? [],
    },
    now: o.now,
    adminTokens: [{ name: 'ops', sha256: hashToken(TOKEN) }],
    logger,
    bodyLimit: o.bodyLimit,
    tls: o.tls,
  });
  const req: Harness['req'] = async (method, url, body, headers = {}) => {
    const r = await app.inject({
      method: method as 'GET',
      url: url.startsWith('/') && !url.startsWith(API) && !url.startsWith('/openapi') && !url.startsWith('/docs') && !url.startsWith('/healthz') ? API + url : url,
      headers: { authorization: `Bearer ${TOKEN}`, ...headers },
      ...(body === undefined ? {} : typeof body === 'string' ? { payload: body, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...headers } } : { payload: body as object }),
    });
    let parsed: unknown;
    try {
      parsed = r.body ? JSON.parse(r.body) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: r.statusCode, body: parsed, text: r.body };
  };
  return { app, store, dbFile, req, close: () => app.close() };
}

export function vnic(id: string, ipv4: string[], ipv6: string[] = []) {
  return { id, mac: '02:00:00:00:00:01', ipv4, ipv6, workload_if: `${id.slice(0, 10)}w`, network_if: `${id.slice(0, 10)}n` };
}

export function ref(target_type: 'NSGroup' | 'IPSet' | 'Workload' | 'IPAddress', target_id: string) {
  return { target_type, target_id };
}

/** Checks a response status and returns the body; the message shows the body on failure. */
export function ok<T = any>(r: { status: number; body: any; text: string }, status = 200): T { // eslint-disable-line @typescript-eslint/no-explicit-any
  if (r.status !== status) throw new Error(`expected ${status}, got ${r.status}: ${r.text}`);
  return r.body as T;
}

/**
 * A small estate: hosts h1 h2, workloads web1 web2 (tag tier=web) and db1
 * (tier=db), group web and db by tag, an IP set, a default ENCRYPT key policy
 * and an INTEGRITY_ONLY one.
 */
export async function seed(h: Harness): Promise<void> {
  ok(await h.req('POST', '/hosts', { id: 'h1', display_name: 'host 1' }), 201);
  ok(await h.req('POST', '/hosts', { id: 'h2', display_name: 'host 2' }), 201);
  ok(await h.req('POST', '/workloads', { id: 'web1', display_name: 'web 1', host_id: 'h1', vnics: [vnic('web1-n0', ['10.0.0.1'])], tags: [{ scope: 'tier', tag: 'web' }] }), 201);
  ok(await h.req('POST', '/workloads', { id: 'web2', display_name: 'web 2', host_id: 'h2', vnics: [vnic('web2-n0', ['10.0.0.2'])], tags: [{ scope: 'tier', tag: 'web' }] }), 201);
  ok(await h.req('POST', '/workloads', { id: 'db1', display_name: 'db 1', host_id: 'h2', vnics: [vnic('db1-n0', ['10.0.1.1'], ['fd00::11'])], tags: [{ scope: 'tier', tag: 'db' }] }), 201);
  ok(await h.req('POST', '/groups', { id: 'web', display_name: 'web tier', expressions: [{ scope: 'tier', tag: 'web' }] }), 201);
  ok(await h.req('POST', '/groups', { id: 'db', display_name: 'db tier', expressions: [{ scope: 'tier', tag: 'db' }] }), 201);
  ok(await h.req('POST', '/ip-sets', { id: 'mgmt', display_name: 'management', ip_addresses: ['192.168.0.0/24'] }), 201);
  ok(await h.req('POST', '/key-policies', { id: 'kp-enc', display_name: 'default encrypt', is_default: true }), 201);
  ok(await h.req('POST', '/key-policies', { id: 'kp-int', display_name: 'integrity', encrypt_type: 'INTEGRITY_ONLY' }), 201);
}

/** Everything the store holds, as one string: equal before and after means nothing changed. */
export async function storeDigest(h: Harness): Promise<string> {
  return h.store.read(async (tx) => {
    const parts: unknown[] = [];
    for (const k of ['key_manager', 'key_policy', 'section', 'rule', 'group', 'ip_set', 'host', 'workload', 'config'] as const) parts.push(await tx.list(k));
    parts.push(await tx.listRevisions(1_000_000), await tx.listAudit(0, 1_000_000), await tx.latestFeedSeq(), await tx.listStats(), await tx.getMeta('last_auto_publish'));
    return JSON.stringify(parts);
  });
}
