/**
 * The main job (issue #8): a whole dne deployment on one machine, on real
 * traffic. `dne demo` runs it start to end and prints a report; the
 * end-to-end suite (test/e2e) drives the same steps and adds chaos.
 *
 *   dne server (manager + controller + key manager, own processes)
 *        |  loopback, mTLS
 *   agent h1 ---------------------------------- agent h2        (root namespace)
 *    [h1: br0]  web-1, mon-1  ===underlay===  db-1, app-1  [h2: br0]
 *
 * Policy (applied through the REST API, then published):
 *   web  <-> db          ENCRYPT         key policy kp-web-db (AES-GCM-128)
 *   monitoring -> any :9100  INTEGRITY_ONLY  key policy kp-monitoring (GMAC)
 *   everything else      default ALLOW_IN_CLEAR
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MANAGER_API } from '../common/contracts';
import { MtlsClient, readTlsFiles } from '../common/mtls-client';
import { prepareServerDir, Server, ServerLayout } from '../server/server';
import { AgentProcess, DemoWorkload, metricSum } from './agents';
import { Capture, CaptureSummary, NonceLedger, summarizeCapture } from './capture';
import { Topology } from './netns';
import { httpGet, iperf, IperfResult, ping, PingResult, startHttpServer, startIperfServer, udpCounters } from './traffic';

export const MARKERS = {
  secret: 'DNE-DEMO-SECRET-web-to-db-7f3a',
  monitoring: 'DNE-DEMO-MONITORING-readable-91c2',
  clear: 'DNE-DEMO-CLEAR-app-5d0e',
};

export const POLICY_IDS = { webDb: 'kp-web-db', monitoring: 'kp-monitoring' };

/** iperf3 UDP rate during the rotation: well below what the filter carries on a busy 2-core machine. */
export const ROTATION_LOAD = '20M';

export interface DemoOptions {
  /** Working directory (server data, captures, logs); a temp dir by default. */
  dir?: string;
  /** Keep the working directory after the run. */
  keep?: boolean;
  iperfSeconds?: number;
  /** Base port of the server components and the agents' endpoints (loopback). */
  basePort?: number;
  log?: (line: string) => void;
  /** Controller: seconds a rollover waits for a host's ack. */
  ackTimeoutSeconds?: number;
  syslogTarget?: (host: string) => string;
  /** Keep everything running after the report until interrupted. */
  hold?: boolean;
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export class Demo {
  readonly dir: string;
  readonly log: (l: string) => void;
  topo: Topology | null = null;
  server: Server | null = null;
  layout: ServerLayout | null = null;
  agents: AgentProcess[] = [];
  admin: MtlsClient | null = null;
  workloads: Record<'web' | 'mon' | 'db' | 'app', DemoWorkload> | null = null;
  readonly ledger = new NonceLedger();
  readonly checks: Check[] = [];
  readonly results: Record<string, unknown> = {};
  private captureN = 0;
  private readonly basePort: number;

  constructor(readonly opts: DemoOptions = {}) {
    this.dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'dne-demo-'));
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.log = opts.log ?? ((l) => process.stdout.write(l + '\n'));
    this.basePort = opts.basePort ?? 18443;
  }

  check(name: string, ok: boolean, detail: string): boolean {
    this.checks.push({ name, ok, detail });
    this.log(`    ${ok ? 'ok  ' : 'FAIL'} ${name}: ${detail}`);
    return ok;
  }

  get failed(): Check[] {
    return this.checks.filter((c) => !c.ok);
  }

  // ------------------------------------------------------------ 1-3: build

  async startServer(): Promise<void> {
    const o = {
      dir: path.join(this.dir, 'server'),
      ports: { keymanager: this.basePort, manager: this.basePort + 1, controller: this.basePort + 2 },
      restart: false,
      logLevel: 'info',
      ...(this.opts.ackTimeoutSeconds !== undefined ? { ackTimeoutSeconds: this.opts.ackTimeoutSeconds } : {}),
    };
    this.layout = await prepareServerDir(o);
    this.server = new Server(this.layout, o, (l) => this.log(`    ${l}`));
    await this.server.start();
    this.admin = new MtlsClient(this.layout.urls.manager, readTlsFiles({ cert: this.layout.adminCert, key: this.layout.adminKey, ca: this.layout.caCert }));
  }

  buildHosts(): void {
    const topo = new Topology([2, 2]);
    this.topo = topo;
    const [w1, w2, w3, w4] = topo.workloads;
    const tag = (t: string) => [{ scope: 'app', tag: t }];
    this.workloads = {
      web: { w: w1!, id: 'web-1', displayName: 'web-1', tags: tag('web') },
      mon: { w: w2!, id: 'mon-1', displayName: 'mon-1', tags: tag('monitoring') },
      db: { w: w3!, id: 'db-1', displayName: 'db-1', tags: tag('db') },
      app: { w: w4!, id: 'app-1', displayName: 'app-1', tags: tag('misc') },
    };
  }

  async startAgents(): Promise<void> {
    const wl = this.workloads!;
    const byHost = [
      [wl.web, wl.mon],
      [wl.db, wl.app],
    ];
    this.agents = this.topo!.hosts.map(
      (h, i) =>
        new AgentProcess(h, this.dir, this.layout!, byHost[i]!, {
          endpointPort: this.basePort + 10 + i,
          ...(this.opts.syslogTarget ? { syslogTarget: this.opts.syslogTarget(h.name) } : {}),
        }),
    );
    for (const a of this.agents) {
      await a.prepare();
      await a.start();
      this.log(`    agent ${a.host.name}: pid ${a.pid}, endpoint ${a.endpoint}, ports ${a.workloads.map((d) => d.id).join(', ')}`);
    }
  }

  // ------------------------------------------------------------ 4: policy

  private api<T = any>(method: string, route: string, body?: unknown) {
    return this.admin!.request<T>(method, MANAGER_API + route, body === undefined ? {} : { body });
  }

  /** Waits until the manager lists every workload the agents reported. */
  async waitForInventory(): Promise<void> {
    const want = Object.values(this.workloads!).map((d) => d.id);
    let have: string[] = [];
    const end = Date.now() + 30_000;
    while (Date.now() < end) {
      const r = await this.api<{ results: Array<{ id: string }> }>('GET', '/workloads');
      have = r.body.results.map((w) => w.id);
      if (want.every((id) => have.includes(id))) return;
      await new Promise((res) => setTimeout(res, 200));
    }
    throw new Error(`the manager lists workloads [${have.join(', ')}], expected [${want.join(', ')}]`);
  }

  /**
   * The administrator tags the workloads the agents reported (DESIGN §2:
   * agents report workloads, administrators tag them; a host's own claims
   * never decide which group, and so which key, it belongs to).
   */
  async tagWorkloads(): Promise<void> {
    for (const d of Object.values(this.workloads!)) {
      const cur = (await this.api<Record<string, unknown> & { _revision: number }>('GET', `/workloads/${d.id}`)).body;
      await this.api('PUT', `/workloads/${d.id}`, { display_name: cur.display_name, host_id: cur.host_id, vnics: cur.vnics, tags: d.tags, _revision: cur._revision });
    }
  }

  async applyPolicy(): Promise<number> {
    await this.tagWorkloads();
    const kp = (id: string, name: string, type: 'ENCRYPTION_AND_INTEGRITY' | 'INTEGRITY_ONLY') => ({
      id,
      display_name: name,
      encrypt_type: type,
      encrypt_algorithm: 'AES_GCM_128',
      rekey_frequency: 0,
      lifetime: 86400,
      type: 'REGULAR',
      is_default: false,
      replay_window: 1024,
    });
    await this.api('POST', '/key-policies', kp(POLICY_IDS.webDb, 'web <-> db', 'ENCRYPTION_AND_INTEGRITY'));
    await this.api('POST', '/key-policies', kp(POLICY_IDS.monitoring, 'monitoring', 'INTEGRITY_ONLY'));
    for (const g of ['web', 'db', 'monitoring']) {
      await this.api('POST', '/groups', { id: `g-${g}`, display_name: g, expressions: [{ scope: 'app', tag: g }], workload_ids: [], ip_set_ids: [] });
    }
    const ref = (g: string) => ({ target_type: 'NSGroup', target_id: `g-${g}` });
    await this.api('POST', '/sections?action=create_with_rules', {
      id: 'demo',
      display_name: 'demo policy',
      rules: [
        {
          id: 'web-db',
          display_name: 'web <-> db encrypted',
          sources: [ref('web')],
          destinations: [ref('db')],
          services: [],
          ip_protocol: 'IPV4_IPV6',
          key_policy_identifier: POLICY_IDS.webDb,
          action: 'ENCRYPT',
          logged: false,
          disabled: false,
        },
        {
          id: 'monitoring',
          display_name: 'monitoring scrapes, integrity only',
          sources: [ref('monitoring')],
          destinations: [],
          services: [{ protocol: 'TCP', destination_ports: ['9100'] }],
          ip_protocol: 'IPV4_IPV6',
          key_policy_identifier: POLICY_IDS.monitoring,
          action: 'INTEGRITY_ONLY',
          logged: false,
          disabled: false,
        },
      ],
    });
    const pub = await this.api<{ revision: number }>('POST', '/revisions?action=publish', { description: 'dne demo policy' });
    return pub.body.revision;
  }

  /** Waits until both agents run a config with SAs for every key policy their tables use. */
  async waitForSas(policyIds: string[], timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < end) {
      let ready = true;
      for (const a of this.agents) {
        try {
          const sas = await a.get<{ sas: Array<{ key_policy: string; state: string }> }>('/sas');
          const active = new Set(sas.sas.filter((s) => s.state === 'active').map((s) => s.key_policy));
          if (!policyIds.every((p) => active.has(p))) {
            ready = false;
            last = `${a.host.name} has active SAs for [${[...active].join(', ')}]`;
          }
        } catch (err) {
          ready = false;
          last = `${a.host.name}: ${(err as Error).message}`;
        }
      }
      if (ready) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`agents did not install active SAs for [${policyIds.join(', ')}] within ${timeoutMs} ms (${last})`);
  }

  // ------------------------------------------------------------ 5-6: traffic + capture

  async capture(label: string, body: () => Promise<void>, snaplen = 0): Promise<CaptureSummary> {
    const file = path.join(this.dir, `capture-${++this.captureN}-${label}.pcap`);
    const cap = new Capture(this.topo!.hosts[0]!.ns, 'ul', file, 'ip or ip6', snaplen);
    await cap.start();
    try {
      await body();
    } finally {
      await cap.stop();
    }
    const s = summarizeCapture(file, Object.values(MARKERS));
    this.ledger.add(s.esp, label);
    return s;
  }

  async startServices(): Promise<void> {
    const wl = this.workloads!;
    await startHttpServer(this.topo!, wl.db.w, 80, path.join(this.dir, 'www-db'), { 'secret.txt': `${MARKERS.secret}\n` });
    await startHttpServer(this.topo!, wl.db.w, 9100, path.join(this.dir, 'www-metrics'), { metrics: `${MARKERS.monitoring}\n` });
    await startHttpServer(this.topo!, wl.app.w, 8080, path.join(this.dir, 'www-app'), { 'hello.txt': `${MARKERS.clear}\n` });
    startIperfServer(this.topo!, wl.db.w);
  }

  /** `beforeCaptureChecks` runs between the traffic checks and the capture checks (the demo prints its step 6 there). */
  async trafficAndCapture(beforeCaptureChecks: () => void = () => {}): Promise<void> {
    const wl = this.workloads!;
    const db = wl.db.w;
    let p4: PingResult | null = null;
    let p6: PingResult | null = null;
    let tcp: IperfResult | null = null;
    const http: Record<string, boolean> = {};
    const cap = await this.capture('traffic', async () => {
      p4 = await ping(wl.web.w, db.ipv4, 5);
      p6 = await ping(wl.web.w, db.ipv6, 5);
      const secret = await httpGet(wl.web.w, db.ipv4, 80, 'secret.txt');
      http.secret = secret.ok && secret.body.includes(MARKERS.secret);
      const secret6 = await httpGet(wl.web.w, db.ipv6, 80, 'secret.txt');
      http.secret6 = secret6.ok && secret6.body.includes(MARKERS.secret);
      const mon = await httpGet(wl.mon.w, db.ipv4, 9100, 'metrics');
      http.monitoring = mon.ok && mon.body.includes(MARKERS.monitoring);
      const clear = await httpGet(wl.web.w, wl.app.w.ipv4, 8080, 'hello.txt');
      http.clear = clear.ok && clear.body.includes(MARKERS.clear);
    });
    // Throughput on its own, with a headers-only capture (nonce ledger).
    const capIperf = await this.capture(
      'iperf3-tcp',
      async () => {
        tcp = await iperf(wl.web.w, db.ipv4, { seconds: this.opts.iperfSeconds ?? 5 });
      },
      128,
    );
    const p4r = p4 as PingResult | null;
    const p6r = p6 as PingResult | null;
    const tcpr = tcp as IperfResult | null;
    this.results.ping = { v4: p4r, v6: p6r };
    this.results.tcp = tcpr;
    this.check('ping web-1 -> db-1 over IPv4 (ENCRYPT)', p4r !== null && p4r.received === p4r.sent && p4r.sent > 0, `${p4r?.received}/${p4r?.sent} replies, avg ${p4r?.avgMs} ms`);
    this.check('ping web-1 -> db-1 over IPv6 (ENCRYPT)', p6r !== null && p6r.received === p6r.sent && p6r.sent > 0, `${p6r?.received}/${p6r?.sent} replies, avg ${p6r?.avgMs} ms`);
    this.check('HTTP web-1 -> db-1 (ENCRYPT), IPv4 and IPv6', !!http.secret && !!http.secret6, `secret.txt fetched: v4 ${http.secret}, v6 ${http.secret6}`);
    this.check('HTTP mon-1 -> db-1:9100 (INTEGRITY_ONLY)', !!http.monitoring, `metrics fetched: ${http.monitoring}`);
    this.check('HTTP web-1 -> app-1:8080 (ALLOW_IN_CLEAR)', !!http.clear, `hello.txt fetched: ${http.clear}`);
    this.check('iperf3 TCP web-1 -> db-1 (ENCRYPT)', tcpr !== null && tcpr.bitsPerSecond > 0, `${((tcpr?.bitsPerSecond ?? 0) / 1e9).toFixed(2)} Gbit/s received, ${tcpr?.retransmits ?? '?'} retransmits`);

    beforeCaptureChecks();
    const m = cap.markers;
    const web = wl.web.w.ipv4;
    const dbA = db.ipv4;
    const espWebDb = cap.esp.filter((e) => (e.src === web && e.dst === dbA) || (e.src === dbA && e.dst === web));
    const clearWebDb = cap.clear.filter((c) => (c.src === web && c.dst === dbA) || (c.src === dbA && c.dst === web));
    const espMon = cap.esp.filter((e) => e.src === wl.mon.w.ipv4 || e.dst === wl.mon.w.ipv4);
    this.results.capture = { frames: cap.frames, esp: cap.esp.length, markers: m, spis: [...new Set(cap.esp.map((e) => e.spi))].map((s) => '0x' + s.toString(16)) };
    this.check('underlay: web <-> db crosses only as ESP', espWebDb.length > 0 && clearWebDb.length === 0, `${espWebDb.length} ESP packets, ${clearWebDb.length} clear IP packets between ${web} and ${dbA}`);
    this.check('underlay: the secret never appears in clear', m[MARKERS.secret]!.inClear === 0 && m[MARKERS.secret]!.inEsp === 0, `marker seen in ${m[MARKERS.secret]!.inClear} clear and ${m[MARKERS.secret]!.inEsp} ESP frames (encrypted: 0 expected)`);
    this.check('underlay: monitoring crosses as ESP, readable (GMAC)', espMon.length > 0 && m[MARKERS.monitoring]!.inEsp > 0 && m[MARKERS.monitoring]!.inClear === 0, `${espMon.length} ESP packets; marker readable in ${m[MARKERS.monitoring]!.inEsp} ESP frames, ${m[MARKERS.monitoring]!.inClear} non-ESP`);
    this.check('underlay: the clear flow is readable', m[MARKERS.clear]!.inClear > 0, `marker in ${m[MARKERS.clear]!.inClear} clear frames`);
    this.check('underlay: iperf3 flow is ESP', capIperf.esp.length > 0, `${capIperf.esp.length} ESP headers captured`);
  }

  // ------------------------------------------------------------ 7-8: keys

  /** Current SAs of both agents, by SPI. */
  async sas(): Promise<Array<{ host: string; spi: number; keyId: string; keyPolicyId: string; state: string }>> {
    const out: Array<{ host: string; spi: number; keyId: string; keyPolicyId: string; state: string }> = [];
    for (const a of this.agents) {
      const r = await a.get<{ sas: Array<{ spi: number; key_id: string; key_policy: string; state: string }> }>('/sas');
      for (const s of r.sas) out.push({ host: a.host.name, spi: s.spi, keyId: s.key_id, keyPolicyId: s.key_policy, state: s.state });
    }
    return out;
  }

  async activeKey(policyId: string): Promise<string | null> {
    const sas = await this.sas();
    const keys = new Set(sas.filter((s) => s.keyPolicyId === policyId && s.state === 'active').map((s) => s.keyId));
    return keys.size === 1 ? [...keys][0]! : null;
  }

  /** Sum over both agents of a metric. */
  async metric(name: string, match: Record<string, string> = {}): Promise<number> {
    let sum = 0;
    for (const a of this.agents) sum += metricSum(await a.metrics(), name, match);
    return sum;
  }

  async drops(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const a of this.agents) {
      const text = await a.metrics();
      for (const line of text.split('\n')) {
        const m = /^dne_drops_total\{[^}]*reason="([a-z_]+)"[^}]*\}\s+(\d+)/.exec(line);
        if (m) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
      }
    }
    return out;
  }

  async rotateUnderLoad(): Promise<void> {
    const wl = this.workloads!;
    const before = await this.activeKey(POLICY_IDS.webDb);
    const dropsBefore = await this.drops();
    const udpBefore = udpCounters(wl.db.w.ns);
    let udp: IperfResult | null = null;
    let after: string | null = null;
    const seconds = Math.max(8, this.opts.iperfSeconds ?? 5) + 4;
    await this.capture(
      'rotation',
      async () => {
        const load = iperf(wl.web.w, wl.db.w.ipv4, { seconds, udpBitrate: ROTATION_LOAD, length: 1200, window: '4M' }).then((r) => (udp = r));
        await new Promise((r) => setTimeout(r, 2000));
        await this.api('POST', `/key-policies/${POLICY_IDS.webDb}?action=rotate`, {});
        const end = Date.now() + (seconds - 3) * 1000;
        while (Date.now() < end) {
          after = await this.activeKey(POLICY_IDS.webDb);
          if (after && after !== before) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        await load;
      },
      128,
    );
    const dropsAfter = await this.drops();
    const udpAfter = udpCounters(wl.db.w.ns);
    // Datagrams that reached db-1 but overflowed iperf3's own socket buffer
    // (the receiving application was not scheduled in time on a busy
    // machine): delivered by dne, lost above it.
    const appOverflow = (udpAfter.RcvbufErrors ?? 0) - (udpBefore.RcvbufErrors ?? 0);
    const newDrops = Object.fromEntries(Object.keys(dropsAfter).map((k) => [k, dropsAfter[k]! - (dropsBefore[k] ?? 0)]).filter(([, v]) => (v as number) > 0));
    const u = udp as IperfResult | null;
    this.results.rotation = { before, after, udp: u, newDrops, appOverflow };
    this.check('rotation: senders switched to a new key while iperf3 ran', !!before && !!after && before !== after, `active key ${before} -> ${after}`);
    const lost = u?.lostPackets ?? -1;
    this.check(
      'rotation: iperf3 lost no datagram in the network',
      u !== null && (u.packets ?? 0) > 0 && lost >= 0 && lost <= appOverflow,
      `iperf3 UDP ${ROTATION_LOAD}bit/s: ${lost}/${u?.packets} lost` + (lost > 0 ? `, ${appOverflow} of them overflowed the receiving iperf3's socket buffer in db-1 (UdpRcvbufErrors), so ${Math.max(0, lost - appOverflow)} in the network path` : ''),
    );
    this.check('rotation: no data-path drop during the rollover', Object.keys(newDrops).length === 0, Object.keys(newDrops).length ? JSON.stringify(newDrops) : 'no drop counter moved');
  }

  async revokeAndRecover(): Promise<void> {
    const wl = this.workloads!;
    const before = await this.activeKey(POLICY_IDS.webDb);
    await this.api('POST', `/key-policies/${POLICY_IDS.webDb}?action=revoke`, { reason: 'dne demo: simulated compromise' });
    const t0 = Date.now();
    let after: string | null = null;
    while (Date.now() - t0 < 30_000) {
      after = await this.activeKey(POLICY_IDS.webDb);
      if (after && after !== before) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const recoveredMs = Date.now() - t0;
    const sas = await this.sas();
    const stillThere = sas.filter((s) => s.keyId === before);
    const p = await ping(wl.web.w, wl.db.w.ipv4, 5);
    const h = await httpGet(wl.web.w, wl.db.w.ipv4, 80, 'secret.txt');
    this.results.revocation = { before, after, recoveredMs, ping: p };
    this.check('revocation: the revoked key is gone from every host', !!before && stillThere.length === 0, `${stillThere.length} SAs still hold key ${before}`);
    this.check('revocation: a replacement key is active', !!after && after !== before, `active key ${after} after ${recoveredMs} ms`);
    this.check('revocation: traffic recovers with the replacement', p.received === p.sent && p.sent > 0 && h.ok, `ping ${p.received}/${p.sent}, HTTP ${h.status}`);
  }

  checkNonces(): void {
    const r = this.ledger.repeats;
    this.check('no (SPI, IV) pair repeats over the whole run', r.length === 0 && this.ledger.count > 0, `${this.ledger.count} ESP packets captured, ${r.length} repeats${r.length ? ': ' + JSON.stringify(r.slice(0, 3)) : ''}`);
  }

  // ------------------------------------------------------------ 9: report + cleanup

  async report(): Promise<string[]> {
    const lines: string[] = [];
    const wl = this.workloads!;
    const rot = this.results.rotation as { before?: string; after?: string; udp?: IperfResult } | undefined;
    const rev = this.results.revocation as { after?: string; recoveredMs?: number } | undefined;
    const tcp = this.results.tcp as IperfResult | undefined;
    lines.push('', '== dne demo report ==', '');
    lines.push('flow                                action          seen on the underlay');
    lines.push(`web-1 ${wl.web.w.ipv4} <-> db-1 ${wl.db.w.ipv4}    ENCRYPT         ESP (AES-GCM), secret never in clear`);
    lines.push(`mon-1 -> db-1:9100                  INTEGRITY_ONLY  ESP (AES-GMAC), payload readable`);
    lines.push(`web-1 -> app-1:8080                 ALLOW_IN_CLEAR  plain TCP, payload readable`);
    lines.push('');
    try {
      const sas = await this.sas();
      lines.push('keys in use now (IDs only; key bytes never leave the key manager and the filters):');
      for (const s of sas) lines.push(`  ${s.host}  ${s.keyPolicyId.padEnd(14)} key ${s.keyId}  SPI 0x${s.spi.toString(16)}  ${s.state}`);
    } catch (err) {
      lines.push(`keys: (agents not reachable: ${(err as Error).message})`);
    }
    if (rot) lines.push(`rotation under load: ${rot.before} -> ${rot.after}; iperf3 UDP ${ROTATION_LOAD}bit/s lost ${rot.udp?.lostPackets ?? '?'}/${rot.udp?.packets ?? '?'}`);
    if (rev) lines.push(`revocation: replacement ${rev.after} active after ${rev.recoveredMs} ms`);
    if (tcp) lines.push(`throughput: iperf3 TCP web-1 -> db-1 ${(tcp.bitsPerSecond / 1e9).toFixed(2)} Gbit/s (ENCRYPT)`);
    try {
      const d = await this.drops();
      const nz = Object.entries(d).filter(([, v]) => v > 0);
      lines.push(`drops by reason (both hosts): ${nz.length ? nz.map(([k, v]) => `${k}=${v}`).join(' ') : 'none'}`);
    } catch {
      /* agents gone */
    }
    lines.push(`nonces: ${this.ledger.count} ESP packets captured, ${this.ledger.repeats.length} repeated (SPI, IV) pairs`);
    try {
      // What Prometheus would scrape: packets sealed and opened per key policy, both hosts.
      lines.push('from /metrics (dne_sa_packets_total, both hosts):');
      for (const kp of [POLICY_IDS.webDb, POLICY_IDS.monitoring]) {
        const out = await this.metric('dne_sa_packets_total', { key_policy: kp, direction: 'out' });
        const inn = await this.metric('dne_sa_packets_total', { key_policy: kp, direction: 'in' });
        lines.push(`  ${kp.padEnd(14)} sealed ${out}, opened ${inn} (current SAs)`);
      }
    } catch {
      /* agents gone */
    }
    lines.push('');
    lines.push(this.opts.hold ? 'still running (--hold) until Ctrl-C:' : 'while it runs (dne demo --hold keeps it up after the report):');
    for (const a of this.agents) lines.push(`  metrics: curl ${a.endpoint}/metrics   status: dne ctl --endpoint ${a.endpoint} status`);
    if (this.layout) lines.push(`  REST API: curl --cacert ${this.layout.caCert} -H "Authorization: Bearer $(cat ${this.layout.adminTokenFile})" ${this.layout.urls.manager}${MANAGER_API}/status`);
    lines.push('');
    const failed = this.failed;
    lines.push(failed.length === 0 ? `all ${this.checks.length} checks passed` : `${failed.length} of ${this.checks.length} checks FAILED: ${failed.map((c) => c.name).join('; ')}`);
    return lines;
  }

  async cleanup(): Promise<void> {
    for (const a of this.agents) await a.stop().catch(() => {});
    this.topo?.destroy();
    this.topo = null;
    this.admin?.close();
    await this.server?.stop().catch(() => {});
    this.server = null;
    if (!this.opts.keep) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
