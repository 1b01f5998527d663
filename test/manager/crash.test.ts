/**
 * Acceptance 3: kill -9 of the manager while it publishes leaves the old or
 * the new revision, never half of one. Runs the real `dne manager` process
 * over HTTPS on a large draft, kills it in the middle of a stream of
 * publishes, and checks the database: integrity, revisions numbered without
 * gaps, every revision whole (all its sections, rules and workloads), one
 * feed event and one audit record per revision, and every acknowledged
 * publish present. Then the manager starts again on the same file and goes on.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Revision } from '../../ts/common/policy-model';
import { MANAGER_API } from '../../ts/common/contracts';
import { SqliteManagerStore } from '../../ts/manager/sqlite-store';
import { client, closeAgents, makePki, TestPki } from '../keymanager/helpers';
import { buildCli, cliPath } from '../keymanager/spawn';
import { tmpDir } from './helpers';
import { writeLargeDraft } from './large-draft';

const SIZE = { workloads: 4000, hosts: 200, groups: 200, sections: 50, rulesPerSection: 20 };
const TOKEN = 'crash-test-admin-token-0123456789';
let pki: TestPki;

beforeAll(async () => {
  pki = await makePki();
  await buildCli();
}, 240_000);
afterAll(() => closeAgents());

interface Proc {
  child: ChildProcess;
  port: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startManager(args: string[]): Promise<Proc> {
  const child = spawn(process.execPath, [cliPath, 'manager', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`manager did not start within 60 s:\n${output.join('\n')}`));
    }, 60_000);
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        output.push(line);
        try {
          const j = JSON.parse(line) as { msg?: string; port?: number };
          if (j.msg === 'manager listening' && typeof j.port === 'number') {
            clearTimeout(timer);
            resolve({ child, port: j.port, exited });
          }
        } catch {
          /* not JSON */
        }
      }
    });
    child.stderr!.on('data', (c: Buffer) => output.push(c.toString('utf8')));
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`manager exited (code ${code}, signal ${signal}) before listening:\n${output.join('\n')}`));
    });
  });
}

async function checkWhole(dbFile: string, acked: Set<number>): Promise<number> {
  const store = new SqliteManagerStore(dbFile);
  try {
    expect(await store.integrityCheck()).toBe('ok');
    return await store.read(async (tx) => {
      const rows = (await tx.listRevisions(1_000_000)).map((r) => r.number).sort((a, b) => a - b);
      expect(rows).toEqual(rows.map((_, i) => i + 1)); // 1..N, no gaps
      for (const n of acked) expect(rows).toContain(n);
      const feed = await tx.listFeed(0, 1_000_000);
      expect(feed.map((f) => f.body.revision)).toEqual(rows);
      const audit = (await tx.listAudit(0, 1_000_000)).filter((e) => e.action === 'publish').map((e) => Number(e.object_id));
      expect(audit).toEqual(rows);
      for (const n of rows) {
        const rev = JSON.parse((await tx.getRevision(n))!.body) as Revision;
        expect(rev.revision).toBe(n);
        expect(rev.sections).toHaveLength(SIZE.sections);
        expect(rev.sections.every((s) => s.rules.length === SIZE.rulesPerSection)).toBe(true);
        expect(rev.workloads).toHaveLength(SIZE.workloads);
        expect(rev.groups).toHaveLength(SIZE.groups);
      }
      return rows.length;
    });
  } finally {
    await store.close();
  }
}

test('kill -9 during publishes leaves only whole revisions', async () => {
  const dir = tmpDir('mgr-crash');
  const dbFile = path.join(dir, 'manager.db');
  const tokenFile = path.join(dir, 'admin.token');
  fs.writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
  const seed = new SqliteManagerStore(dbFile);
  await writeLargeDraft(seed, SIZE);
  await seed.close();
  const args = ['--pki-dir', pki.dir, '--name', 'm1', '--db', dbFile, '--port', '0', '--admin-token-file', tokenFile, '--log-level', 'info'];
  const acked = new Set<number>();
  let total = 0;

  for (let round = 0; round < 2; round++) {
    const m = await startManager(args);
    const req = client(m.port, pki, null);
    let stop = false;
    let errors = 0;
    // Two publishers back to back, so a publish is nearly always in flight.
    const publisher = async () => {
      while (!stop) {
        try {
          const r = await req('POST', `${MANAGER_API}/publish`, {}, { authorization: `Bearer ${TOKEN}` });
          if (r.status === 201) acked.add(r.body.revision as number);
          else if (!stop) throw new Error(`publish: ${r.status} ${r.text}`);
        } catch (err) {
          if (!stop) throw err;
          errors++;
        }
      }
    };
    const runs = [publisher(), publisher()];
    // Let a few publishes complete, then kill in the middle of the next ones.
    const target = acked.size + 2;
    while (acked.size < target) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 300)));
    m.child.kill('SIGKILL');
    stop = true;
    expect((await m.exited).signal).toBe('SIGKILL');
    await Promise.allSettled(runs);
    closeAgents();
    total = await checkWhole(dbFile, acked);
    expect(total).toBeGreaterThanOrEqual(acked.size);
    // The kill cut publishes in flight (their connections were reset, unanswered).
    expect(errors).toBeGreaterThan(0);
  }

  // It starts again on the same file and numbers on.
  const m = await startManager(args);
  try {
    const r = await client(m.port, pki, null)('POST', `${MANAGER_API}/publish`, {}, { authorization: `Bearer ${TOKEN}` });
    expect(r.status).toBe(201);
    expect(r.body.revision).toBe(total + 1);
  } finally {
    m.child.kill('SIGTERM');
    expect((await m.exited).code).toBe(0);
  }
}, 300_000);
