/**
 * The controller's schemas agree with ts/common/contracts.ts (the shapes both
 * ends rely on): compile-time assignability of the TypeBox types, and the
 * fields of a real config response, grant response and ack over HTTPS.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Static } from '@sinclair/typebox';
import type { AckBody as AckContract, GrantResponse as GrantContract, HostConfigResponse } from '../../ts/common/contracts';
import { AckBody, GrantResponse } from '../../ts/controller/schemas';
import type { KeyManagerApp } from '../../ts/keymanager/app';
import { agentFor, makePki, Pki, request, RunningController, startController, startKm, tmpDir } from './harness';
import { fleetRevision, hostName } from './fleet';

// Compile-time: what the controller validates/serialises is what the contract says (both directions for the ack).
const ackIn: AckContract = {} as Static<typeof AckBody>;
const ackOut: Static<typeof AckBody> = {} as AckContract;
const grantOut: GrantContract = {} as Static<typeof GrantResponse>;
void [ackIn, ackOut, grantOut];

const created: string[] = [];
let pki: Pki;
let km: { app: KeyManagerApp; url: string };
let ctl: RunningController;

beforeAll(async () => {
  const dir = tmpDir('ctl-contract', created);
  pki = await makePki(path.join(dir, 'pki'), [hostName(0), hostName(1)]);
  km = await startKm(pki, path.join(dir, 'km.db'));
  ctl = await startController(pki, { dbFile: path.join(dir, 'c.db'), kmUrl: km.url });
  await ctl.service.handle({ seq: 1, at: new Date().toISOString(), type: 'revision', revision: fleetRevision(2, 1, { small: 0 }) });
}, 60_000);

afterAll(async () => {
  await ctl.close();
  await km.app.close();
  for (const d of created) fs.rmSync(d, { recursive: true, force: true });
});

test('config, grant and ack responses carry exactly the contract fields', async () => {
  const a = agentFor(pki, `host/${hostName(0)}`);
  try {
    const r = await request(a, ctl.port, 'GET', `/v1/hosts/${hostName(0)}/config?after=0&wait=0`);
    expect(r.status).toBe(200);
    expect(r.body && typeof r.body).toBe('object');
    const body = r.body as HostConfigResponse;
    expect(Object.keys(body).sort()).toEqual(['grant', 'host_id', 'key_managers', 'versions']);
    expect(Object.keys(body.versions[0]!).sort()).toEqual(['config', 'created_at', 'revision', 'version']);
    expect(Object.keys(body.versions[0]!.config).sort()).toEqual(['defaultAction', 'hostId', 'keyPolicies', 'keys', 'ports', 'revision', 'rules'].sort());
    expect(body.versions[0]!.config.hostId).toBe(hostName(0));
    const g = await request(a, ctl.port, 'GET', `/v1/hosts/${hostName(0)}/grant`);
    expect(Object.keys(g.body).sort()).toEqual(['expires_at', 'grant', 'key_ids']);
    const ack = await request(a, ctl.port, 'POST', `/v1/hosts/${hostName(0)}/ack`, { version: 1, installed_key_ids: body.versions[0]!.config.keys.map((k) => k.keyId) });
    expect(ack.status).toBe(204);
    expect(ack.text).toBe('');
    const h = await request(a, ctl.port, 'GET', '/healthz');
    expect(h.body).toEqual({ status: 'ok', instanceId: 'c1', revision: 1 });
  } finally {
    a.destroy();
  }
});
