/**
 * Request and response schemas of the manager API (TypeBox): one definition
 * gives request validation, response serialisation, the TS types and the
 * OpenAPI document (served at /openapi.json, Swagger UI at /docs). Field
 * names follow NSX-T's network-encryption API (DESIGN §2). Request objects
 * reject unknown fields; responses are serialised through their schema.
 */
import { Static, TSchema, Type } from '@sinclair/typebox';
import { NAME_PATTERN } from '../common/identity';

/** Object ids: what NSX uses (UUIDs) and readable names alike. */
export const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$';
const PORT_RANGE_PATTERN = '^[0-9]{1,5}(-[0-9]{1,5})?$';
const MAC_PATTERN = '^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$';
const IFNAME_PATTERN = '^[A-Za-z0-9_.:@-]{1,15}$';
const UINT_PATTERN = '^[0-9]{1,15}$';

/** Human descriptions of patterns, for precise 400 messages. */
export const PATTERN_TEXT: Record<string, string> = {
  [ID_PATTERN]: 'an id: 1..128 characters of A-Z a-z 0-9 . _ : - (starting with a letter or digit)',
  [PORT_RANGE_PATTERN]: 'a port "N" or a range "LO-HI" (0-65535)',
  [MAC_PATTERN]: 'a MAC address like 02:00:00:00:00:01',
  [IFNAME_PATTERN]: 'an interface name of 1..15 characters (A-Z a-z 0-9 _ . : @ -)',
  [UINT_PATTERN]: 'a non-negative integer',
  [NAME_PATTERN]: 'a name of 1..128 characters of A-Z a-z 0-9 . _ - (starting with a letter or digit)',
};

export function StringEnum<T extends readonly string[]>(values: T, opts: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...opts });
}

const Id = Type.String({ pattern: ID_PATTERN });
const DisplayName = Type.String({ minLength: 1, maxLength: 255 });
const Description = Type.String({ maxLength: 1024 });
const MAX_LIST = 1000;

export const TARGET_TYPES = ['NSGroup', 'IPSet', 'Workload', 'IPAddress'] as const;
export const ResourceReference = Type.Object(
  {
    target_type: StringEnum(TARGET_TYPES),
    target_id: Type.String({ minLength: 1, maxLength: 128 }),
    target_display_name: Type.Optional(Type.String({ maxLength: 255 })),
  },
  { additionalProperties: false },
);
const RefList = Type.Array(ResourceReference, { maxItems: MAX_LIST, default: [] });

export const TagSchema = Type.Object(
  { scope: Type.String({ maxLength: 128 }), tag: Type.String({ maxLength: 256 }) },
  { additionalProperties: false },
);
const Tags = Type.Array(TagSchema, { maxItems: 64, default: [] });

export const VnicSchema = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 128 }),
    mac: Type.String({ pattern: MAC_PATTERN }),
    ipv4: Type.Array(Type.String({ format: 'ipv4' }), { maxItems: 64, default: [] }),
    ipv6: Type.Array(Type.String({ format: 'ipv6' }), { maxItems: 64, default: [] }),
    workload_if: Type.String({ pattern: IFNAME_PATTERN }),
    network_if: Type.String({ pattern: IFNAME_PATTERN }),
    netns: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  },
  { additionalProperties: false },
);

export const ServiceSchema = Type.Object(
  {
    protocol: Type.Union([StringEnum(['TCP', 'UDP', 'ICMPv4', 'ICMPv6'] as const), Type.Integer({ minimum: 0, maximum: 255 })]),
    destination_ports: Type.Array(Type.String({ pattern: PORT_RANGE_PATTERN }), { maxItems: 64, default: [] }),
  },
  { additionalProperties: false },
);

/** System fields every stored object carries in responses (NSX names). */
const SystemFields = {
  id: Type.String(),
  resource_type: Type.String(),
  _revision: Type.Integer(),
  _create_time: Type.String(),
  _create_user: Type.String(),
  _last_modified_time: Type.String(),
  _last_modified_user: Type.String(),
};
/** Updates carry `_revision`, and may repeat the id (it must then equal the path's). */
const UpdateFields = {
  id: Type.Optional(Id),
  _revision: Type.Integer({ minimum: 0 }),
};

function resource<P extends Record<string, TSchema>>(name: string, props: P) {
  const create = Type.Object({ id: Type.Optional(Id), ...props }, { additionalProperties: false });
  const update = Type.Object({ ...UpdateFields, ...props }, { additionalProperties: false });
  const response = Type.Object({ ...props, ...SystemFields }, { title: name });
  const list = Type.Object({ results: Type.Array(response), result_count: Type.Integer() }, { title: `${name}ListResult` });
  return { create, update, response, list };
}

// ------------------------------------------------------------- key managers

export const KeyManagerRes = resource('DneKeyManager', {
  display_name: DisplayName,
  description: Type.Optional(Description),
  /** Base URL of the key manager (`dne keymanager`), e.g. https://km1.example:8443 */
  url: Type.String({ pattern: '^https://[^\\s/?#]+(/[^\\s?#]*)?$', maxLength: 512 }),
});
PATTERN_TEXT['^https://[^\\s/?#]+(/[^\\s?#]*)?$'] = 'an https:// URL';

// ------------------------------------------------------------- key policies

export const KeyPolicyRes = resource('DneKeyPolicy', {
  display_name: DisplayName,
  description: Type.Optional(Description),
  encrypt_type: StringEnum(['ENCRYPTION_AND_INTEGRITY', 'INTEGRITY_ONLY'] as const, { default: 'ENCRYPTION_AND_INTEGRITY' }),
  encrypt_algorithm: StringEnum(['AES_GCM_128', 'AES_GCM_256'] as const, { default: 'AES_GCM_128' }),
  /** Seconds between rotations; 0: manual only. */
  rekey_frequency: Type.Integer({ minimum: 0, maximum: 315360000, default: 86400 }),
  /** Key lifetime in seconds (notAfter - notBefore). */
  lifetime: Type.Integer({ minimum: 60, maximum: 315360000, default: 172800 }),
  type: StringEnum(['REGULAR', 'BUM_TRAFFIC'] as const, { default: 'REGULAR' }),
  is_default: Type.Boolean({ default: false }),
  /** Anti-replay window in packets (DESIGN §3: large, multiple of 64). */
  replay_window: Type.Integer({ minimum: 64, maximum: 65536, multipleOf: 64, default: 4096 }),
  key_manager_id: Type.Optional(Id),
});

// ------------------------------------------------------------- inventory

export const HostRes = resource('DneHost', { display_name: DisplayName });
/** Agents report hosts; the id is the host certificate's name. */
export const HostCreate = Type.Object({ id: Type.String({ pattern: NAME_PATTERN }), display_name: DisplayName }, { additionalProperties: false });

export const WorkloadRes = resource('DneWorkload', {
  display_name: DisplayName,
  host_id: Type.String({ pattern: NAME_PATTERN }),
  vnics: Type.Array(VnicSchema, { maxItems: 64, default: [] }),
  /** Tags the administrator set: these make group members. The agent's are in reported_tags (membership only for trustedReportedTagScopes). */
  tags: Tags,
});
export const WorkloadResponse = Type.Object({ ...WorkloadRes.response.properties, reported_tags: Type.Array(TagSchema) }, { title: 'DneWorkload' });
export const WorkloadList = Type.Object({ results: Type.Array(WorkloadResponse), result_count: Type.Integer() }, { title: 'DneWorkloadListResult' });

export const GroupRes = resource('DneGroup', {
  display_name: DisplayName,
  description: Type.Optional(Description),
  /** Member if any expression matches one of the workload's tags (every given field). */
  expressions: Type.Array(
    Type.Object({ scope: Type.Optional(Type.String({ maxLength: 128 })), tag: Type.Optional(Type.String({ maxLength: 256 })) }, { additionalProperties: false }),
    { maxItems: 256, default: [] },
  ),
  workload_ids: Type.Array(Id, { maxItems: 10000, default: [] }),
  ip_set_ids: Type.Array(Id, { maxItems: 256, default: [] }),
});

export const IpSetRes = resource('DneIPSet', {
  display_name: DisplayName,
  description: Type.Optional(Description),
  ip_addresses: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 4000, default: [] }),
});

// ------------------------------------------------------------- sections and rules

const RuleProps = {
  display_name: DisplayName,
  description: Type.Optional(Description),
  sources: RefList,
  destinations: RefList,
  services: Type.Array(ServiceSchema, { maxItems: 128, default: [] }),
  ip_protocol: StringEnum(['IPV4', 'IPV6', 'IPV4_IPV6'] as const, { default: 'IPV4_IPV6' }),
  applied_tos: RefList,
  key_policy_identifier: Type.Optional(Id),
  action: StringEnum(['ENCRYPT', 'INTEGRITY_ONLY', 'ALLOW_IN_CLEAR'] as const),
  logged: Type.Boolean({ default: false }),
  rule_tag: Type.Optional(Type.String({ maxLength: 32 })),
  disabled: Type.Boolean({ default: false }),
  notes: Type.Optional(Type.String({ maxLength: 2048 })),
};
export const RuleRes = resource('DneRule', RuleProps);
export const RuleResponse = Type.Object({ ...RuleRes.response.properties, section_id: Type.String() }, { title: 'DneRule' });
export const RuleList = Type.Object({ results: Type.Array(RuleResponse), result_count: Type.Integer() }, { title: 'DneRuleListResult' });

const SectionProps = {
  display_name: DisplayName,
  description: Type.Optional(Description),
  disabled: Type.Boolean({ default: false }),
  /** Overrides the rules' key policy when set. */
  key_policy_identifier: Type.Optional(Id),
  /** Overrides the rules' applied_tos when non-empty. */
  applied_tos: RefList,
};
export const SectionRes = resource('DneSection', SectionProps);
export const SectionResponse = Type.Object({ ...SectionRes.response.properties, rule_count: Type.Integer() }, { title: 'DneSection' });
export const SectionList = Type.Object({ results: Type.Array(SectionResponse), result_count: Type.Integer() }, { title: 'DneSectionListResult' });
/** `POST /sections?action=create_with_rules` */
export const SectionWithRulesCreate = Type.Object(
  { id: Type.Optional(Id), ...SectionProps, rules: Type.Array(RuleRes.create, { maxItems: 1000, default: [] }) },
  { additionalProperties: false },
);
export const SectionWithRulesResponse = Type.Object({ ...SectionResponse.properties, rules: Type.Array(RuleResponse) }, { title: 'DneSectionWithRules' });

export const OPERATIONS = ['insert_top', 'insert_bottom', 'insert_after', 'insert_before'] as const;
export const OrderQuery = Type.Object(
  {
    operation: Type.Optional(StringEnum(OPERATIONS)),
    /** The sibling that insert_after / insert_before refer to. */
    id: Type.Optional(Id),
    action: Type.Optional(StringEnum(['create_with_rules', 'revise'] as const)),
  },
  { additionalProperties: false },
);

// ------------------------------------------------------------- config, status

export const ConfigBody = Type.Object(
  {
    /** Seconds an old key stays receive-only after a rotation (DESIGN §5). */
    rekey_margin: Type.Integer({ minimum: 0, maximum: 86400 * 30, default: 3600 }),
    default_action: StringEnum(['ALLOW_IN_CLEAR', 'DROP'] as const, { default: 'ALLOW_IN_CLEAR' }),
    _revision: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);
export const ConfigResponse = Type.Object(
  { ...SystemFields, rekey_margin: Type.Integer(), default_action: Type.String() },
  { title: 'DneConfig' },
);

export const Problem = Type.Object(
  { object_type: Type.String(), object_id: Type.String(), field: Type.String(), message: Type.String() },
  { title: 'DnePublishProblem' },
);
export type Problem = Static<typeof Problem>;

export const StatusResponse = Type.Object(
  {
    latest_revision: Type.Union([Type.Integer(), Type.Null()]),
    published_at: Type.Union([Type.String(), Type.Null()]),
    draft_differs: Type.Boolean({ description: 'the draft policy differs from the latest published revision' }),
    auto_publish_inventory: Type.Boolean(),
    last_auto_publish: Type.Union([
      Type.Object({ at: Type.String(), outcome: StringEnum(['published', 'refused'] as const), revision: Type.Union([Type.Integer(), Type.Null()]), problems: Type.Array(Problem) }),
      Type.Null(),
    ]),
    auto_publish_min_interval_seconds: Type.Number(),
    /** An inventory change waiting for its auto-publish (coalesced: at most one per auto_publish_min_interval_seconds), or null. */
    auto_publish_pending: Type.Union([Type.Object({ since: Type.String(), due_at: Type.Union([Type.String(), Type.Null()]) }), Type.Null()]),
    counts: Type.Record(Type.String(), Type.Integer()),
    feed_latest_seq: Type.Integer(),
    hosts_reporting_stats: Type.Integer(),
  },
  { title: 'DneStatus' },
);

// ------------------------------------------------------------- revisions, publish

export const PublishBody = Type.Object({ description: Type.Optional(Description) }, { additionalProperties: false });
export const RevisionSummary = Type.Object(
  {
    revision: Type.Integer(),
    published_at: Type.String(),
    published_by: Type.String(),
    origin: StringEnum(['publish', 'rollback', 'auto'] as const),
    rolled_back_to: Type.Union([Type.Integer(), Type.Null()]),
    section_count: Type.Optional(Type.Integer()),
    rule_count: Type.Optional(Type.Integer()),
  },
  { title: 'DneRevisionSummary' },
);
export const RevisionList = Type.Object({ results: Type.Array(RevisionSummary), result_count: Type.Integer() }, { title: 'DneRevisionListResult' });
export const PublishResponse = Type.Object({ ...RevisionSummary.properties, feed_seq: Type.Integer() }, { title: 'DnePublishResult' });
export const RevisionQuery = Type.Object(
  { limit: Type.Optional(Type.String({ pattern: UINT_PATTERN })), before: Type.Optional(Type.String({ pattern: UINT_PATTERN })) },
  { additionalProperties: false },
);
export const RevisionParams = Type.Object({ n: Type.String({ pattern: UINT_PATTERN }) });
export const RevisionActionQuery = Type.Object({ action: StringEnum(['rollback'] as const) }, { additionalProperties: false });
export const DiffQuery = Type.Object({ to: Type.String({ pattern: '^([0-9]{1,15}|draft)$' }) }, { additionalProperties: false });
PATTERN_TEXT['^([0-9]{1,15}|draft)$'] = 'a revision number or "draft"';
const DiffEntry = Type.Object({ added: Type.Array(Type.String()), removed: Type.Array(Type.String()), changed: Type.Array(Type.String()) });
export const DiffResponse = Type.Object(
  {
    from: Type.Integer(),
    to: Type.Union([Type.Integer(), Type.Literal('draft')]),
    config_changed: Type.Boolean(),
    section_order_changed: Type.Boolean(),
    hosts: DiffEntry,
    workloads: DiffEntry,
    groups: DiffEntry,
    ip_sets: DiffEntry,
    key_policies: DiffEntry,
    sections: DiffEntry,
    rules: DiffEntry,
  },
  { title: 'DneRevisionDiff' },
);
/** The published revision as the controllers get it: typed loosely here, it is ts/common/policy-model.ts's Revision. */
export const RevisionDocument = Type.Object(
  {
    revision: Type.Integer(),
    published_at: Type.String(),
    config: Type.Object({ rekey_margin: Type.Integer(), default_action: Type.String() }),
    hosts: Type.Array(Type.Any()),
    workloads: Type.Array(Type.Any()),
    groups: Type.Array(Type.Any()),
    ip_sets: Type.Array(Type.Any()),
    key_policies: Type.Array(Type.Any()),
    sections: Type.Array(Type.Any()),
  },
  { title: 'DneRevision' },
);

// ------------------------------------------------------------- explain

export const ExplainBody = Type.Object(
  {
    /** The workload whose port decides (or host_id + port). */
    workload_id: Type.Optional(Id),
    host_id: Type.Optional(Type.String({ pattern: NAME_PATTERN })),
    /** vNIC id or filter port name on host_id. */
    port: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    source_ip: Type.String({ minLength: 2, maxLength: 64 }),
    destination_ip: Type.String({ minLength: 2, maxLength: 64 }),
    protocol: Type.Union([StringEnum(['TCP', 'UDP', 'ICMPv4', 'ICMPv6'] as const), Type.Integer({ minimum: 0, maximum: 255 })]),
    source_port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    destination_port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    /** A revision number, or "draft" (default). */
    revision: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Literal('draft')])),
  },
  { additionalProperties: false },
);
export type ExplainBody = Static<typeof ExplainBody>;
export const ExplainResponse = Type.Object(
  {
    revision: Type.Union([Type.Integer(), Type.Literal('draft')]),
    workload_id: Type.Union([Type.String(), Type.Null()]),
    action: StringEnum(['ENCRYPT', 'INTEGRITY_ONLY', 'ALLOW_IN_CLEAR', 'DROP'] as const),
    matched: Type.Boolean({ description: 'false: no rule matched and the default action applied' }),
    section_id: Type.Union([Type.String(), Type.Null()]),
    section_display_name: Type.Union([Type.String(), Type.Null()]),
    rule_id: Type.Union([Type.String(), Type.Null()]),
    rule_display_name: Type.Union([Type.String(), Type.Null()]),
    key_policy_id: Type.Union([Type.String(), Type.Null()]),
    key_policy_display_name: Type.Union([Type.String(), Type.Null()]),
    /** The first rule matching the flow regardless of applied-to, when it is not the one enforced at this workload. */
    first_match_elsewhere: Type.Union([Type.Object({ section_id: Type.String(), rule_id: Type.String() }), Type.Null()]),
    explanation: Type.String(),
  },
  { title: 'DneExplainResult' },
);

// ------------------------------------------------------------- stats

const KpCounters = {
  packets_encrypted: Type.Number(),
  bytes_encrypted: Type.Number(),
  packets_decrypted: Type.Number(),
  bytes_decrypted: Type.Number(),
  packets_dropped: Type.Number(),
  dropped_by_reason: Type.Record(Type.String(), Type.Number()),
};
export const KeyPolicyStats = Type.Object(
  {
    key_policy_id: Type.String(),
    ...KpCounters,
    per_host: Type.Array(Type.Object({ host_id: Type.String(), last_report: Type.String(), ...KpCounters })),
  },
  { title: 'DneKeyPolicyStats' },
);
const RuleCounters = { packets_in: Type.Number(), bytes_in: Type.Number(), packets_out: Type.Number(), bytes_out: Type.Number() };
export const RuleStats = Type.Object(
  {
    rule_id: Type.String(),
    section_id: Type.String(),
    ...RuleCounters,
    per_host: Type.Array(Type.Object({ host_id: Type.String(), last_report: Type.String(), ...RuleCounters })),
  },
  { title: 'DneRuleStats' },
);
export const SectionStats = Type.Object(
  { section_id: Type.String(), ...RuleCounters, rules: Type.Array(RuleStats) },
  { title: 'DneSectionStats' },
);

// ------------------------------------------------------------- key policy actions

export const KeyPolicyActionQuery = Type.Object({ action: StringEnum(['rotate', 'revoke'] as const) }, { additionalProperties: false });
export const KeyPolicyActionBody = Type.Object({ reason: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })) }, { additionalProperties: false });
export const KeyPolicyActionResponse = Type.Object(
  { key_policy_id: Type.String(), action: StringEnum(['rotate', 'revoke'] as const), feed_seq: Type.Integer(), status: Type.Literal('accepted') },
  { title: 'DneKeyPolicyActionResult' },
);

// ------------------------------------------------------------- agent and controller routes

export const InventoryBody = Type.Object(
  {
    display_name: DisplayName,
    workloads: Type.Array(
      Type.Object(
        { id: Id, display_name: DisplayName, vnics: Type.Array(VnicSchema, { maxItems: 64 }), tags: Type.Array(TagSchema, { maxItems: 64 }) },
        { additionalProperties: false },
      ),
      { maxItems: 4096 },
    ),
  },
  { additionalProperties: false },
);
export const InventoryResponse = Type.Object(
  { id: Type.String(), display_name: Type.String(), _revision: Type.Integer(), workload_ids: Type.Array(Type.String()), auto_published_revision: Type.Union([Type.Integer(), Type.Null()]) },
  { title: 'DneHostInventory' },
);

/** A counter: an integer JSON and JavaScript both hold exactly (2^53 - 1); 1e308 would sum to Infinity and serialise as null. */
const Counter = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
/** Drop reasons (ts/native/codes.ts names); bounded so one report cannot carry an unbounded map. */
const ReasonCounters = Type.Record(Type.String({ pattern: '^[a-z0-9_]{1,64}$' }), Counter, { maxProperties: 64, additionalProperties: false });
PATTERN_TEXT['^[a-z0-9_]{1,64}$'] = 'a drop reason name: 1..64 of a-z 0-9 _';
export const StatsBody = Type.Object(
  {
    boot_id: Type.String({ minLength: 1, maxLength: 128 }),
    at: Type.String({ format: 'date-time' }),
    config_version: Type.Integer({ minimum: 0 }),
    revision: Type.Integer({ minimum: 0 }),
    rules: Type.Array(
      Type.Object({ rule_id: Type.String({ minLength: 1, maxLength: 128 }), packets_in: Counter, bytes_in: Counter, packets_out: Counter, bytes_out: Counter }, { additionalProperties: false }),
      { maxItems: 20000 },
    ),
    key_policies: Type.Array(
      Type.Object(
        {
          key_policy_id: Type.String({ minLength: 1, maxLength: 128 }),
          packets_encrypted: Counter,
          bytes_encrypted: Counter,
          packets_decrypted: Counter,
          bytes_decrypted: Counter,
          packets_dropped: Counter,
          dropped_by_reason: ReasonCounters,
        },
        { additionalProperties: false },
      ),
      { maxItems: 4096 },
    ),
    drops: ReasonCounters,
  },
  { additionalProperties: false },
);

export const HostIdParams = Type.Object({ hostId: Type.String({ pattern: NAME_PATTERN }) });
export const IdParams = Type.Object({ id: Type.String({ pattern: ID_PATTERN }) });
export const SectionRuleParams = Type.Object({ sid: Type.String({ pattern: ID_PATTERN }), rid: Type.String({ pattern: ID_PATTERN }) });
export const SectionParams = Type.Object({ sid: Type.String({ pattern: ID_PATTERN }) });

export const FeedQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ pattern: UINT_PATTERN })),
    wait: Type.Optional(Type.String({ pattern: UINT_PATTERN })),
    limit: Type.Optional(Type.String({ pattern: UINT_PATTERN })),
  },
  { additionalProperties: false },
);
export const FeedResponse = Type.Object(
  {
    events: Type.Array(
      Type.Object({
        seq: Type.Integer(),
        at: Type.String(),
        type: StringEnum(['revision', 'rotate', 'revoke'] as const),
        revision: Type.Optional(RevisionDocument),
        key_policy_id: Type.Optional(Type.String()),
        requested_by: Type.Optional(Type.String()),
        reason: Type.Optional(Type.String()),
      }),
    ),
    latest_seq: Type.Integer(),
  },
  { title: 'DneControllerFeed' },
);

export const AuditQuery = Type.Object(
  { since: Type.Optional(Type.String({ pattern: UINT_PATTERN })), limit: Type.Optional(Type.String({ pattern: UINT_PATTERN })) },
  { additionalProperties: false },
);
export const AuditResponse = Type.Object(
  {
    results: Type.Array(
      Type.Object({
        id: Type.Integer(),
        at: Type.String(),
        actor: Type.String(),
        action: Type.String(),
        object_type: Type.String(),
        object_id: Type.String(),
        before: Type.Any(),
        after: Type.Any(),
        detail: Type.Record(Type.String(), Type.Any()),
      }),
    ),
    next: Type.Integer(),
  },
  { title: 'DneAuditLog' },
);

export const ErrorSchema = Type.Object(
  {
    statusCode: Type.Integer(),
    code: Type.String(),
    error: Type.String(),
    message: Type.String(),
    problems: Type.Optional(Type.Array(Problem)),
  },
  { title: 'DneError' },
);

export function errorResponses(...codes: number[]): Record<number, typeof ErrorSchema> {
  const out: Record<number, typeof ErrorSchema> = {};
  for (const c of codes) out[c] = ErrorSchema;
  return out;
}
