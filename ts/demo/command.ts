/** `dne demo`: the whole system on real traffic, on this machine (ts/demo/scenario.ts). */
import * as fs from 'node:fs';
import { Command } from 'commander';
import { DneError, ErrorCodes } from '../common/errors';
import { Demo, POLICY_IDS } from './scenario';

function positiveInt(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1) throw new DneError(ErrorCodes.config, `${flag} must be a positive integer, got ${JSON.stringify(v)}`);
    return n;
  };
}

function basePort(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1024 || n > 65524) throw new DneError(ErrorCodes.config, `--base-port must be 1024-65524 (it uses base..base+11), got ${JSON.stringify(v)}`);
  return n;
}

export function registerDemoCommand(program: Command, out: (l: string) => void = (l) => process.stdout.write(l + '\n')): void {
  program
    .command('demo')
    .description('run a server, two hosts with two workloads each in network namespaces and their agents; apply a policy; show encryption, rotation and revocation on real traffic; clean up (root)')
    .option('--dir <dir>', 'working directory (default: a new temp dir, removed at the end)')
    .option('--keep', 'keep the working directory (captures, logs, server data) after the run')
    .option('--hold', 'after the report, keep the server, hosts and agents running until Ctrl-C (to curl /metrics, try dne ctl)')
    .option('--iperf-seconds <n>', 'length of each iperf3 run (1-60)', (v: string) => {
      const n = positiveInt('--iperf-seconds')(v);
      if (n > 60) throw new DneError(ErrorCodes.config, `--iperf-seconds must be at most 60, got ${n}`);
      return n;
    }, 5)
    .option('--base-port <port>', 'first loopback port used (server: base..base+2, agents: base+10, base+11)', basePort, 18443)
    .action(async (o: { dir?: string; keep?: boolean; hold?: boolean; iperfSeconds: number; basePort: number }) => {
      if (process.getuid?.() !== 0) throw new DneError(ErrorCodes.config, 'dne demo needs root (network namespaces, AF_PACKET): run it with sudo');
      // A fresh deployment every run: an old server directory would hold the previous run's policy and keys.
      if (o.dir && fs.existsSync(o.dir) && !fs.statSync(o.dir).isDirectory()) throw new DneError(ErrorCodes.config, `--dir ${o.dir} exists and is not a directory`);
      if (o.dir && fs.existsSync(o.dir) && fs.readdirSync(o.dir).length > 0) throw new DneError(ErrorCodes.config, `--dir ${o.dir} is not empty; give a new or empty directory`);
      const demo = new Demo({ ...(o.dir ? { dir: o.dir } : {}), keep: !!o.keep, hold: !!o.hold, iperfSeconds: o.iperfSeconds, basePort: o.basePort, log: out });
      let interrupted = false;
      let held = false; // the run completed and is being held up (--hold)
      const onSignal = (sig: string) => {
        if (interrupted) process.exit(130);
        interrupted = true;
        demo.server?.expectStop();
        out(`\n${sig}: cleaning up (namespaces, agents, server)...`);
        void demo.cleanup().finally(() => process.exit(held && demo.failed.length === 0 ? 0 : 130));
      };
      process.on('SIGINT', () => onSignal('SIGINT'));
      process.on('SIGTERM', () => onSignal('SIGTERM'));
      const t0 = Date.now();
      const step = (n: number, what: string) => out(`[${n}/9] ${what}  (+${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      let ok = false;
      try {
        step(1, `starting dne server (manager, controller, key manager) in ${demo.dir}/server`);
        await demo.startServer();
        step(2, 'building two hosts with two workloads each in network namespaces, joined by an underlay link');
        demo.buildHosts();
        for (const d of Object.values(demo.workloads!)) out(`    ${d.id.padEnd(6)} on ${d.w.host.name}: ${d.w.ipv4}, ${d.w.ipv6}  tags app=${d.tags[0]!.tag}`);
        step(3, 'starting one agent per host; they report their workloads to the manager');
        await demo.startAgents();
        await demo.waitForInventory();
        step(4, 'tagging the workloads and applying the example policy through the REST API, then publishing it');
        const rev = await demo.applyPolicy();
        out(`    published revision ${rev}: web<->db ENCRYPT (${POLICY_IDS.webDb}), monitoring :9100 INTEGRITY_ONLY (${POLICY_IDS.monitoring}), default ALLOW_IN_CLEAR`);
        await demo.waitForSas([POLICY_IDS.webDb, POLICY_IDS.monitoring]);
        out('    both agents installed their keys');
        step(5, 'real traffic: ping IPv4/IPv6, HTTP to servers inside the workloads, iperf3 — captured on the underlay');
        await demo.startServices();
        await demo.trafficAndCapture(() => step(6, 'what the underlay capture shows: ESP for protected flows, the secret never in clear, clear flows readable'));
        step(7, 'rotating the web<->db key while iperf3 UDP runs');
        await demo.rotateUnderLoad();
        step(8, 'revoking the web<->db key; traffic must recover with the replacement');
        await demo.revokeAndRecover();
        demo.checkNonces();
        step(9, 'report');
        for (const l of await demo.report()) out(l);
        ok = demo.failed.length === 0;
        if (o.hold) {
          held = true;
          await new Promise<void>(() => {}); // until SIGINT/SIGTERM: onSignal cleans up and exits
        }
      } catch (err) {
        out(`demo stopped: ${(err as Error).message}`);
        for (const a of demo.agents) out(`--- last lines of agent ${a.host.name}'s log ---\n${a.tail()}`);
      } finally {
        out(`cleaning up${o.keep ? ` (kept ${demo.dir})` : ''}...`);
        await demo.cleanup();
        out(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      }
      process.exitCode = ok ? 0 : 1;
    });
}
