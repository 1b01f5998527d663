/**
 * The manager's service layer: every API operation as one store transaction
 * (issue #5 "every change is one transaction"), with its audit entry in the
 * same transaction, so a change and its record commit together or not at
 * all. Routes (routes/*.ts) only parse HTTP and call these methods.
 *
 * Drafts and revisions (DESIGN §2): policy objects (key policies, groups, IP
 * sets, sections, rules, config) are a draft until published. Inventory
 * (hosts, workloads) is live: agents report it and administrators tag it,
 * and when a revision exists an inventory change re-publishes the last
 * published policy with the current inventory (NSX dynamic membership),
 * unless `autoPublishInventory` is off.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import * as net from 'node:net';
import { httpError, HttpError } from '../common/http-errors';
import type { FeedEvent, InventoryReport, StatsReport } from '../common/contracts';
import type { Revision, ResourceReference, Tag } from '../common/policy-model';
import { parseAddress, parsePrefix } from '../controller/addresses';
import { validateRevision } from './publish/validate';
import { assemble, currentInventory, DEFAULT_CONFIG, diffRevisions, draftPolicy, InventoryPart, PolicyPart, policyOf } from './revision';
import type { Problem } from './schemas';
import type { ManagerStore, ManagerStoreTx, ObjectKind, RevisionRow, StoredObject } from './store';

export interface ManagerSettings {
  /** Re-publish the last policy with the new inventory when inventory changes (default true). */
  autoPublishInventory: boolean;
  /**
   * Tag scopes whose agent-reported tags count for group membership (default
   * none: only the administrator's tags do, DESIGN §2). Trusting a scope lets
   * any host put its workloads into the groups that scope selects, and so
   * obtain those groups' keys.
   */
  trustedReportedTagScopes?: string[];
  /**
   * At most one inventory auto-publish per this many seconds (default 2);
   * changes in between are coalesced into the next one (the last state wins).
   * 0 publishes every change at once.
   */
  autoPublishMinIntervalSeconds?: number;
}

export const DEFAULT_AUTO_PUBLISH_MIN_INTERVAL_S = 2;
/** Agent starts (boot_id) whose counters are kept per host. */
export const STATS_BOOTS_KEPT = 2;

/** Meta row: every rule and key policy id ever published (stats reports may name only these). */
const PUBLISHED_IDS = 'published_policy_ids';

function addPublishedIds(into: { rules: Set<string>; key_policies: Set<string> }, rev: Revision): void {
  for (const s of rev.sections) for (const r of s.rules) into.rules.add(r.id);
  for (const k of rev.key_policies) into.key_policies.add(k.id);
}

/** Meta row set while an inventory change waits for its auto-publish (survives a restart). */
const AUTO_PENDING = 'auto_publish_pending_since';

export type Obj = Record<string, unknown>;

/** NSX resource_type and the words messages use, per kind. */
export const KINDS: Record<Exclude<ObjectKind, 'config'>, { resourceType: string; label: string }> = {
  key_manager: { resourceType: 'DneKeyManager', label: 'key manager' },
  key_policy: { resourceType: 'DneKeyPolicy', label: 'key policy' },
  section: { resourceType: 'DneSection', label: 'section' },
  rule: { resourceType: 'DneRule', label: 'rule' },
  group: { resourceType: 'DneGroup', label: 'group' },
  ip_set: { resourceType: 'DneIPSet', label: 'IP set' },
  host: { resourceType: 'DneHost', label: 'host' },
  workload: { resourceType: 'DneWorkload', label: 'workload' },
};

const INVENTORY: ReadonlySet<ObjectKind> = new Set(['host', 'workload']);
const SYSTEM = ['_create_time', '_create_user', '_last_modified_time', '_last_modified_user'] as const;

export type Operation = 'insert_top' | 'insert_bottom' | 'insert_after' | 'insert_before';
export interface Placement {
  operation?: Operation;
  id?: string;
}

export interface AutoPublishRecord {
  at: string;
  outcome: 'published' | 'refused';
  revision: number | null;
  problems: Problem[];
}

/** A refused publish: 409 with every problem. */
export class PublishRefused extends HttpError {
  constructor(readonly problems: Problem[], what = 'publish') {
    super(
      'ERR_DNE_CONFLICT',
      `${what} refused: the draft has ${problems.length} problem${problems.length === 1 ? '' : 's'}; first: ${problems[0]?.message ?? ''}`,
      { problems },
    );
  }
}

function label(kind: ObjectKind, id: string): string {
  return kind === 'config' ? 'the global config' : `${KINDS[kind].label} "${id}"`;
}

/**
 * An object as the API sends it. Typed loosely on purpose: the route's
 * TypeBox response schema is what shapes (and checks) it on the wire.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Wire = any;

export function toResponse(o: StoredObject): Wire {
  const out: Obj = { ...o.body, id: o.id, resource_type: o.kind === 'config' ? 'DneConfig' : KINDS[o.kind].resourceType, _revision: o.revision };
  if (o.kind === 'rule') out.section_id = o.parent;
  return out;
}

function stripUserFields(input: Obj): Obj {
  const b: Obj = { ...input };
  delete b.id;
  delete b._revision;
  return b;
}

export class ManagerService {
  /** Fires 'feed' after a commit that appended feed events (long-polls wake up). */
  readonly events = new EventEmitter();

  constructor(
    readonly store: ManagerStore,
    readonly settings: ManagerSettings,
    readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.events.setMaxListeners(0);
    this.trustedScopes = new Set(settings.trustedReportedTagScopes ?? []);
  }

  private readonly trustedScopes: ReadonlySet<string>;

  /** One write transaction; feed long-polls wake after it committed. */
  private async writeTx<T>(fn: (tx: ManagerStoreTx) => Promise<T>): Promise<T> {
    try {
      return await this.store.write(fn);
    } finally {
      this.notifyIfPending();
    }
  }

  private iso(): string {
    return this.now().toISOString();
  }

  // ------------------------------------------------------------ reads

  async get(kind: ObjectKind, id: string): Promise<StoredObject> {
    const o = await this.store.read((tx) => tx.get(kind, id));
    if (!o) throw httpError('notFound', `${label(kind, id)} does not exist`);
    return o;
  }

  async list(kind: ObjectKind, parent?: string): Promise<StoredObject[]> {
    return this.store.read(async (tx) => {
      if (parent !== undefined && !(await tx.get('section', parent))) throw httpError('notFound', `section "${parent}" does not exist`);
      return tx.list(kind, parent);
    });
  }

  async ruleCounts(): Promise<Map<string, number>> {
    const m = new Map<string, number>();
    for (const r of await this.store.read((tx) => tx.list('rule'))) m.set(r.parent, (m.get(r.parent) ?? 0) + 1);
    return m;
  }

  // ------------------------------------------------------------ field checks

  /** Reference and value checks beyond the schema: 400 naming the field, before anything is written. */
  private async checkBody(tx: ManagerStoreTx, kind: ObjectKind, b: Obj, selfId: string): Promise<void> {
    const bad = (field: string, msg: string) => httpError('badRequest', `body/${field} ${msg}`);
    const exists = async (k: ObjectKind, id: string) => !!(await tx.get(k, id));
    const checkRefs = async (field: string, refs: ResourceReference[] | undefined, appliedTo: boolean) => {
      for (const [i, r] of (refs ?? []).entries()) {
        const f = `${field}/${i}/target_id`;
        if (appliedTo && (r.target_type === 'IPSet' || r.target_type === 'IPAddress')) {
          throw bad(`${field}/${i}/target_type`, `must be NSGroup or Workload in an applied-to, not ${r.target_type}`);
        }
        if (r.target_type === 'IPAddress') {
          if (parsePrefix(r.target_id) === null) throw bad(f, 'must be an IPv4/IPv6 address or CIDR (e.g. 10.0.0.0/8, fd00::/64)');
        } else {
          const k: ObjectKind = r.target_type === 'NSGroup' ? 'group' : r.target_type === 'IPSet' ? 'ip_set' : 'workload';
          if (!(await exists(k, r.target_id))) throw bad(f, `names ${r.target_type} "${r.target_id}", which does not exist`);
        }
      }
    };
    switch (kind) {
      case 'key_policy':
        if (b.key_manager_id !== undefined && !(await exists('key_manager', b.key_manager_id as string))) {
          throw bad('key_manager_id', `names key manager "${String(b.key_manager_id)}", which does not exist`);
        }
        if ((b.rekey_frequency as number) > 0 && (b.rekey_frequency as number) >= (b.lifetime as number)) {
          throw bad('rekey_frequency', `must be shorter than lifetime (${String(b.lifetime)} s), or keys expire before they rotate`);
        }
        break;
      case 'ip_set':
        for (const [i, a] of (b.ip_addresses as string[]).entries()) {
          if (parsePrefix(a) === null) throw bad(`ip_addresses/${i}`, 'must be an IPv4/IPv6 address or CIDR (e.g. 10.0.0.0/8, fd00::/64)');
        }
        break;
      case 'group':
        for (const [i, e] of (b.expressions as Array<{ scope?: string; tag?: string }>).entries()) {
          if (!e.scope && !e.tag) throw bad(`expressions/${i}`, 'needs a scope, a tag or both');
        }
        for (const [i, id] of (b.workload_ids as string[]).entries()) {
          if (!(await exists('workload', id))) throw bad(`workload_ids/${i}`, `names workload "${id}", which does not exist`);
        }
        for (const [i, id] of (b.ip_set_ids as string[]).entries()) {
          if (!(await exists('ip_set', id))) throw bad(`ip_set_ids/${i}`, `names IP set "${id}", which does not exist`);
        }
        break;
      case 'workload': {
        if (!(await exists('host', b.host_id as string))) throw bad('host_id', `names host "${String(b.host_id)}", which does not exist`);
        await this.checkVnics(tx, b.vnics as Array<{ id: string }>, selfId, 'body/vnics');
        await this.checkAddresses(tx, [{ id: selfId, vnics: b.vnics as Array<{ ipv4?: string[]; ipv6?: string[] }> }], (o) => o.id === selfId, 'body/vnics');
        break;
      }
      case 'section':
      case 'rule':
        if (b.key_policy_identifier !== undefined && !(await exists('key_policy', b.key_policy_identifier as string))) {
          throw bad('key_policy_identifier', `names key policy "${String(b.key_policy_identifier)}", which does not exist`);
        }
        await checkRefs('applied_tos', b.applied_tos as ResourceReference[], true);
        if (kind === 'rule') {
          await checkRefs('sources', b.sources as ResourceReference[], false);
          await checkRefs('destinations', b.destinations as ResourceReference[], false);
          for (const [i, s] of (b.services as Array<{ protocol: string | number; destination_ports: string[] }>).entries()) {
            for (const [j, t] of s.destination_ports.entries()) {
              const [lo, hi] = t.split('-').map(Number);
              if (!(lo! <= (hi ?? lo!) && (hi ?? lo!) <= 65535)) throw bad(`services/${i}/destination_ports/${j}`, 'must be a port "N" or a range "LO-HI" with LO <= HI <= 65535');
            }
            if (s.destination_ports.length && !['TCP', 'UDP', 6, 17, 132, 136].includes(s.protocol)) {
              throw bad(`services/${i}/destination_ports`, `must be empty for protocol ${String(s.protocol)}: it has no ports`);
            }
          }
          if (b.action === 'ALLOW_IN_CLEAR' && b.key_policy_identifier !== undefined) {
            throw bad('key_policy_identifier', 'must not be set when action is ALLOW_IN_CLEAR (nothing is encrypted)');
          }
          if (b.action !== 'ALLOW_IN_CLEAR' && b.key_policy_identifier !== undefined) {
            const kp = await tx.get('key_policy', b.key_policy_identifier as string);
            const need = b.action === 'ENCRYPT' ? 'ENCRYPTION_AND_INTEGRITY' : 'INTEGRITY_ONLY';
            if (kp && kp.body.encrypt_type !== need) {
              throw bad('action', `${String(b.action)} needs an ${need} key policy, but key policy "${kp.id}" is ${String(kp.body.encrypt_type)}`);
            }
          }
        }
        break;
    }
  }

  /** vNIC ids are unique across all workloads (they name filter ports). */
  private async checkVnics(tx: ManagerStoreTx, vnics: Array<{ id: string }>, selfId: string, where: string): Promise<void> {
    const seen = new Set<string>();
    for (const [i, v] of vnics.entries()) {
      if (seen.has(v.id)) throw httpError('badRequest', `${where}/${i}/id "${v.id}" is used twice`);
      seen.add(v.id);
    }
    if (!seen.size) return;
    for (const w of await tx.list('workload')) {
      if (w.id === selfId) continue;
      for (const v of (w.body.vnics as Array<{ id: string }>) ?? []) {
        if (seen.has(v.id)) throw httpError('conflict', `${where}: vNIC id "${v.id}" already belongs to workload "${w.id}"`);
      }
    }
  }

  /**
   * An address belongs to one workload only: a second workload claiming it
   * (an agent reporting a neighbour's address, or an administrator's typo)
   * would receive that workload's traffic policy and keys. `mine` are the
   * workloads being written, keyed by id; every stored workload for which
   * `replaced` is true is being rewritten and does not count. 409 naming the
   * holder; compared in canonical form (10.0.0.2 == ::ffff:10.0.0.2, fd00::1 == fd00:0::1).
   */
  private async checkAddresses(tx: ManagerStoreTx, mine: Array<{ id: string; vnics: Array<{ ipv4?: string[]; ipv6?: string[] }> }>, replaced: (o: StoredObject) => boolean, where: string): Promise<void> {
    const claimed = new Map<string, { workload: string; text: string }>();
    for (const w of mine) {
      for (const v of w.vnics) {
        for (const a of [...(v.ipv4 ?? []), ...(v.ipv6 ?? [])]) {
          const k = canonicalAddress(a);
          if (k === null) continue; // the schema's format check refuses these first
          const other = claimed.get(k);
          if (other && other.workload !== w.id) throw httpError('conflict', `${where}: address ${a} is given to both workload "${other.workload}" and workload "${w.id}"`);
          claimed.set(k, { workload: w.id, text: a });
        }
      }
    }
    if (!claimed.size) return;
    for (const o of await tx.list('workload')) {
      if (replaced(o)) continue;
      for (const v of (o.body.vnics as Array<{ ipv4?: string[]; ipv6?: string[] }>) ?? []) {
        for (const a of [...(v.ipv4 ?? []), ...(v.ipv6 ?? [])]) {
          const mineHit = claimed.get(canonicalAddress(a) ?? '');
          if (mineHit) {
            throw httpError('conflict', `${where}: address ${mineHit.text} of workload "${mineHit.workload}" already belongs to workload "${o.id}" on host "${String(o.body.host_id)}"; an address belongs to one workload`);
          }
        }
      }
    }
  }

  /** Who refers to this object in the draft; a delete of a referenced object is refused (409). */
  private async referrers(tx: ManagerStoreTx, kind: ObjectKind, id: string): Promise<string[]> {
    const out: string[] = [];
    const targetType = kind === 'group' ? 'NSGroup' : kind === 'ip_set' ? 'IPSet' : kind === 'workload' ? 'Workload' : null;
    const refHit = (refs: unknown) => targetType !== null && ((refs as ResourceReference[]) ?? []).some((r) => r.target_type === targetType && r.target_id === id);
    if (kind === 'key_manager') {
      for (const k of await tx.list('key_policy')) if (k.body.key_manager_id === id) out.push(`key policy "${k.id}"`);
    }
    if (kind === 'ip_set' || kind === 'workload') {
      const field = kind === 'ip_set' ? 'ip_set_ids' : 'workload_ids';
      for (const g of await tx.list('group')) if ((g.body[field] as string[]).includes(id)) out.push(`group "${g.id}" ${field}`);
    }
    for (const s of await tx.list('section')) {
      if (kind === 'key_policy' && s.body.key_policy_identifier === id) out.push(`section "${s.id}" key_policy_identifier`);
      if (refHit(s.body.applied_tos)) out.push(`section "${s.id}" applied_tos`);
    }
    for (const r of await tx.list('rule')) {
      if (kind === 'key_policy' && r.body.key_policy_identifier === id) out.push(`rule "${r.id}" key_policy_identifier`);
      for (const f of ['sources', 'destinations', 'applied_tos']) if (refHit(r.body[f])) out.push(`rule "${r.id}" ${f}`);
    }
    return out;
  }

  // ------------------------------------------------------------ ordering

  /** Rewrites sibling positions so that `id` sits where `place` says. */
  private async place(tx: ManagerStoreTx, kind: 'section' | 'rule', parent: string, id: string, place: Placement): Promise<number> {
    const siblings = (await tx.list(kind, kind === 'rule' ? parent : '')).filter((o) => o.id !== id);
    const op = place.operation ?? 'insert_bottom';
    let at: number;
    if (op === 'insert_top') at = 0;
    else if (op === 'insert_bottom') at = siblings.length;
    else {
      if (!place.id) throw httpError('badRequest', `querystring/id is required with operation=${op} (the ${KINDS[kind].label} to insert ${op === 'insert_after' ? 'after' : 'before'})`);
      if (place.id === id) throw httpError('badRequest', `querystring/id must name another ${KINDS[kind].label}, not the one being placed`);
      const i = siblings.findIndex((o) => o.id === place.id);
      if (i < 0) {
        throw httpError('badRequest', `querystring/id names ${KINDS[kind].label} "${place.id}", which does not exist${kind === 'rule' ? ` in section "${parent}"` : ''}`);
      }
      at = op === 'insert_after' ? i + 1 : i;
    }
    siblings.splice(at, 0, { id } as StoredObject);
    for (const [i, o] of siblings.entries()) {
      if (o.id === id || o.pos === i) continue;
      await tx.put({ ...o, pos: i });
    }
    return at;
  }

  // ------------------------------------------------------------ create / update / delete

  async create(actor: string, kind: Exclude<ObjectKind, 'config'>, input: Obj, opts: { parent?: string; place?: Placement } = {}): Promise<StoredObject> {
    if (opts.place?.operation === undefined && opts.place?.id !== undefined) throw httpError('badRequest', 'querystring/id needs operation=insert_after or insert_before');
    return this.writeTx(async (tx) => {
      const o = await this.createIn(tx, actor, kind, input, opts);
      if (INVENTORY.has(kind)) await this.inventoryChanged(tx, actor);
      return o;
    });
  }

  private async createIn(tx: ManagerStoreTx, actor: string, kind: Exclude<ObjectKind, 'config'>, input: Obj, opts: { parent?: string; place?: Placement }): Promise<StoredObject> {
    const id = (input.id as string | undefined) ?? randomUUID();
    if (await tx.get(kind, id)) {
      throw httpError('conflict', kind === 'rule' ? `rule "${id}" already exists (rule ids are unique across sections)` : `${label(kind, id)} already exists`);
    }
    const parent = opts.parent ?? '';
    if (kind === 'rule' && !(await tx.get('section', parent))) throw httpError('notFound', `section "${parent}" does not exist`);
    const body = stripUserFields(input);
    await this.checkBody(tx, kind, body, id);
    const at = this.iso();
    Object.assign(body, { _create_time: at, _create_user: actor, _last_modified_time: at, _last_modified_user: actor });
    const o: StoredObject = { kind, id, parent, pos: 0, revision: 0, body };
    await tx.put(o);
    if (kind === 'section' || kind === 'rule') o.pos = await this.place(tx, kind, parent, id, opts.place ?? {});
    await tx.put(o);
    await tx.appendAudit({ at, actor, action: 'create', object_type: kind, object_id: id, before: null, after: toResponse(o) });
    return o;
  }

  async createSectionWithRules(actor: string, input: Obj, place: Placement): Promise<{ section: StoredObject; rules: StoredObject[] }> {
    return this.writeTx(async (tx) => {
      const { rules, ...sectionInput } = input as Obj & { rules: Obj[] };
      const section = await this.createIn(tx, actor, 'section', sectionInput, { place });
      const ids = new Set<string>();
      const out: StoredObject[] = [];
      for (const [i, r] of rules.entries()) {
        if (typeof r.id === 'string') {
          if (ids.has(r.id)) throw httpError('badRequest', `body/rules/${i}/id "${r.id}" is used twice`);
          ids.add(r.id);
        }
        try {
          out.push(await this.createIn(tx, actor, 'rule', r, { parent: section.id }));
        } catch (err) {
          // Name the rule the message is about.
          if (err instanceof HttpError) throw new HttpError(err.code, err.message.replace(/^body\//, `body/rules/${i}/`), err.detail);
          throw err;
        }
      }
      return { section, rules: out };
    });
  }

  async update(actor: string, kind: ObjectKind, id: string, input: Obj, opts: { parent?: string } = {}): Promise<StoredObject> {
    return this.writeTx(async (tx) => {
      const o = await this.updateIn(tx, actor, kind, id, input, opts);
      if (INVENTORY.has(kind)) await this.inventoryChanged(tx, actor);
      return o;
    });
  }

  private async updateIn(tx: ManagerStoreTx, actor: string, kind: ObjectKind, id: string, input: Obj, opts: { parent?: string }): Promise<StoredObject> {
    if (input.id !== undefined && input.id !== id) throw httpError('badRequest', `body/id "${String(input.id)}" differs from the path's id "${id}"`);
    let before = await tx.get(kind, id);
    if (kind === 'config' && !before) before = { kind, id, parent: '', pos: 0, revision: 0, body: { ...DEFAULT_CONFIG } };
    if (!before || (kind === 'rule' && opts.parent !== undefined && before.parent !== opts.parent)) {
      if (kind === 'rule' && opts.parent !== undefined && !(await tx.get('section', opts.parent))) throw httpError('notFound', `section "${opts.parent}" does not exist`);
      throw httpError('notFound', `${label(kind, id)} does not exist${kind === 'rule' && opts.parent !== undefined ? ` in section "${opts.parent}"` : ''}`);
    }
    if (input._revision !== before.revision) {
      throw httpError('conflict', `_revision ${String(input._revision)} is stale: ${label(kind, id)} is at _revision ${before.revision}; read it again and reapply the change`);
    }
    const body = stripUserFields(input);
    await this.checkBody(tx, kind, body, id);
    if (kind === 'workload') body.reported_tags = before.body.reported_tags ?? [];
    const at = this.iso();
    for (const f of SYSTEM) if (before.body[f] !== undefined) body[f] = before.body[f];
    body._create_time ??= at;
    body._create_user ??= actor;
    Object.assign(body, { _last_modified_time: at, _last_modified_user: actor });
    const after: StoredObject = { ...before, revision: before.revision + 1, body };
    await tx.put(after);
    await tx.appendAudit({ at, actor, action: 'update', object_type: kind, object_id: id, before: toResponse(before), after: toResponse(after) });
    return after;
  }

  async remove(actor: string, kind: Exclude<ObjectKind, 'config'>, id: string, opts: { parent?: string } = {}): Promise<void> {
    await this.writeTx(async (tx) => {
      const before = await tx.get(kind, id);
      if (!before || (kind === 'rule' && opts.parent !== undefined && before.parent !== opts.parent)) {
        if (kind === 'rule' && opts.parent !== undefined && !(await tx.get('section', opts.parent))) throw httpError('notFound', `section "${opts.parent}" does not exist`);
        throw httpError('notFound', `${label(kind, id)} does not exist${kind === 'rule' && opts.parent !== undefined ? ` in section "${opts.parent}"` : ''}`);
      }
      if (kind === 'host') {
        const on = (await tx.list('workload')).filter((w) => w.body.host_id === id).map((w) => `"${w.id}"`);
        if (on.length) throw httpError('conflict', `host "${id}" still has workloads ${on.slice(0, 5).join(', ')}${on.length > 5 ? ', ...' : ''}; delete or move them first`);
      }
      if (kind !== 'workload' && kind !== 'host') {
        const refs = await this.referrers(tx, kind, id);
        if (refs.length) throw httpError('conflict', `${label(kind, id)} is referenced by ${refs.slice(0, 5).join(', ')}${refs.length > 5 ? `, and ${refs.length - 5} more` : ''}`);
      }
      const at = this.iso();
      if (kind === 'section') {
        for (const r of await tx.list('rule', id)) {
          await tx.delete('rule', r.id);
          await tx.appendAudit({ at, actor, action: 'delete', object_type: 'rule', object_id: r.id, before: toResponse(r), after: null, detail: { with_section: id } });
        }
      }
      await tx.delete(kind, id);
      if (kind === 'section' || kind === 'rule') {
        for (const [i, o] of (await tx.list(kind, kind === 'rule' ? before.parent : '')).entries()) if (o.pos !== i) await tx.put({ ...o, pos: i });
      }
      await tx.appendAudit({ at, actor, action: 'delete', object_type: kind, object_id: id, before: toResponse(before), after: null });
      if (INVENTORY.has(kind)) await this.inventoryChanged(tx, actor);
    });
  }

  /** `?action=revise`: moves a section (or a rule within its section). */
  async revise(actor: string, kind: 'section' | 'rule', id: string, place: Placement, parent?: string): Promise<StoredObject> {
    if (!place.operation) throw httpError('badRequest', 'querystring/operation is required with action=revise (insert_top, insert_bottom, insert_after, insert_before)');
    return this.writeTx(async (tx) => {
      const before = await tx.get(kind, id);
      if (!before || (kind === 'rule' && before.parent !== parent)) {
        if (kind === 'rule' && !(await tx.get('section', parent!))) throw httpError('notFound', `section "${parent}" does not exist`);
        throw httpError('notFound', `${label(kind, id)} does not exist${kind === 'rule' ? ` in section "${parent}"` : ''}`);
      }
      const oldOrder = (await tx.list(kind, kind === 'rule' ? parent : '')).map((o) => o.id);
      const pos = await this.place(tx, kind, before.parent, id, place);
      const at = this.iso();
      const after: StoredObject = { ...before, pos, revision: before.revision + 1, body: { ...before.body, _last_modified_time: at, _last_modified_user: actor } };
      await tx.put(after);
      const newOrder = (await tx.list(kind, kind === 'rule' ? parent : '')).map((o) => o.id);
      await tx.appendAudit({ at, actor, action: 'revise', object_type: kind, object_id: id, before: { order: oldOrder }, after: { order: newOrder }, detail: { ...place } });
      return after;
    });
  }

  async getConfig(): Promise<StoredObject> {
    const o = await this.store.read((tx) => tx.get('config', 'global'));
    return o ?? { kind: 'config', id: 'global', parent: '', pos: 0, revision: 0, body: { ...DEFAULT_CONFIG } };
  }

  // ------------------------------------------------------------ inventory from agents

  async reportInventory(hostId: string, report: InventoryReport, actor: string): Promise<{ host: StoredObject; workloadIds: string[]; autoPublished: number | null }> {
    return this.writeTx(async (tx) => {
      const at = this.iso();
      const seen = new Set<string>();
      for (const [i, w] of report.workloads.entries()) {
        if (seen.has(w.id)) throw httpError('badRequest', `body/workloads/${i}/id "${w.id}" is reported twice`);
        seen.add(w.id);
        const existing = await tx.get('workload', w.id);
        if (existing && existing.body.host_id !== hostId) {
          throw httpError('conflict', `body/workloads/${i}: workload "${w.id}" belongs to host "${String(existing.body.host_id)}"; a host reports only its own workloads`);
        }
      }
      const allVnics: Array<{ id: string }> = report.workloads.flatMap((w) => w.vnics);
      const vnicSeen = new Map<string, string>();
      for (const w of report.workloads) {
        for (const v of w.vnics) {
          if (vnicSeen.has(v.id)) throw httpError('badRequest', `body/workloads: vNIC id "${v.id}" is reported for both "${vnicSeen.get(v.id)}" and "${w.id}"`);
          vnicSeen.set(v.id, w.id);
        }
      }
      if (allVnics.length) {
        for (const o of await tx.list('workload')) {
          if (o.body.host_id === hostId) continue;
          for (const v of (o.body.vnics as Array<{ id: string }>) ?? []) {
            if (vnicSeen.has(v.id)) throw httpError('conflict', `body/workloads: vNIC id "${v.id}" already belongs to workload "${o.id}" on host "${String(o.body.host_id)}"`);
          }
        }
      }
      // The report replaces this host's workloads: only other hosts' addresses count.
      await this.checkAddresses(tx, report.workloads, (o) => o.body.host_id === hostId, 'body/workloads');
      let changed = false;
      let host = await tx.get('host', hostId);
      if (!host || host.body.display_name !== report.display_name) {
        const before = host;
        host = {
          kind: 'host',
          id: hostId,
          parent: '',
          pos: 0,
          revision: before ? before.revision + 1 : 0,
          body: { display_name: report.display_name, _create_time: before?.body._create_time ?? at, _create_user: before?.body._create_user ?? actor, _last_modified_time: at, _last_modified_user: actor },
        };
        await tx.put(host);
        changed = true;
        await tx.appendAudit({ at, actor, action: before ? 'update' : 'create', object_type: 'host', object_id: hostId, before: before ? toResponse(before) : null, after: toResponse(host), detail: { via: 'inventory report' } });
      }
      for (const w of report.workloads) {
        const before = await tx.get('workload', w.id);
        const body: Obj = {
          display_name: w.display_name,
          host_id: hostId,
          vnics: w.vnics.map((v) => ({ ...v, ipv4: v.ipv4 ?? [], ipv6: v.ipv6 ?? [] })),
          tags: (before?.body.tags as Tag[]) ?? [],
          reported_tags: w.tags,
          _create_time: before?.body._create_time ?? at,
          _create_user: before?.body._create_user ?? actor,
          _last_modified_time: at,
          _last_modified_user: actor,
        };
        const same = before && JSON.stringify({ ...before.body, _last_modified_time: 0, _last_modified_user: 0 }) === JSON.stringify({ ...body, _last_modified_time: 0, _last_modified_user: 0 });
        if (same) continue;
        changed = true;
        const after: StoredObject = { kind: 'workload', id: w.id, parent: '', pos: 0, revision: before ? before.revision + 1 : 0, body };
        await tx.put(after);
        await tx.appendAudit({ at, actor, action: before ? 'update' : 'create', object_type: 'workload', object_id: w.id, before: before ? toResponse(before) : null, after: toResponse(after), detail: { via: 'inventory report' } });
      }
      for (const o of await tx.list('workload')) {
        if (o.body.host_id !== hostId || seen.has(o.id)) continue;
        await tx.delete('workload', o.id);
        changed = true;
        await tx.appendAudit({ at, actor, action: 'delete', object_type: 'workload', object_id: o.id, before: toResponse(o), after: null, detail: { via: 'inventory report' } });
      }
      const autoPublished = changed ? await this.inventoryChanged(tx, actor) : null;
      return { host, workloadIds: [...seen], autoPublished };
    });
  }

  // ------------------------------------------------------------ publish

  private async validationContext(tx: ManagerStoreTx) {
    return { keyManagerIds: new Set((await tx.list('key_manager')).map((k) => k.id)) };
  }

  private async storeRevision(tx: ManagerStoreTx, rev: Revision, actor: string, origin: RevisionRow['origin'], source: number | null): Promise<number> {
    const ids = await this.publishedIds(tx);
    const size = ids.rules.size + ids.key_policies.size;
    addPublishedIds(ids, rev);
    if (size !== ids.rules.size + ids.key_policies.size || !(await tx.getMeta(PUBLISHED_IDS))) {
      await tx.setMeta(PUBLISHED_IDS, JSON.stringify({ rules: [...ids.rules], key_policies: [...ids.key_policies] }));
    }
    await tx.insertRevision({ number: rev.revision, published_at: rev.published_at, published_by: actor, origin, source, body: JSON.stringify(rev) });
    const seq = await tx.appendFeed('revision', rev.published_at, { revision: rev.revision });
    this.pendingFeed = true;
    return seq;
  }

  /** Set inside a transaction that appended feed events; the long-polls are woken after it committed. */
  private pendingFeed = false;

  private notifyIfPending(): void {
    if (this.pendingFeed) {
      this.pendingFeed = false;
      this.events.emit('feed');
    }
  }

  async publish(actor: string, description?: string): Promise<{ row: Omit<RevisionRow, 'body'>; rev: Revision; seq: number }> {
    try {
      return await this.writeTx(async (tx) => {
        const last = await tx.latestRevision();
        const n = (last?.number ?? 0) + 1;
        const rev = assemble(n, this.iso(), await draftPolicy(tx), await currentInventory(tx, this.trustedScopes));
        const problems = validateRevision(rev, await this.validationContext(tx));
        if (problems.length) throw new PublishRefused(problems);
        const seq = await this.storeRevision(tx, rev, actor, 'publish', null);
        if (await tx.getMeta(AUTO_PENDING)) await tx.setMeta(AUTO_PENDING, ''); // this revision holds the current inventory
        await tx.appendAudit({
          at: rev.published_at,
          actor,
          action: 'publish',
          object_type: 'revision',
          object_id: String(n),
          before: last ? { revision: last.number } : null,
          after: summary(rev),
          detail: description ? { description } : {},
        });
        return { row: { number: n, published_at: rev.published_at, published_by: actor, origin: 'publish' as const, source: null }, rev, seq };
      });
    } finally {
      this.notifyIfPending();
    }
  }

  /** A new revision = revision n's policy + the current inventory; the draft becomes revision n's policy. */
  async rollback(actor: string, n: number): Promise<{ row: Omit<RevisionRow, 'body'>; rev: Revision; seq: number }> {
    try {
      return await this.writeTx(async (tx) => {
        const target = await tx.getRevision(n);
        if (!target) throw httpError('notFound', `revision ${n} does not exist`);
        const last = (await tx.latestRevision())!;
        const policy = policyOf(JSON.parse(target.body) as Revision);
        const rev = assemble(last.number + 1, this.iso(), policy, await currentInventory(tx, this.trustedScopes));
        const problems = validateRevision(rev, await this.validationContext(tx));
        if (problems.length) throw new PublishRefused(problems, `rollback to revision ${n}`);
        const seq = await this.storeRevision(tx, rev, actor, 'rollback', n);
        if (await tx.getMeta(AUTO_PENDING)) await tx.setMeta(AUTO_PENDING, '');
        await this.replaceDraft(tx, policy, actor, rev.published_at);
        await tx.appendAudit({ at: rev.published_at, actor, action: 'rollback', object_type: 'revision', object_id: String(rev.revision), before: { revision: last.number }, after: { ...summary(rev), rolled_back_to: n } });
        return { row: { number: rev.revision, published_at: rev.published_at, published_by: actor, origin: 'rollback' as const, source: n }, rev, seq };
      });
    } finally {
      this.notifyIfPending();
    }
  }

  private async replaceDraft(tx: ManagerStoreTx, policy: PolicyPart, actor: string, at: string): Promise<void> {
    const prev = new Map<string, StoredObject>();
    for (const k of ['group', 'ip_set', 'key_policy', 'section', 'rule', 'config'] as const) {
      for (const o of await tx.list(k)) prev.set(`${k}\0${o.id}`, o);
      await tx.deleteAll(k);
    }
    const put = async (kind: ObjectKind, id: string, parent: string, pos: number, fields: Obj) => {
      const before = prev.get(`${kind}\0${id}`);
      const sys = before ? { _create_time: before.body._create_time, _create_user: before.body._create_user } : { _create_time: at, _create_user: actor };
      const body: Obj = { ...fields, ...sys, _last_modified_time: at, _last_modified_user: actor };
      delete body.id;
      if (kind === 'key_policy' && before?.body.description !== undefined) body.description = before.body.description;
      await tx.put({ kind, id, parent, pos, revision: before ? before.revision + 1 : 0, body });
    };
    await put('config', 'global', '', 0, { ...policy.config });
    for (const g of policy.groups) await put('group', g.id, '', 0, { ...g });
    for (const s of policy.ip_sets) await put('ip_set', s.id, '', 0, { ...s });
    for (const k of policy.key_policies) await put('key_policy', k.id, '', 0, { ...k });
    for (const [i, s] of policy.sections.entries()) {
      const { rules, ...rest } = s;
      await put('section', s.id, '', i, { ...rest });
      for (const [j, r] of rules.entries()) await put('rule', r.id, s.id, j, { ...r });
    }
  }

  // ------------------------------------------------------------ auto-publish pacing

  /** Time (this.now(), ms) the last auto-publish evaluated a changed inventory. */
  private lastAutoRunAt = Number.NEGATIVE_INFINITY;
  private autoTimer: NodeJS.Timeout | null = null;
  private autoDueAt: number | null = null;
  /** Who changed the inventory since the last auto-publish (audit detail of the coalesced one). */
  private readonly autoActors = new Set<string>();
  private closed = false;

  private get autoIntervalMs(): number {
    return (this.settings.autoPublishMinIntervalSeconds ?? DEFAULT_AUTO_PUBLISH_MIN_INTERVAL_S) * 1000;
  }

  /**
   * Called in the transaction of every inventory change. Each auto-publish
   * validates and stores a whole revision, so agents reporting in a loop
   * could otherwise make one revision per report (security review: 100
   * alternating reports, 100 revisions in 0.5 s). The first change after a
   * quiet interval publishes at once, in its own transaction (the report's
   * answer names the revision); later ones mark the inventory dirty (a meta
   * row committed with the change, so a restart picks it up) and one timer
   * publishes the inventory as it then is, `autoPublishMinIntervalSeconds`
   * after the previous one.
   */
  private async inventoryChanged(tx: ManagerStoreTx, actor: string): Promise<number | null> {
    if (!this.settings.autoPublishInventory) return null;
    const interval = this.autoIntervalMs;
    const now = this.now().getTime();
    if (interval <= 0 || (this.autoTimer === null && now - this.lastAutoRunAt >= interval)) return this.autoPublish(tx, actor);
    if (!(await tx.latestRevision())) return null; // nothing published yet: the first publish takes the inventory as it is
    await tx.setMeta(AUTO_PENDING, new Date(now).toISOString());
    this.autoActors.add(actor);
    this.scheduleAutoPublish(this.lastAutoRunAt + interval - now);
    return null;
  }

  private scheduleAutoPublish(delayMs: number): void {
    if (this.autoTimer !== null || this.closed) return;
    const delay = Math.max(0, Math.min(delayMs, this.autoIntervalMs));
    this.autoDueAt = this.now().getTime() + delay;
    this.autoTimer = setTimeout(() => void this.runPendingAutoPublish(), delay);
  }

  /**
   * Publishes a pending (coalesced) inventory change now: the timer's work,
   * also run at close so a graceful stop loses nothing. Returns the revision,
   * or null when nothing was published (no change, refused, nothing pending).
   */
  async runPendingAutoPublish(): Promise<number | null> {
    if (this.autoTimer !== null) clearTimeout(this.autoTimer);
    this.autoTimer = null;
    this.autoDueAt = null;
    const actors = [...this.autoActors];
    this.autoActors.clear();
    try {
      return await this.writeTx(async (tx) => ((await tx.getMeta(AUTO_PENDING)) ? this.autoPublish(tx, actors[actors.length - 1] ?? 'dne://manager/auto-publish', actors) : null));
    } catch (err) {
      this.log.error({ err }, 'pending inventory auto-publish failed');
      return null;
    }
  }

  /** At start: an inventory change left pending by a previous process (a crash inside the interval) is published after one interval. */
  async start(): Promise<void> {
    if (!this.settings.autoPublishInventory) return;
    if (await this.store.read((tx) => tx.getMeta(AUTO_PENDING))) {
      this.lastAutoRunAt = this.now().getTime();
      this.scheduleAutoPublish(this.autoIntervalMs);
    }
  }

  /** Before the store closes: publish what is pending, stop the timer. */
  async close(): Promise<void> {
    if (this.closed) return;
    const pending = this.autoTimer !== null;
    this.closed = true;
    if (pending) await this.runPendingAutoPublish();
  }

  /**
   * NSX dynamic membership: after an inventory change (in the same
   * transaction), publish the last revision's policy with the current
   * inventory. Nothing is published when the inventory is what the last
   * revision already has, or when the result does not validate (then the
   * problems go to `status` and the audit log, and the last revision stays).
   */
  private async autoPublish(tx: ManagerStoreTx, actor: string, coalesced: string[] = []): Promise<number | null> {
    if (!this.settings.autoPublishInventory) return null;
    if (await tx.getMeta(AUTO_PENDING)) await tx.setMeta(AUTO_PENDING, '');
    const last = await tx.latestRevision();
    if (!last) return null;
    const lastRev = JSON.parse(last.body) as Revision;
    const inv: InventoryPart = await currentInventory(tx, this.trustedScopes);
    if (JSON.stringify(inv.hosts) === JSON.stringify(lastRev.hosts) && JSON.stringify(inv.workloads) === JSON.stringify(lastRev.workloads)) return null;
    this.lastAutoRunAt = this.now().getTime();
    const rev = assemble(last.number + 1, this.iso(), policyOf(lastRev), inv);
    const problems = validateRevision(rev, await this.validationContext(tx));
    const record: AutoPublishRecord = { at: rev.published_at, outcome: problems.length ? 'refused' : 'published', revision: problems.length ? null : rev.revision, problems };
    await tx.setMeta('last_auto_publish', JSON.stringify(record));
    if (problems.length) {
      await tx.appendAudit({ at: rev.published_at, actor, action: 'auto-publish-refused', object_type: 'revision', object_id: String(rev.revision), before: { revision: last.number }, after: null, detail: { problems, ...(coalesced.length ? { changes_by: coalesced } : {}) } });
      this.log.warn({ problems: problems.slice(0, 10), count: problems.length }, 'inventory change not published: the policy does not validate with the new inventory');
      return null;
    }
    await this.storeRevision(tx, rev, actor, 'auto', null);
    await tx.appendAudit({ at: rev.published_at, actor, action: 'auto-publish', object_type: 'revision', object_id: String(rev.revision), before: { revision: last.number }, after: summary(rev), ...(coalesced.length ? { detail: { changes_by: coalesced } } : {}) });
    return rev.revision;
  }

  async revision(n: number): Promise<RevisionRow> {
    const r = await this.store.read((tx) => tx.getRevision(n));
    if (!r) throw httpError('notFound', `revision ${n} does not exist`);
    return r;
  }

  async listRevisions(limit: number, before?: number) {
    return this.store.read(async (tx) => ({ rows: await tx.listRevisions(limit, before), total: await tx.countRevisions() }));
  }

  async draftRevision(validate: boolean): Promise<{ rev: Revision; problems: Problem[] }> {
    return this.store.read(async (tx) => {
      const rev = assemble(0, this.iso(), await draftPolicy(tx), await currentInventory(tx, this.trustedScopes));
      return { rev, problems: validate ? validateRevision(rev, await this.validationContext(tx)) : [] };
    });
  }

  async diff(from: number, to: number | 'draft') {
    const a = JSON.parse((await this.revision(from)).body) as Revision;
    const b = to === 'draft' ? (await this.draftRevision(false)).rev : (JSON.parse((await this.revision(to)).body) as Revision);
    return { from, to, ...diffRevisions(a, b) };
  }

  // ------------------------------------------------------------ key policy actions, feed

  async keyPolicyAction(actor: string, id: string, action: 'rotate' | 'revoke', reason?: string): Promise<number> {
    try {
      return await this.writeTx(async (tx) => {
        const kp = await tx.get('key_policy', id);
        if (!kp) throw httpError('notFound', `key policy "${id}" does not exist`);
        const last = await tx.latestRevision();
        const published = last && (JSON.parse(last.body) as Revision).key_policies.some((k) => k.id === id);
        if (!published) throw httpError('conflict', `key policy "${id}" is not in a published revision, so it has no keys to ${action}; publish first`);
        const at = this.iso();
        const body: Obj = { key_policy_id: id, requested_by: actor };
        if (action === 'revoke' && reason) body.reason = reason;
        const seq = await tx.appendFeed(action, at, body);
        this.pendingFeed = true;
        await tx.appendAudit({ at, actor, action, object_type: 'key_policy', object_id: id, before: null, after: null, detail: { feed_seq: seq, ...(reason ? { reason } : {}) } });
        return seq;
      });
    } finally {
      this.notifyIfPending();
    }
  }

  async feed(after: number, limit: number): Promise<{ events: FeedEvent[]; latest_seq: number }> {
    return this.store.read(async (tx) => {
      const rows = await tx.listFeed(after, limit);
      const events: FeedEvent[] = [];
      for (const r of rows) {
        if (r.type === 'revision') {
          const rev = await tx.getRevision(r.body.revision as number);
          events.push({ seq: r.seq, at: r.at, type: 'revision', revision: JSON.parse(rev!.body) as Revision });
        } else {
          events.push({ seq: r.seq, at: r.at, type: r.type, ...(r.body as { key_policy_id: string; requested_by: string; reason?: string }) } as FeedEvent);
        }
      }
      return { events, latest_seq: await tx.latestFeedSeq() };
    });
  }

  /** Resolves when a feed event is committed, or after `ms`, or when `signal` aborts. */
  waitForFeed(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.events.off('feed', done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.events.on('feed', done);
      signal?.addEventListener('abort', done);
    });
  }

  // ------------------------------------------------------------ stats, audit, status

  /**
   * Stores a host's counters. Every rule and key policy named must have been
   * in a published revision: a host cannot invent ids to grow the database
   * or pollute `/stats` (security review). Any published revision, not only
   * the latest: an agent keeps reporting the cumulative counters of rules
   * and key policies a later revision removed for as long as it runs
   * (ts/agent/agent.ts retiredRules/retiredPolicy), and refusing those would
   * refuse all of its reports. 400 naming the unknown ids; nothing stored.
   */
  async putStats(hostId: string, report: StatsReport): Promise<void> {
    await this.writeTx(async (tx) => {
      const known = await this.publishedIds(tx);
      const unknown = (field: 'rules' | 'key_policies', what: string, ids: string[]) => {
        const bad = [...new Set(ids.filter((id) => !known[field].has(id)))];
        if (!bad.length) return;
        const list = bad.slice(0, 10).map((id) => `"${id}"`).join(', ') + (bad.length > 10 ? `, and ${bad.length - 10} more` : '');
        throw httpError('badRequest', `body/${field} names ${what} that no published revision holds: ${list}`);
      };
      unknown('rules', 'rule ids', report.rules.map((r) => r.rule_id));
      unknown('key_policies', 'key policy ids', report.key_policies.map((k) => k.key_policy_id));
      await tx.putStats({ host_id: hostId, boot_id: report.boot_id, at: report.at, body: JSON.stringify(report) });
      // The current and the previous agent start: a host reporting a new boot_id every time stores two reports, not one per call.
      await tx.pruneStats(hostId, STATS_BOOTS_KEPT);
    });
  }

  /** Ids of every rule and key policy ever published (a meta row kept by storeRevision; built from the revisions once if missing). */
  private async publishedIds(tx: ManagerStoreTx): Promise<{ rules: Set<string>; key_policies: Set<string> }> {
    const raw = await tx.getMeta(PUBLISHED_IDS);
    if (raw) {
      const j = JSON.parse(raw) as { rules: string[]; key_policies: string[] };
      return { rules: new Set(j.rules), key_policies: new Set(j.key_policies) };
    }
    const out = { rules: new Set<string>(), key_policies: new Set<string>() };
    for (const row of await tx.listRevisions(Number.MAX_SAFE_INTEGER)) addPublishedIds(out, JSON.parse((await tx.getRevision(row.number))!.body) as Revision);
    return out;
  }

  async statsReports(): Promise<Array<{ host_id: string; report: StatsReport }>> {
    return (await this.store.read((tx) => tx.listStats())).map((r) => ({ host_id: r.host_id, report: JSON.parse(r.body) as StatsReport }));
  }

  async audit(since: number, limit: number) {
    return this.store.read((tx) => tx.listAudit(since, limit));
  }

  async status() {
    return this.store.read(async (tx) => {
      const last = await tx.latestRevision();
      let differs = true;
      const draft = await draftPolicy(tx);
      if (last) differs = JSON.stringify(policyOf(JSON.parse(last.body) as Revision)) !== JSON.stringify(draft);
      const counts: Record<string, number> = {};
      for (const k of ['key_manager', 'key_policy', 'section', 'rule', 'group', 'ip_set', 'host', 'workload'] as const) counts[k] = await tx.count(k);
      counts.revision = await tx.countRevisions();
      const auto = await tx.getMeta('last_auto_publish');
      const pendingSince = (await tx.getMeta(AUTO_PENDING)) || null;
      return {
        latest_revision: last?.number ?? null,
        published_at: last?.published_at ?? null,
        draft_differs: differs,
        auto_publish_inventory: this.settings.autoPublishInventory,
        last_auto_publish: auto ? (JSON.parse(auto) as AutoPublishRecord) : null,
        auto_publish_min_interval_seconds: this.autoIntervalMs / 1000,
        auto_publish_pending: pendingSince === null ? null : { since: pendingSince, due_at: this.autoDueAt === null ? null : new Date(this.autoDueAt).toISOString() },
        counts,
        feed_latest_seq: await tx.latestFeedSeq(),
        hosts_reporting_stats: new Set((await tx.listStats()).map((s) => s.host_id)).size,
      };
    });
  }
}

export function summary(rev: Revision) {
  return { revision: rev.revision, section_count: rev.sections.length, rule_count: rev.sections.reduce((n, s) => n + s.rules.length, 0), workload_count: rev.workloads.length };
}

/** Flow protocol names (the model's) as IP protocol numbers. */
export const PROTOCOL_NUMBERS: Record<string, number> = { TCP: 6, UDP: 17, ICMPv4: 1, ICMPv6: 58 };

/** One text per address: IPv4 dotted quad (also for IPv4-mapped IPv6), IPv6 as a 128-bit hex number; null if not an address. */
export function canonicalAddress(a: string): string | null {
  const p = parseAddress(a);
  if (!p) return null;
  if (p.family === 6 && p.value >> 32n === 0xffffn) return `4:${(p.value & 0xffffffffn).toString(16)}`;
  return `${p.family}:${p.value.toString(16)}`;
}

export function ipFamily(a: string): 4 | 6 | 0 {
  return net.isIP(a) as 4 | 6 | 0;
}
