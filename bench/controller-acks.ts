/**
 * Control-plane benchmark (issue #6): publish-to-all-acks time for N
 * simulated agents (default 1,000) over real mutual TLS. Two processes, as
 * in production the agents are not in the controller's event loop:
 *
 *   this process: the real controller, the real key manager, and a manager
 *                 feed that speaks the contracts.ts protocol
 *   child:        N simulated agents (test/controller/harness.ts SimAgent),
 *                 each with its own host certificate and TLS connection
 *
 *   npx tsc -p tsconfig.json && node dist/bench/controller-acks.js [--agents 1000] [--reps 10]
 *   (or: npm run bench:controller)
 *
 * One rep: a revision that changes every host's config is appended to the
 * manager feed (t0); the controller's feed long-poll picks it up, translates,
 * gives every host a new version and wakes its long-poll; each agent parses
 * it and acks. Measured: t0 → controller handled it, t0 → last agent has it
 * ("all delivered"), t0 → last ack answered ("all acked"), and each agent's
 * delivery latency. Rotation reps: rotate event → new key active for senders
 * (every agent acked it receive-only). Times are wall-clock ms across the
 * two processes (performance.timeOrigin + now). Not a gate: it prints a table.
 * Issue targets: delivery within 1 s, all acks within 2 s at p99.
 */
import { ChildProcess, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Creds, FeedServer, makePki, Pki, SimAgent, startController, startKm, tmpDir } from '../test/controller/harness';
import { fleetRevision, hostName } from '../test/controller/fleet';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

const wall = () => performance.timeOrigin + performance.now();
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};
const f = (ms: number) => ms.toFixed(0);

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

// ------------------------------------------------------------ the agents' process

type ToChild =
  | { type: 'start'; port: number; ca: string; creds: Array<[string, string, string]> }
  | { type: 'wait'; targets: Record<string, number> }
  | { type: 'stop' };
type FromChild = { type: 'started' } | { type: 'reached'; received: number[]; acked: number[]; duplicates: number; resets: number; errors: number };

function agentsProcess(): void {
  let agents: SimAgent[] = [];
  const send = (m: FromChild) => process.send!(m);
  process.on('message', (m: ToChild) => {
    if (m.type === 'start') {
      const pki = { ca: Buffer.from(m.ca), creds: new Map<string, Creds>(m.creds.map(([n, c, k]) => [`host/${n}`, { cert: Buffer.from(c), key: Buffer.from(k) }])) } as Pki;
      agents = m.creds.map(([n]) => new SimAgent(n, pki, m.port, 30));
      for (const a of agents) a.start();
      send({ type: 'started' });
    } else if (m.type === 'wait') {
      const done = (a: SimAgent) => a.after >= m.targets[a.hostId]! && a.timing.get(m.targets[a.hostId]!)?.acked !== undefined;
      void Promise.all(agents.map((a) => a.waitFor(done, 120_000))).then(() => {
        // SimAgent times are this process's performance.now(); make them wall-clock.
        const at = (a: SimAgent, k: 'received' | 'acked') => performance.timeOrigin + a.timing.get(m.targets[a.hostId]!)![k]!;
        send({
          type: 'reached',
          received: agents.map((a) => at(a, 'received')),
          acked: agents.map((a) => at(a, 'acked')),
          duplicates: agents.reduce((s, a) => s + a.duplicates, 0),
          resets: agents.reduce((s, a) => s + a.resets, 0),
          errors: agents.reduce((s, a) => s + a.errors, 0),
        });
      });
    } else {
      void Promise.all(agents.map((a) => a.stop())).then(() => process.exit(0));
    }
  });
}

class Agents {
  private next: ((m: FromChild) => void) | undefined;
  constructor(private readonly child: ChildProcess) {
    child.on('message', (m: FromChild) => this.next?.(m));
  }
  private ask(m: ToChild): Promise<FromChild> {
    return new Promise((resolve) => {
      this.next = resolve;
      this.child.send(m);
    });
  }
  start(port: number, pki: Pki, names: string[]) {
    return this.ask({ type: 'start', port, ca: pki.ca.toString(), creds: names.map((n) => [n, pki.creds.get(`host/${n}`)!.cert.toString(), pki.creds.get(`host/${n}`)!.key.toString()]) });
  }
  async wait(targets: Record<string, number>) {
    return (await this.ask({ type: 'wait', targets })) as Extract<FromChild, { type: 'reached' }>;
  }
  stop(): Promise<void> {
    return new Promise((r) => {
      this.child.once('exit', () => r());
      this.child.send({ type: 'stop' });
    });
  }
}

// ------------------------------------------------------------ the controller's process

async function main(): Promise<void> {
  const n = arg('agents', 1000);
  const reps = arg('reps', 10);
  const names = Array.from({ length: n }, (_, i) => hostName(i));
  const created: string[] = [];
  const dir = tmpDir('bench-ctl', created);
  const t = wall();
  const pki = await makePki(path.join(dir, 'pki'), names);
  const pkiMs = wall() - t;
  const km = await startKm(pki, path.join(dir, 'km.db'));
  const feed = await FeedServer.start(pki);
  const ctl = await startController(pki, { dbFile: path.join(dir, 'c.db'), kmUrl: km.url, feedUrl: feed.url, tickMs: 1000, feedWaitSeconds: 25 });
  const agents = new Agents(fork(__filename, ['--role', 'agents'], { stdio: 'inherit' }));
  const latest = () => Object.fromEntries(names.map((h) => [h, ctl.service.latestVersion(h)]));
  /** Waits until every agent acked the controller's latest version, also when that moves meanwhile. */
  const settle = async () => {
    for (;;) {
      const target = latest();
      await agents.wait(target);
      if (JSON.stringify(latest()) === JSON.stringify(target)) return;
    }
  };

  const tc = wall();
  await agents.start(ctl.port, pki, names);
  let rev = 1;
  feed.push({ type: 'revision', revision: fleetRevision(n, rev, { small: 10 }) });
  await until(() => ['kp-enc', 'kp-small'].every((p) => ctl.service.keyRecords().some((k) => k.policyId === p && k.phase === 'active')), 120_000, 'first keys');
  await settle();
  const connectMs = wall() - tc;

  const handled: number[] = [];
  const delivered: number[] = [];
  const acked: number[] = [];
  const perAgent: number[] = [];
  let last: Extract<FromChild, { type: 'reached' }> | undefined;
  for (let r = 0; r < reps; r++) {
    const target = Object.fromEntries(names.map((h) => [h, ctl.service.latestVersion(h) + 1]));
    const t0 = wall();
    const seq = feed.push({ type: 'revision', revision: fleetRevision(n, ++rev, { small: 10, ports: ['443', String(10000 + r)] }) }).seq;
    const handledP = until(() => ctl.service.feedCursor >= seq, 60_000, 'handled').then(() => handled.push(wall() - t0));
    last = await agents.wait(target);
    await handledP;
    delivered.push(Math.max(...last.received) - t0);
    acked.push(Math.max(...last.acked) - t0);
    perAgent.push(...last.received.map((x) => x - t0));
  }

  const rotations: number[] = [];
  for (let r = 0; r < Math.max(1, Math.floor(reps / 2)); r++) {
    const before = new Set(ctl.service.keyRecords().map((k) => k.keyId));
    const t0 = wall();
    feed.push({ type: 'rotate', key_policy_id: 'kp-enc', requested_by: 'bench' });
    await until(() => ctl.service.keyRecords().some((k) => !before.has(k.keyId) && k.phase === 'active'), 60_000, 'rotation');
    rotations.push(wall() - t0);
    await settle();
  }

  const rows: Array<[string, string]> = [
    ['agents (own process) / reps', `${n} / ${reps}`],
    ['issue host certificates (ms)', f(pkiMs)],
    ['connect all + first revision settled (ms)', f(connectMs)],
    ['publish -> controller handled it, p50 / max (ms)', `${f(pct(handled, 50))} / ${f(Math.max(...handled))}`],
    ['publish -> all delivered, p50 / p99 / max (ms)', `${f(pct(delivered, 50))} / ${f(pct(delivered, 99))} / ${f(Math.max(...delivered))}`],
    ['publish -> all acked, p50 / p99 / max (ms)', `${f(pct(acked, 50))} / ${f(pct(acked, 99))} / ${f(Math.max(...acked))}`],
    ['per-agent delivery latency, p50 / p99 (ms)', `${f(pct(perAgent, 50))} / ${f(pct(perAgent, 99))}`],
    ['rotate -> new key active for senders, p50 / max (ms)', `${f(pct(rotations, 50))} / ${f(Math.max(...rotations))}`],
    ['duplicate versions / resets / poll errors at agents', `${last!.duplicates} / ${last!.resets} / ${last!.errors}`],
    ['controller + key manager RSS (MiB)', (process.memoryUsage().rss / 2 ** 20).toFixed(0)],
  ];
  const w = Math.max(...rows.map((x) => x[0].length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);

  await agents.stop();
  await ctl.close();
  await feed.close();
  await km.app.close();
  for (const d of created) fs.rmSync(d, { recursive: true, force: true });
}

if (process.argv.includes('--role') && process.argv[process.argv.indexOf('--role') + 1] === 'agents') {
  agentsProcess();
} else {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
