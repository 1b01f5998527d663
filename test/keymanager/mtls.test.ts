/**
 * Acceptance 1: mutual TLS only. No client certificate, or one from another
 * CA, gets no HTTP at all; a dne-CA certificate without a dne identity gets
 * 403; only the controller creates, rotates and revokes keys (manager and
 * admin read metadata); nobody but the host a grant names reads key bytes.
 */
import { client, closeAgents, grantFor, makePki, RunningKm, startKm, TestPki } from './helpers';

let pki: TestPki;
let km: RunningKm;

beforeAll(async () => {
  pki = await makePki();
  km = await startKm(pki);
});

afterAll(async () => {
  closeAgents();
  await km.close();
});

async function refusedAtTls(who: string | null): Promise<void> {
  const req = client(km.port, pki, who);
  let res: unknown;
  let error: NodeJS.ErrnoException | undefined;
  try {
    res = await req('GET', '/healthz');
  } catch (err) {
    error = err as NodeJS.ErrnoException;
  }
  expect(res).toBeUndefined();
  expect(error).toBeDefined();
  // TLS 1.3 reports the server's alert on the client's first read: certificate required / unknown CA, or a reset.
  expect(String(error?.code ?? error?.message)).toMatch(/ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED|ERR_SSL_TLSV1_ALERT_UNKNOWN_CA|ECONNRESET|EPIPE|alert/i);
}

test('a client without a certificate cannot connect', async () => {
  await refusedAtTls(null);
});

test('a client with a certificate from another CA cannot connect', async () => {
  await refusedAtTls('foreign/h1');
});

test('the same client with a dne certificate gets through (the refusals above are about the certificate)', async () => {
  const r = await client(km.port, pki, 'host/h1')('GET', '/healthz');
  expect(r.status).toBe(200);
  expect(r.body).toEqual({ status: 'ok', instanceId: 'km1', store: 'sqlite' });
});

test('a dne-CA certificate without a dne:// identity is refused with 403 and audited', async () => {
  const r = await client(km.port, pki, 'noid/x')('GET', '/v1/keys');
  expect(r.status).toBe(403);
  expect(r.body.code).toBe('ERR_DNE_FORBIDDEN');
  expect(r.body.message).toMatch(/no dne:\/\/ URI SAN/);
  const audit = await client(km.port, pki, 'admin/ops')('GET', '/v1/audit?limit=1000');
  const e = audit.body.entries.find((x: { actor: string }) => x.actor.startsWith('unidentified peer'));
  expect(e).toBeDefined();
  expect(e.outcome).toBe('refused');
  expect(e.actor).toMatch(/CN=h1/);
});

test('the controller manages keys but can never read key bytes', async () => {
  const c1 = client(km.port, pki, 'controller/c1');
  const created = await c1('POST', '/v1/keys', { policyId: 'mtls-1', algorithm: 'AES_GCM_128' });
  expect(created.status).toBe(201);
  const keyId = created.body.keyId as string;
  for (const r of [created, await c1('GET', `/v1/keys/${keyId}`), await c1('GET', '/v1/keys?policyId=mtls-1')]) {
    expect(r.status).toBeLessThan(300);
    expect(r.text).not.toMatch(/"key"|"salt"|sealed/);
  }

  // Even with a valid grant (signed by the trusted controller key, naming "c1" as host), release needs role host.
  for (const who of ['controller/c1', 'manager/m1', 'admin/ops', 'keymanager/km2']) {
    const name = who.split('/')[1];
    const r = await client(km.port, pki, who)('POST', '/v1/release', { grant: grantFor(pki, name, [keyId]), count: 1 });
    expect(r.status).toBe(403);
    expect(r.body.code).toBe('ERR_DNE_FORBIDDEN');
    expect(r.body.message).toBe(`dne://${who} may not fetch key material; that needs the role host`);
    expect(r.text).not.toMatch(/"key"/);
  }

  // The host the grant names does get it.
  const h1 = await client(km.port, pki, 'host/h1')('POST', '/v1/release', { grant: grantFor(pki, 'h1', [keyId]), count: 1 });
  expect(h1.status).toBe(200);
  expect(Buffer.from(h1.body.keys[0].key, 'base64')).toHaveLength(16);
  expect(Buffer.from(h1.body.keys[0].salt, 'base64')).toHaveLength(4);
  expect(h1.headers['cache-control']).toBe('no-store');
});

test('hosts cannot manage keys and only admin reads the audit log', async () => {
  const h1 = client(km.port, pki, 'host/h1');
  const r = await h1('POST', '/v1/keys', { policyId: 'mtls-2', algorithm: 'AES_GCM_128' });
  expect(r.status).toBe(403);
  expect(r.body.message).toBe('dne://host/h1 may not create keys; that needs the role controller');
  expect((await h1('GET', '/v1/keys')).status).toBe(403);
  const c1 = await client(km.port, pki, 'controller/c1')('GET', '/v1/audit');
  expect(c1.status).toBe(403);
  expect(c1.body.message).toMatch(/may not read the audit log; that needs the role admin/);
});

test('manager and admin certificates read key metadata but cannot create, rotate or revoke keys (the controller would not know)', async () => {
  const c1 = client(km.port, pki, 'controller/c1');
  const key = (await c1('POST', '/v1/keys', { policyId: 'mtls-3', algorithm: 'AES_GCM_128' })).body;
  expect(key.state).toBe('active');
  for (const who of ['manager/m1', 'admin/ops']) {
    const as = client(km.port, pki, who);
    const create = await as('POST', '/v1/keys', { policyId: `mtls-4-${who.split('/')[0]}`, algorithm: 'AES_GCM_128' });
    expect(create.status).toBe(403);
    expect(create.body.code).toBe('ERR_DNE_FORBIDDEN');
    expect(create.body.message).toBe(`dne://${who} may not create keys; that needs the role controller`);
    const rotate = await as('POST', '/v1/policies/mtls-3/rotate', {});
    expect(rotate.status).toBe(403);
    expect(rotate.body.message).toBe(`dne://${who} may not rotate keys; that needs the role controller`);
    const revoke = await as('POST', `/v1/keys/${key.keyId}/revoke`, { reason: 'outage' });
    expect(revoke.status).toBe(403);
    expect(revoke.body.message).toBe(`dne://${who} may not revoke keys; that needs the role controller`);
    // Read-only access stays.
    expect((await as('GET', `/v1/keys/${key.keyId}`)).body.state).toBe('active');
    expect((await as('GET', '/v1/keys?policyId=mtls-3')).body.keys).toHaveLength(1);
    expect((await as('GET', `/v1/keys?policyId=mtls-4-${who.split('/')[0]}`)).body.keys).toHaveLength(0);
  }
  // Nothing changed: still one active key, the one the controller created.
  const list = await c1('GET', '/v1/keys?policyId=mtls-3');
  expect(list.body.keys.map((k: { keyId: string; state: string }) => [k.keyId, k.state])).toEqual([[key.keyId, 'active']]);
  const audit = await client(km.port, pki, 'admin/ops')('GET', '/v1/audit?limit=1000');
  const refused = audit.body.entries.filter((e: { actor: string; outcome: string; action: string }) => e.outcome === 'refused' && e.action !== 'release' && /manager\/m1|admin\/ops/.test(e.actor));
  expect(refused.map((e: { action: string }) => e.action).sort()).toEqual(['create', 'create', 'revoke', 'revoke', 'rotate', 'rotate']);
});
