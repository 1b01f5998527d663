/**
 * HostConfig + key material -> operations on the dataplane (issue #7).
 *
 * One apply moves the dataplane from what is installed to what a HostConfig
 * version asks for, in the order that keeps every packet decidable
 * (DESIGN §4, §5):
 *
 *   1. ports that are new (or whose interfaces changed) are opened;
 *   2. SAs of keys not yet installed are installed — before any table can
 *      name them as txSpi, and receive-capable at once (a `receive` key is an
 *      installed SA that no table sends with);
 *   3. all port tables are replaced in one atomic swap; a txSpi that moved to
 *      a new key in this swap *is* the activation (the controller only makes
 *      a key `active` after every receiver acked it);
 *   4. SAs of keys no longer listed are removed (retired after the rekey
 *      margin, or revoked: the controller never lists a revoked key, so a
 *      revoked key is gone from this host at the first config without it);
 *   5. ports no longer listed are closed.
 *
 * Everything the apply needs is checked before the first operation (every
 * new key's material present, every table valid as far as JS can tell); if
 * the dataplane still refuses something, what this apply added is undone so
 * the last good configuration keeps running. Key Buffers handed in are
 * zero-filled whatever happens.
 */
import type { HostConfig, HostKey, HostPort } from '../controller/translate';
import type { PortConfig, PortTableSpec } from '../native/filter';
import type { AgentVnic } from './config';
import type { Dataplane } from './dataplane';

/** Key material from one release, held only until it is handed to the dataplane. */
export interface KeyMaterial {
  keyId: string;
  key: Buffer;
  salt: Buffer;
  senderIds: number[];
  senderIdBits: 8 | 16 | 24 | 32;
}

export interface InstalledSa {
  spi: number;
  keyId: string;
  keyPolicyId: string;
  keyPolicyIndex: number;
  mode: 'gcm' | 'gmac';
  state: HostKey['state'];
  notBefore: string;
  notAfter: string;
  replayWindow: number;
  senderIds: number[];
  senderIdBits: number;
  installedAt: number;
  /** Times the sender IDs were renewed (keys.ts, low water). */
  senderRenewals: number;
}

export interface InstalledPort {
  config: PortConfig;
  host: HostPort;
}

/** What this agent has put into its dataplane (memory only: nothing is kept on disk). */
export class DataplaneState {
  readonly ports = new Map<string, InstalledPort>();
  readonly sas = new Map<number, InstalledSa>();
  /** The HostConfig whose tables are in the dataplane. */
  config: HostConfig | null = null;
}

export interface Plan {
  addPorts: PortConfig[];
  /** Ports to close before re-adding (their interfaces changed). */
  replacePorts: string[];
  install: HostKey[];
  /** SAs whose SPI now names another key: removed before the new one goes in (never expected; SPIs are central). */
  replaceSas: number[];
  tables: { defaultAction: 'allow' | 'drop'; ports: Record<string, PortTableSpec> };
  removeSas: number[];
  removePorts: string[];
  /** KeyIDs whose material the apply needs (fetched with the grant). */
  keysNeeded: string[];
}

/** The port as the filter opens it: local config wins (it knows the interfaces and namespaces of this host). */
export function portConfigFor(p: HostPort, local: Map<string, AgentVnic>): PortConfig {
  const v = local.get(p.vnic_id);
  const c: PortConfig = {
    name: p.name,
    workloadIf: v?.workload_if ?? p.workload_if,
    networkIf: v?.network_if ?? p.network_if,
  };
  const wns = v ? (v.workload_netns ?? v.netns) : p.netns;
  const nns = v ? (v.network_netns ?? v.netns) : p.netns;
  if (wns) c.workloadNetns = wns;
  if (nns) c.networkNetns = nns;
  return c;
}

function samePort(a: PortConfig, b: PortConfig): boolean {
  return (
    a.workloadIf === b.workloadIf &&
    a.networkIf === b.networkIf &&
    (a.workloadNetns ?? '') === (b.workloadNetns ?? '') &&
    (a.networkNetns ?? '') === (b.networkNetns ?? '')
  );
}

export function plan(desired: HostConfig, state: DataplaneState, local: Map<string, AgentVnic>): Plan {
  const p: Plan = { addPorts: [], replacePorts: [], install: [], replaceSas: [], tables: { defaultAction: desired.defaultAction, ports: {} }, removeSas: [], removePorts: [], keysNeeded: [] };
  const wantPorts = new Set<string>();
  for (const hp of desired.ports) {
    wantPorts.add(hp.name);
    const pc = portConfigFor(hp, local);
    const have = state.ports.get(hp.name);
    if (!have) p.addPorts.push(pc);
    else if (!samePort(have.config, pc)) {
      p.replacePorts.push(hp.name);
      p.addPorts.push(pc);
    }
    p.tables.ports[hp.name] = hp.table;
  }
  for (const name of state.ports.keys()) if (!wantPorts.has(name)) p.removePorts.push(name);
  const wantSpis = new Set<number>();
  for (const k of desired.keys) {
    wantSpis.add(k.spi);
    const have = state.sas.get(k.spi);
    if (have && have.keyId === k.keyId && have.mode === k.mode && have.keyPolicyIndex === k.keyPolicyIndex) continue;
    if (have) p.replaceSas.push(k.spi);
    p.install.push(k);
  }
  p.keysNeeded = [...new Set(p.install.map((k) => k.keyId))];
  for (const spi of state.sas.keys()) if (!wantSpis.has(spi)) p.removeSas.push(spi);
  return p;
}

export class ApplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApplyError';
  }
}

export interface ApplyResult {
  generation: bigint;
  installed: string[];
  /** SAs removed while they were not `retiring` (revoked, or withdrawn early). */
  removedUnretired: InstalledSa[];
  removed: InstalledSa[];
}

/**
 * Reopens ports an apply closed (to reopen them with other interfaces) with
 * their old interfaces and table, so a change that cannot be opened (an
 * interface that does not exist) leaves the workload on the network as it
 * was (docs/agent.md "Reload"). A port that cannot be restored either is
 * named in the error; the others are restored.
 */
function restorePorts(dp: Dataplane, state: DataplaneState, closed: InstalledPort[]): void {
  const lost: string[] = [];
  const tables: Record<string, PortTableSpec> = {};
  for (const ip of closed) {
    try {
      dp.addPort(ip.config);
      state.ports.set(ip.config.name, ip);
      tables[ip.config.name] = ip.host.table;
    } catch (err) {
      lost.push(`${ip.config.name} (${(err as Error).message})`);
    }
  }
  // Only the restored ports' tables: every other port kept its table (no swap happened).
  if (Object.keys(tables).length) {
    try {
      dp.setTables({ defaultAction: state.config?.defaultAction, ports: tables });
    } catch (err) {
      lost.push(`tables of ${Object.keys(tables).join(', ')} (${(err as Error).message})`);
    }
  }
  if (lost.length) throw new ApplyError(`could not restore the previous ports: ${lost.join('; ')}`);
}

function wipe(material: Map<string, KeyMaterial>): void {
  for (const m of material.values()) {
    m.key.fill(0);
    m.salt.fill(0);
  }
}

/**
 * Applies `p` (from plan()). `material` holds a release for every key in
 * p.keysNeeded; each key's sender IDs go to exactly one SA (an SPI names
 * (key, mode) and a policy has one mode, so a key has one SA per host).
 */
export function apply(
  dp: Dataplane,
  state: DataplaneState,
  desired: HostConfig,
  p: Plan,
  material: Map<string, KeyMaterial>,
  opts: { lowWater?: bigint; now?: number; beforeRemoveSa?: (sa: InstalledSa) => void } = {},
): ApplyResult {
  try {
    for (const id of p.keysNeeded) if (!material.has(id)) throw new ApplyError(`no key material for key ${id}`);
    const addedPorts: string[] = [];
    const addedSas: number[] = [];
    const installed: string[] = [];
    /** Ports closed to be reopened with other interfaces: reopened as they were if the apply fails. */
    const closedPorts: InstalledPort[] = [];
    const undo = () => {
      for (const spi of addedSas) dp.removeSa(spi);
      for (const name of addedPorts) dp.removePort(name);
      restorePorts(dp, state, closedPorts);
    };
    let generation: bigint;
    try {
      for (const name of p.replacePorts) {
        const was = state.ports.get(name);
        dp.removePort(name);
        state.ports.delete(name);
        if (was) closedPorts.push(was);
      }
      for (const pc of p.addPorts) {
        dp.addPort(pc);
        addedPorts.push(pc.name);
      }
      for (const spi of p.replaceSas) {
        dp.removeSa(spi);
        state.sas.delete(spi);
      }
      for (const k of p.install) {
        const m = material.get(k.keyId)!;
        // The sender IDs of one release are used once: a second SA of the same key (never expected) gets none.
        if (m.senderIds.length === 0) throw new ApplyError(`key ${k.keyId} is listed under two SPIs; one release serves one SA`);
        dp.installSa({
          spi: k.spi,
          mode: k.mode,
          key: m.key,
          salt: m.salt,
          keyPolicy: k.keyPolicyIndex,
          senderIds: m.senderIds,
          senderIdBits: m.senderIdBits,
          replayWindow: k.replayWindow,
          lowWater: opts.lowWater,
        });
        addedSas.push(k.spi);
        installed.push(k.keyId);
        state.sas.set(k.spi, {
          spi: k.spi,
          keyId: k.keyId,
          keyPolicyId: k.keyPolicyId,
          keyPolicyIndex: k.keyPolicyIndex,
          mode: k.mode,
          state: k.state,
          notBefore: k.notBefore,
          notAfter: k.notAfter,
          replayWindow: k.replayWindow,
          senderIds: [...m.senderIds],
          senderIdBits: m.senderIdBits,
          installedAt: opts.now ?? Date.now(),
          senderRenewals: 0,
        });
        m.senderIds = [];
      }
      generation = dp.setTables(p.tables);
    } catch (err) {
      for (const spi of addedSas) state.sas.delete(spi);
      const why = (err as Error).message;
      try {
        undo();
      } catch (undoErr) {
        throw new ApplyError(`${why}; ${(undoErr as Error).message}`);
      }
      throw err instanceof ApplyError ? err : new ApplyError(why);
    }
    for (const pc of p.addPorts) {
      const hp = desired.ports.find((x) => x.name === pc.name)!;
      state.ports.set(pc.name, { config: pc, host: hp });
    }
    for (const hp of desired.ports) {
      const ip = state.ports.get(hp.name);
      if (ip) ip.host = hp;
    }
    // Key states move (receive -> active -> retiring) without touching the SA.
    for (const k of desired.keys) {
      const sa = state.sas.get(k.spi);
      if (sa) Object.assign(sa, { state: k.state, notBefore: k.notBefore, notAfter: k.notAfter });
    }
    const removed: InstalledSa[] = [];
    for (const spi of p.removeSas) {
      const sa = state.sas.get(spi);
      if (sa) opts.beforeRemoveSa?.(sa);
      dp.removeSa(spi);
      state.sas.delete(spi);
      if (sa) removed.push(sa);
    }
    for (const name of p.removePorts) {
      dp.removePort(name);
      state.ports.delete(name);
    }
    state.config = desired;
    return { generation, installed, removed, removedUnretired: removed.filter((s) => s.state !== 'retiring') };
  } finally {
    wipe(material);
  }
}
