/**
 * Test hosts in network namespaces: two hosts joined by an underlay link,
 * each with workloads behind protected ports, as DESIGN §4 draws them:
 *
 *   [ns w1] eth0 ==veth== w1-wl  (filter)  w1-nt ==veth== w1-br --+
 *                                                   host h1: br0 + ul --- underlay --- ul + br0 :host h2
 *
 * Every namespace is named "dnet<id>-p<pid>-..." so nothing else on the
 * machine is touched; destroy() removes all of it and is safe to call twice
 * (it also runs at process exit). Traffic only flows between these
 * namespaces.
 */
import { execFileSync, spawn, spawnSync, SpawnSyncReturns } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface Workload {
  name: string;
  ns: string;
  host: Host;
  index: number;
  ipv4: string;
  ipv6: string;
  mac: string;
  workloadIf: string; // host side of the workload's veth (filter reads here)
  networkIf: string; // filter's network-side interface
}

export interface Host {
  name: string;
  ns: string;
  underlayIf: string;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function nsExec(ns: string, cmd: string[], timeoutMs = 60000): SpawnSyncReturns<string> {
  return spawnSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', timeout: timeoutMs });
}

export function sysctl(ns: string, key: string, value: string): void {
  nsExec(ns, ['sysctl', '-qw', `${key}=${value}`]);
}

export class Topology {
  readonly id = randomBytes(2).toString('hex');
  readonly prefix = `dnet${this.id}`;
  readonly hosts: Host[] = [];
  readonly workloads: Workload[] = [];
  private readonly namespaces: string[] = [];
  private readonly pids = new Set<number>();

  private readonly onExit = () => this.destroy();

  /** hostsWorkloads[i] = number of workloads on host i. */
  constructor(hostsWorkloads: number[] = [1, 1]) {
    // Also clean up if the process ends without reaching destroy().
    process.once('exit', this.onExit);
    try {
      this.build(hostsWorkloads);
    } catch (err) {
      this.destroy();
      throw err;
    }
  }

  private addNs(name: string): string {
    // The creating PID is in the name, so a sweep can tell a namespace of a
    // dead run from one a concurrent run still uses.
    const ns = `${this.prefix}-p${process.pid}-${name}`;
    ip('netns', 'add', ns);
    this.namespaces.push(ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    return ns;
  }

  private build(hostsWorkloads: number[]): void {
    hostsWorkloads.forEach((_, h) => {
      const ns = this.addNs(`h${h + 1}`);
      // Host side: a plain L2 segment; no addresses, no forwarding, no IPv6
      // chatter of its own on the ports.
      sysctl(ns, 'net.ipv6.conf.all.disable_ipv6', '1');
      sysctl(ns, 'net.ipv6.conf.default.disable_ipv6', '1');
      // A plain learning bridge: no br_netfilter header checks on the way
      // (they would hide malformed frames from the filter under test).
      for (const t of ['iptables', 'ip6tables', 'arptables']) sysctl(ns, `net.bridge.bridge-nf-call-${t}`, '0');
      ip('-n', ns, 'link', 'add', 'br0', 'type', 'bridge');
      ip('-n', ns, 'link', 'set', 'br0', 'up');
      this.hosts.push({ name: `h${h + 1}`, ns, underlayIf: 'ul' });
    });
    // Underlay: host 1 <-> host 2 (a chain for more hosts).
    for (let h = 0; h + 1 < this.hosts.length; h++) {
      const a = this.hosts[h]!;
      const b = this.hosts[h + 1]!;
      ip('link', 'add', `${this.prefix}a`, 'netns', a.ns, 'type', 'veth', 'peer', 'name', `${this.prefix}b`, 'netns', b.ns);
      ip('-n', a.ns, 'link', 'set', `${this.prefix}a`, 'name', h === 0 ? 'ul' : `ul${h}`);
      ip('-n', b.ns, 'link', 'set', `${this.prefix}b`, 'name', 'ul');
      for (const [host, ifn] of [
        [a, h === 0 ? 'ul' : `ul${h}`],
        [b, 'ul'],
      ] as const) {
        ip('-n', host.ns, 'link', 'set', ifn, 'master', 'br0');
        ip('-n', host.ns, 'link', 'set', ifn, 'up');
      }
    }
    let n = 0;
    hostsWorkloads.forEach((count, h) => {
      const host = this.hosts[h]!;
      for (let i = 0; i < count; i++) {
        n++;
        const name = `w${n}`;
        const ns = this.addNs(name);
        const mac = `02:00:00:77:00:${n.toString(16).padStart(2, '0')}`;
        const w: Workload = {
          name,
          ns,
          host,
          index: n,
          ipv4: `10.77.0.${n}`,
          ipv6: `fd77::${n}`,
          mac,
          workloadIf: `${name}-wl`,
          networkIf: `${name}-nt`,
        };
        // Workload NIC <-> host side of the protected port.
        ip('link', 'add', `${this.prefix}x`, 'netns', ns, 'type', 'veth', 'peer', 'name', w.workloadIf, 'netns', host.ns);
        ip('-n', ns, 'link', 'set', `${this.prefix}x`, 'name', 'eth0');
        ip('-n', ns, 'link', 'set', 'eth0', 'address', mac);
        sysctl(ns, 'net.ipv6.conf.eth0.accept_dad', '0');
        ip('-n', ns, 'addr', 'add', `${w.ipv4}/24`, 'dev', 'eth0');
        ip('-n', ns, 'addr', 'add', `${w.ipv6}/64`, 'dev', 'eth0', 'nodad');
        ip('-n', ns, 'link', 'set', 'eth0', 'up');
        // Network side of the port <-> the host bridge.
        ip('-n', host.ns, 'link', 'add', w.networkIf, 'type', 'veth', 'peer', 'name', `${name}-br`);
        ip('-n', host.ns, 'link', 'set', `${name}-br`, 'master', 'br0');
        for (const ifn of [w.workloadIf, w.networkIf, `${name}-br`]) ip('-n', host.ns, 'link', 'set', ifn, 'up');
        this.workloads.push(w);
      }
    });
  }

  /** Starts a long-running command in a namespace; killed by destroy(). */
  spawnIn(ns: string, cmd: string[]) {
    const child = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid) this.pids.add(child.pid);
    child.on('exit', () => child.pid && this.pids.delete(child.pid));
    return child;
  }

  kill(pid: number | undefined): void {
    if (!pid) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    this.pids.delete(pid);
  }

  destroy(): void {
    process.removeListener('exit', this.onExit);
    for (const pid of [...this.pids]) this.kill(pid);
    // Processes started with `ip netns exec` die with SIGTERM; give them a
    // moment, then delete the namespaces (which removes every veth in them).
    for (const ns of this.namespaces.splice(0).reverse()) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.trim();
      for (const p of pids.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(p), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      spawnSync('ip', ['netns', 'del', ns]);
    }
  }
}

/** Runs until `pred` is true or the time is up; returns whether it held. */
export async function waitFor(pred: () => boolean, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return pred();
}
