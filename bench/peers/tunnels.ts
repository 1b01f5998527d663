/**
 * The peers bench/peers.ts compares dne with: wireguard-go, nebula, OpenVPN
 * and strongSwan with kernel-libipsec, each a userspace tunnel (the kernel
 * here has no WireGuard or ESP module) between the two workload namespaces
 * of the e2e topology, from the Debian packages, configured as a user would
 * for a point-to-point link between two hosts.
 *
 * Each tunnel's outer packets run between 10.78.0.1 (w1) and 10.78.0.2 (w2),
 * second addresses on the workloads' eth0 (MTU 1500), over the same veths
 * and bridges as plain veth; inner addresses are 10.79.<n>.1/.2 and every
 * tunnel interface has MTU INNER_MTU:
 *
 *   wireguard-go  `ip link set wg0 mtu 1400`; ChaCha20-Poly1305 (its only cipher)
 *   nebula        `tun.mtu: 1400`; AES-256-GCM (`cipher: aes`, it has no
 *                 AES-128); certificates carry group "bench", and the inbound
 *                 firewall admits only that group
 *   openvpn       `--tun-mtu 1400`; TLS 1.3 control channel with self-signed
 *                 certificates pinned by `--peer-fingerprint`, data channel
 *                 AES-128-GCM, no DCO (no kernel module)
 *   strongSwan    IKEv2 with a PSK, ESP AES-128-GCM-16 in tunnel mode through
 *                 kernel-libipsec's TUN device ipsec0 (MTU 1400), crypto by
 *                 the openssl plugin (AES-NI)
 *
 * Daemons that keep files under /run (wireguard-go's UAPI socket, charon's
 * pid file) each get a private tmpfs there: `ip netns exec` runs them in a
 * mount namespace of their own, so the mount is theirs alone and goes with
 * them; their control tools reach them with `nsenter -m -n`. Every daemon is
 * started through Topology.spawnIn, so its PID is the tunnel process itself
 * (ip, env and sh exec it) and Topology.destroy() stops it.
 */
import { ChildProcess, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Topology, waitFor, Workload } from '../../test/integration/netns';

export const INNER_MTU = 1400;

export type TunnelId = 'wireguard' | 'nebula' | 'openvpn' | 'strongswan';

export interface Tunnel {
  id: TunnelId;
  label: string;
  /** The inner address on w2 that iperf3 and ping target from w1. */
  target: string;
  /** The tunnel processes on both sides (CPU accounting). */
  pids: number[];
  /** Version and cipher, for the record. */
  info: Record<string, string>;
}

/** The Debian packages the peers come from, and a binary of each to check for. */
export const PEER_PACKAGES: ReadonlyArray<{ pkg: string; binary: string }> = [
  { pkg: 'wireguard-go', binary: '/usr/bin/wireguard-go' },
  { pkg: 'wireguard-tools', binary: '/usr/bin/wg' },
  { pkg: 'nebula', binary: '/usr/bin/nebula-cert' },
  { pkg: 'openvpn', binary: '/usr/sbin/openvpn' },
  { pkg: 'strongswan-charon', binary: '/usr/lib/ipsec/charon' },
  { pkg: 'strongswan-swanctl', binary: '/usr/sbin/swanctl' },
  { pkg: 'libcharon-extra-plugins', binary: '/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so' },
  { pkg: 'libstrongswan-standard-plugins', binary: '/usr/lib/ipsec/plugins/libstrongswan-openssl.so' },
];

const UNDERLAY = ['10.78.0.1', '10.78.0.2'] as const;

function sh(cmd: string, args: string[], opts: { input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, timeout: 30000 });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${(r.stderr || r.stdout).trim().slice(0, 400)}`);
  return r.stdout;
}

/** A daemon's last output, for the message when it fails to come up. */
class Daemon {
  private out = '';
  constructor(readonly name: string, readonly child: ChildProcess) {
    const keep = (d: Buffer) => (this.out = (this.out + d.toString()).slice(-4000));
    // Drained always: a full pipe would block the daemon.
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }
  get pid(): number {
    if (!this.child.pid) throw new Error(`${this.name} did not start`);
    return this.child.pid;
  }
  alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  tail(): string {
    return this.out.trim().split('\n').slice(-8).join('\n');
  }
}

export class Peers {
  private readonly daemons: Daemon[] = [];
  readonly sides: [Workload, Workload];

  constructor(
    private readonly topo: Topology,
    w1: Workload,
    w2: Workload,
    /** A private temporary folder (keys, configs); the caller removes it. */
    private readonly dir: string,
  ) {
    this.sides = [w1, w2];
    sh('ip', ['-n', w1.ns, 'addr', 'add', `${UNDERLAY[0]}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', w2.ns, 'addr', 'add', `${UNDERLAY[1]}/24`, 'dev', 'eth0']);
  }

  private spawn(name: string, ns: string, cmd: string[]): Daemon {
    const d = new Daemon(name, this.topo.spawnIn(ns, cmd));
    this.daemons.push(d);
    return d;
  }

  private file(name: string, text: string): string {
    const p = path.join(this.dir, name);
    fs.writeFileSync(p, text, { mode: 0o600 });
    return p;
  }

  private async up(ds: Daemon[], what: string, ready: () => boolean, timeoutMs = 15000): Promise<void> {
    const ok = await waitFor(() => ds.every((d) => d.alive()) && ready(), timeoutMs, 100);
    if (!ok) {
      const why = ds.map((d) => `${d.name}${d.alive() ? '' : ` (exited ${d.child.exitCode ?? d.child.signalCode})`}: ${d.tail()}`);
      throw new Error(`${what} did not come up:\n${why.join('\n')}`);
    }
  }

  private linkExists(ns: string, ifname: string): boolean {
    return spawnSync('ip', ['-n', ns, 'link', 'show', 'dev', ifname], { stdio: 'ignore' }).status === 0;
  }

  // ---- wireguard-go

  async wireguard(): Promise<Tunnel> {
    const keys = this.sides.map((_, i) => {
      const priv = sh('wg', ['genkey']).trim();
      const file = this.file(`wg${i}.key`, `${priv}\n`);
      return { file, pub: sh('wg', ['pubkey'], { input: `${priv}\n` }).trim() };
    });
    const ds = this.sides.map((w) =>
      this.spawn(`wireguard-go ${w.name}`, w.ns, [
        'env',
        // wireguard-go refuses to start on Linux without it (the kernel
        // module is the upstream recommendation; this kernel has none).
        'WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1',
        'sh',
        '-c',
        'mount -t tmpfs -o size=1m,mode=0755 dnet-wg /run && exec wireguard-go -f wg0',
      ]),
    );
    await this.up(ds, 'wireguard-go', () => this.sides.every((w) => this.linkExists(w.ns, 'wg0')));
    // The UAPI socket appears just after the interface.
    await waitFor(() => ds.every((d) => spawnSync('nsenter', ['-t', String(d.pid), '-m', '-n', 'wg', 'show', 'wg0'], { stdio: 'ignore' }).status === 0), 5000);
    this.sides.forEach((w, i) => {
      const o = 1 - i;
      sh('nsenter', ['-t', String(ds[i]!.pid), '-m', '-n', 'wg', 'set', 'wg0', 'private-key', keys[i]!.file, 'listen-port', '51820',
        'peer', keys[o]!.pub, 'allowed-ips', `10.79.1.${o + 1}/32`, 'endpoint', `${UNDERLAY[o]}:51820`]);
      sh('ip', ['-n', w.ns, 'addr', 'add', `10.79.1.${i + 1}/24`, 'dev', 'wg0']);
      sh('ip', ['-n', w.ns, 'link', 'set', 'wg0', 'mtu', String(INNER_MTU), 'up']);
    });
    return {
      id: 'wireguard',
      label: 'wireguard-go',
      target: '10.79.1.2',
      pids: ds.map((d) => d.pid),
      info: { version: firstLine(sh('wireguard-go', ['--version'])), cipher: 'ChaCha20-Poly1305' },
    };
  }

  // ---- nebula

  async nebula(): Promise<Tunnel> {
    const d = this.dir;
    sh('nebula-cert', ['ca', '-name', 'dne-bench', '-duration', '48h', '-out-crt', `${d}/nebula-ca.crt`, '-out-key', `${d}/nebula-ca.key`]);
    const ds = this.sides.map((w, i) => {
      const o = 1 - i;
      sh('nebula-cert', ['sign', '-ca-crt', `${d}/nebula-ca.crt`, '-ca-key', `${d}/nebula-ca.key`, '-name', `host${i + 1}`,
        '-ip', `10.79.2.${i + 1}/24`, '-groups', 'bench', '-out-crt', `${d}/nebula${i}.crt`, '-out-key', `${d}/nebula${i}.key`]);
      const config = this.file(
        `nebula${i}.yml`,
        [
          'pki:',
          `  ca: ${d}/nebula-ca.crt`,
          `  cert: ${d}/nebula${i}.crt`,
          `  key: ${d}/nebula${i}.key`,
          'static_host_map:',
          `  "10.79.2.${o + 1}": ["${UNDERLAY[o]}:4242"]`,
          'lighthouse:',
          '  am_lighthouse: false',
          '  hosts: []',
          'listen:',
          `  host: ${UNDERLAY[i]}`,
          '  port: 4242',
          'punchy:',
          '  punch: false',
          'cipher: aes',
          'tun:',
          '  dev: neb0',
          `  mtu: ${INNER_MTU}`,
          'logging:',
          '  level: error',
          'firewall:',
          '  outbound:',
          '    - port: any',
          '      proto: any',
          '      host: any',
          // The group rule: only certificates carrying group "bench" get in.
          '  inbound:',
          '    - port: any',
          '      proto: any',
          '      group: bench',
          '',
        ].join('\n'),
      );
      return this.spawn(`nebula ${w.name}`, w.ns, ['nebula', '-config', config]);
    });
    await this.up(ds, 'nebula', () => this.sides.every((w) => this.linkExists(w.ns, 'neb0')));
    return {
      id: 'nebula',
      label: 'nebula',
      target: '10.79.2.2',
      pids: ds.map((x) => x.pid),
      info: { version: firstLine(sh('nebula', ['-version'])), cipher: 'AES-256-GCM' },
    };
  }

  // ---- openvpn

  async openvpn(): Promise<Tunnel> {
    const d = this.dir;
    const fp = this.sides.map((_, i) => {
      sh('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
        '-subj', `/CN=host${i + 1}`, '-keyout', `${d}/ovpn${i}.key`, '-out', `${d}/ovpn${i}.crt`]);
      return sh('openssl', ['x509', '-in', `${d}/ovpn${i}.crt`, '-noout', '-fingerprint', '-sha256']).trim().split('=')[1]!;
    });
    const logs = this.sides.map((_, i) => path.join(d, `ovpn${i}.log`));
    const ds = this.sides.map((w, i) => {
      const o = 1 - i;
      return this.spawn(`openvpn ${w.name}`, w.ns, [
        'openvpn', '--dev', 'tun0', '--dev-type', 'tun', '--proto', 'udp', '--disable-dco',
        '--local', UNDERLAY[i], '--lport', '1194', '--remote', UNDERLAY[o], '1194',
        '--ifconfig', `10.79.3.${i + 1}`, `10.79.3.${o + 1}`, '--tun-mtu', String(INNER_MTU),
        '--data-ciphers', 'AES-128-GCM', '--cert', `${d}/ovpn${i}.crt`, '--key', `${d}/ovpn${i}.key`,
        '--peer-fingerprint', fp[o]!, ...(i === 0 ? ['--tls-server', '--dh', 'none'] : ['--tls-client']),
        '--verb', '3', '--log', logs[i]!,
      ]);
    });
    const done = () => logs.every((l) => fs.existsSync(l) && fs.readFileSync(l, 'utf8').includes('Initialization Sequence Completed'));
    await this.up(ds, 'openvpn', done, 20000);
    const cipher = /Data Channel: cipher '([^']+)'/.exec(fs.readFileSync(logs[0]!, 'utf8'))?.[1] ?? 'unknown';
    if (cipher !== 'AES-128-GCM') throw new Error(`openvpn negotiated ${cipher}, not AES-128-GCM`);
    return {
      id: 'openvpn',
      label: 'openvpn',
      target: '10.79.3.2',
      pids: ds.map((x) => x.pid),
      info: { version: firstLine(sh('openvpn', ['--version'])).split(' ').slice(0, 2).join(' '), cipher },
    };
  }

  // ---- strongSwan, kernel-libipsec

  async strongswan(): Promise<Tunnel> {
    const d = this.dir;
    const psk = randomBytes(32).toString('base64');
    const confs = this.sides.map((w, i) => {
      const o = 1 - i;
      // The inner (traffic selector) addresses live on lo; kernel-libipsec
      // routes the other side's through ipsec0 (table 220, source ours).
      sh('ip', ['-n', w.ns, 'addr', 'add', `10.79.4.${i + 1}/32`, 'dev', 'lo']);
      const vici = `unix://${d}/charon${i}.vici`;
      const conf = this.file(
        `strongswan${i}.conf`,
        `charon {
  load = random nonce openssl gcm aes sha1 sha2 hmac kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  filelog { stderr { default = 1 } }
  syslog { }
  install_routes = yes
  plugins {
    vici { socket = ${vici} }
  }
}
swanctl { load = random nonce openssl pem pkcs1 x509 pubkey }
`,
      );
      const swanctl = this.file(
        `swanctl${i}.conf`,
        `connections {
  bench {
    version = 2
    local_addrs = ${UNDERLAY[i]}
    remote_addrs = ${UNDERLAY[o]}
    proposals = aes128gcm16-prfsha256-x25519
    local { auth = psk
      id = host${i + 1} }
    remote { auth = psk
      id = host${o + 1} }
    children {
      bench {
        local_ts = 10.79.4.${i + 1}/32
        remote_ts = 10.79.4.${o + 1}/32
        esp_proposals = aes128gcm16
        mode = tunnel
      }
    }
  }
}
secrets {
  ike-bench { secret = 0s${psk} }
}
`,
      );
      return { conf, swanctl, vici, w };
    });
    const ds = confs.map((c) =>
      this.spawn(`charon ${c.w.name}`, c.w.ns, [
        'env', `STRONGSWAN_CONF=${c.conf}`, 'sh', '-c',
        // charon's pid file is /var/run/charon.pid, compiled in.
        'mount -t tmpfs -o size=1m,mode=0755 dnet-charon /run && exec /usr/lib/ipsec/charon',
      ]),
    );
    await this.up(ds, 'charon', () => confs.every((c) => fs.existsSync(c.vici.slice('unix://'.length))));
    const swan = (i: number, args: string[]) =>
      sh('env', [`STRONGSWAN_CONF=${confs[i]!.conf}`, 'swanctl', ...args, '--uri', confs[i]!.vici]);
    for (const i of [0, 1]) swan(i, ['--load-all', '--file', confs[i]!.swanctl]);
    swan(0, ['--initiate', '--child', 'bench', '--timeout', '10']);
    for (const c of confs) {
      const ok = await waitFor(() => this.linkExists(c.w.ns, 'ipsec0'), 5000);
      if (!ok) throw new Error(`strongswan: no ipsec0 in ${c.w.name}`);
      sh('ip', ['-n', c.w.ns, 'link', 'set', 'ipsec0', 'mtu', String(INNER_MTU)]);
    }
    const sas = swan(0, ['--list-sas']);
    const alg = /AES_GCM_16-128/.test(sas) ? 'AES-128-GCM-16' : 'unknown';
    if (alg === 'unknown') throw new Error(`strongswan: CHILD_SA not AES-GCM-128:\n${sas}`);
    return {
      id: 'strongswan',
      label: 'strongSwan kernel-libipsec',
      target: '10.79.4.2',
      pids: ds.map((x) => x.pid),
      info: { version: firstLine(sh('/usr/lib/ipsec/charon', ['--version'])), cipher: alg },
    };
  }

  /** Daemons that died since they started (a tunnel that went away mid-run). */
  dead(): string[] {
    return this.daemons.filter((d) => !d.alive()).map((d) => `${d.name}: ${d.tail()}`);
  }
}

function firstLine(s: string): string {
  return s.trim().split('\n')[0]!.trim();
}
