/**
 * Control-plane benchmark (issue #6): publish-to-all-acks time for N
 * simulated agents (default 1,000) over real mutual TLS, in one process with
 * the real controller and key manager and a manager feed that speaks the
 * contracts.ts protocol. Not a gate: it prints a table.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/controller-acks.js [--agents 1000] [--reps 10]
 *
 * One rep: a revision that changes every host's config is appended to the
 * manager feed (t0); the controller's feed long-poll picks it up, translates,
 * and wakes every agent's config long-poll; each agent acks the new version.
 * Measured per rep: t0 → last agent has the version ("delivered"), t0 → last
 * ack answered ("all acked"), and per-agent delivery latency. A rotation rep:
 * rotate event → new key active for senders (every agent acked it).
 * Targets from the issue: delivery within 1 s, all acks within 2 s (p99).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { FeedServer, makePki, SimAgent, startController, startKm, tmpDir } from '../test/controller/harness';
import { fleetRevision, hostName } from '../test/controller/fleet';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const f = (ms: number) => ms.toFixed(0);

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function main(): Promise<void> {
  const n = arg('agents', 1000);
  const reps = arg('reps', 10);
  const created: string[] = [];
  const dir = tmpDir('bench-ctl', created);
  const t = performance.now();
  const pki = await makePki(path.join(dir, 'pki'), Array.from({ length: n }, (_, i) => hostName(i)));
  const pkiMs = performance.now() - t;
  const km = await startKm(pki, path.join(dir, 'km.db'));
  const feed = await FeedServer.start(pki);
  const ctl = await startController(pki, { dbFile: path.join(dir, 'c.db'), kmUrl: km.url, feedUrl: feed.url, tickMs: 1000, feedWaitSeconds: 25 });
  const agents = Array.from({ length: n }, (_, i) => new SimAgent(hostName(i), pki, ctl.port, 30));
  const tc = performance.now();
  for (const a of agents) a.start();
  let rev = 1;
  feed.push({ type: 'revision', revision: fleetRevision(n, rev, { small: 10 }) });
  const keysActive = () => ['kp-enc', 'kp-small'].every((p) => ctl.service.keyRecords().some((k) => k.policyId === p && k.phase === 'active'));
  const settled = () => agents.every((a) => a.after > 0 && a.after === ctl.service.latestVersion(a.hostId) && a.timing.get(a.after)?.acked !== undefined);
  await until(() => keysActive() && settled(), 120_000, 'first revision settled');
  const connectMs = performance.now() - tc;

  const handled: number[] = [];
  const delivered: number[] = [];
  const acked: number[] = [];
  const perAgent: number[] = [];
  for (let r = 0; r < reps; r++) {
    const target = agents.map((a) => a.after + 1);
    const t0 = performance.now();
    const seq = feed.push({ type: 'revision', revision: fleetRevision(n, ++rev, { small: 10, ports: ['443', String(10000 + r)] }) }).seq;
    until(() => ctl.service.feedCursor >= seq, 60_000, 'handled')
      .then(() => handled.push(performance.now() - t0))
      .catch(() => undefined);
    await until(() => agents.every((a, i) => a.timing.get(target[i]!)?.acked !== undefined), 60_000, `rep ${r}`);
    const recv = agents.map((a, i) => a.timing.get(target[i]!)!.received - t0);
    delivered.push(Math.max(...recv));
    acked.push(Math.max(...agents.map((a, i) => a.timing.get(target[i]!)!.acked! - t0)));
    perAgent.push(...recv);
  }

  const rotations: number[] = [];
  for (let r = 0; r < Math.max(1, Math.floor(reps / 2)); r++) {
    const before = new Set(ctl.service.keyRecords().map((k) => k.keyId));
    const t0 = performance.now();
    feed.push({ type: 'rotate', key_policy_id: 'kp-enc', requested_by: 'bench' });
    await until(() => ctl.service.keyRecords().some((k) => !before.has(k.keyId) && k.phase === 'active'), 60_000, 'rotation');
    rotations.push(performance.now() - t0);
    await until(settled, 60_000, 'settled after rotation');
  }

  const dup = agents.reduce((s, a) => s + a.duplicates, 0);
  const resets = agents.reduce((s, a) => s + a.resets, 0);
  const rows: Array<[string, string]> = [
    ['agents / reps', `${n} / ${reps}`],
    ['issue host certificates (ms)', f(pkiMs)],
    ['connect all + first revision settled (ms)', f(connectMs)],
    ['publish -> controller handled it (feed, translate, versions), p50 / max (ms)', `${f(pct(handled, 50))} / ${f(Math.max(...handled))}`],
    ['publish -> all delivered, p50 / p99 / max (ms)', `${f(pct(delivered, 50))} / ${f(pct(delivered, 99))} / ${f(Math.max(...delivered))}`],
    ['publish -> all acked, p50 / p99 / max (ms)', `${f(pct(acked, 50))} / ${f(pct(acked, 99))} / ${f(Math.max(...acked))}`],
    ['per-agent delivery latency, p50 / p99 (ms)', `${f(pct(perAgent, 50))} / ${f(pct(perAgent, 99))}`],
    ['rotate -> new key active for senders, p50 / max (ms)', `${f(pct(rotations, 50))} / ${f(Math.max(...rotations))}`],
    ['duplicate versions / resets seen by agents', `${dup} / ${resets}`],
    ['config JSON per host (bytes)', String(JSON.stringify(agents[n - 1]!.latest!.config).length)],
    ['controller RSS (MiB)', (process.memoryUsage().rss / 2 ** 20).toFixed(0)],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);

  await Promise.all(agents.map((a) => a.stop()));
  await ctl.close();
  await feed.close();
  await km.app.close();
  for (const d of created) fs.rmSync(d, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
