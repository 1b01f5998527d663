/**
 * Manager publish benchmark (issue #5, acceptance 6): the time to publish a
 * draft of 2,000 rules in 100 sections over 10,000 workloads in 500 groups
 * (target: under 2 s), with where it goes. Not a gate: nothing fails on a time.
 *
 *   npm run bench:manager   (builds with tsc, then runs dist/bench/manager-publish.js)
 *     [--reps 3] [--workloads 10000] [--groups 500] [--sections 100] [--rules-per-section 20]
 *
 * Each repetition publishes the same draft again on an on-disk SQLite store
 * (WAL, synchronous=FULL, as in production): read the draft, validate it
 * (the manager's checks plus the controller's translation), write the
 * revision and the feed event in one transaction.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Revision } from '../ts/common/policy-model';
import { validateRevision } from '../ts/manager/publish/validate';
import { assemble, currentInventory, draftPolicy } from '../ts/manager/revision';
import { ManagerService } from '../ts/manager/service';
import { SqliteManagerStore } from '../ts/manager/sqlite-store';
import { explainFlow } from '../ts/manager/explain';
import { BENCH_SIZE, writeLargeDraft } from '../test/manager/large-draft';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

function ms(t0: number): string {
  return (performance.now() - t0).toFixed(0).padStart(7);
}

async function main(): Promise<void> {
  const size = {
    workloads: arg('workloads', BENCH_SIZE.workloads),
    hosts: arg('hosts', BENCH_SIZE.hosts),
    groups: arg('groups', BENCH_SIZE.groups),
    sections: arg('sections', BENCH_SIZE.sections),
    rulesPerSection: arg('rules-per-section', BENCH_SIZE.rulesPerSection),
  };
  const reps = arg('reps', 3);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dne-bench-manager-'));
  try {
    const store = new SqliteManagerStore(path.join(dir, 'manager.db'));
    let t0 = performance.now();
    await writeLargeDraft(store, size);
    const loadMs = performance.now() - t0;
    const log = pino({ level: 'silent' }, new Writable({ write: (_c, _e, cb) => cb() }));
    const service = new ManagerService(store, { autoPublishInventory: true }, log);

    process.stdout.write(
      `manager publish: ${size.sections * size.rulesPerSection} rules in ${size.sections} sections, ${size.workloads} workloads on ${size.hosts} hosts, ${size.groups} groups (draft written in ${loadMs.toFixed(0)} ms)\n\n`,
    );
    process.stdout.write('  rep | read draft ms | validate ms | publish total ms | revision JSON\n');
    process.stdout.write('  ----+---------------+-------------+------------------+--------------\n');
    const totals: number[] = [];
    let last: Revision | undefined;
    for (let i = 1; i <= reps; i++) {
      // The phases alone (a read transaction), then the real publish (one write transaction).
      let readMs = 0;
      let validateMs = 0;
      await store.read(async (tx) => {
        t0 = performance.now();
        const rev = assemble(0, new Date().toISOString(), await draftPolicy(tx), await currentInventory(tx));
        readMs = performance.now() - t0;
        t0 = performance.now();
        const problems = validateRevision(rev, { keyManagerIds: new Set() });
        validateMs = performance.now() - t0;
        if (problems.length) throw new Error(`the bench draft does not validate: ${problems[0]!.message}`);
      });
      t0 = performance.now();
      const r = await service.publish('bench');
      const total = performance.now() - t0;
      totals.push(total);
      last = r.rev;
      const bytes = JSON.stringify(r.rev).length;
      process.stdout.write(`  ${String(i).padStart(3)} | ${readMs.toFixed(0).padStart(13)} | ${validateMs.toFixed(0).padStart(11)} | ${total.toFixed(0).padStart(16)} | ${(bytes / 1e6).toFixed(1)} MB\n`);
    }
    const best = Math.min(...totals);
    process.stdout.write(`\n  publish: best ${best.toFixed(0)} ms, median ${totals.sort((a, b) => a - b)[Math.floor(totals.length / 2)]!.toFixed(0)} ms (target < 2000 ms)\n`);

    t0 = performance.now();
    const v = explainFlow(last!, last!.revision, { workload_id: 'wl-7', source_ip: '10.0.0.7', destination_ip: '10.0.1.44', protocol: 'TCP', source_port: 40000, destination_port: 3000 });
    process.stdout.write(`  explain on that revision: ${ms(t0).trim()} ms (${v.action}${v.rule_id ? ` by ${v.rule_id}` : ''})\n`);
    await store.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
