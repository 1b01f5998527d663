/**
 * Request and response schemas of the controller API (TypeBox). The config
 * long-poll's 200 body is rendered from cached per-version JSON (every agent
 * that needs a version gets the same bytes) and is described here for
 * OpenAPI; the other responses are serialised through their schemas, so an
 * undeclared field cannot reach a client.
 */
import { Static, TSchema, Type } from '@sinclair/typebox';
import { GRANT_MAX_KEY_IDS, UUID_PATTERN } from '../common/grant';
import { NAME_PATTERN } from '../common/identity';

export const PATTERN_TEXT: Record<string, string> = {
  [UUID_PATTERN]: 'a UUID (8-4-4-4-12 hex digits)',
  [NAME_PATTERN]: '1..128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit',
  '^[0-9]{1,15}$': 'a non-negative integer',
  '^[0-9]{1,2}$': 'an integer from 0 to 60',
};

const DateTime = Type.String({ format: 'date-time' });
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const HostParams = Type.Object({ hostId: Type.String({ pattern: NAME_PATTERN }) }, { additionalProperties: false });
export type HostParams = Static<typeof HostParams>;

// Query strings are strings; no type coercion anywhere.
export const ConfigQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
    wait: Type.Optional(Type.String({ pattern: '^[0-9]{1,2}$' })),
  },
  { additionalProperties: false },
);
export type ConfigQuery = Static<typeof ConfigQuery>;

export const AckBody = Type.Object(
  {
    version: Type.Integer({ minimum: 1 }),
    installed_key_ids: Type.Array(Type.String({ pattern: UUID_PATTERN }), { maxItems: 4 * GRANT_MAX_KEY_IDS }),
  },
  { additionalProperties: false },
);
export type AckBody = Static<typeof AckBody>;

export const HostConfigResponseDoc = Type.Object(
  {
    host_id: Type.String(),
    versions: Type.Array(
      Type.Object({
        version: Type.Integer(),
        revision: Type.Integer(),
        created_at: DateTime,
        config: Type.Object({}, { additionalProperties: true, description: 'a HostConfig (ts/controller/translate.ts)' }),
      }),
    ),
    reset: Type.Optional(Type.Boolean()),
    grant: Type.Optional(Type.String({ description: 'Ed25519 grant for exactly the latest version\'s key IDs' })),
    key_managers: Type.Array(Type.String()),
  },
  { description: 'contracts.ts HostConfigResponse' },
);

export const GrantResponse = Type.Object({
  grant: Nullable(Type.String()),
  key_ids: Type.Array(Type.String()),
  expires_at: Nullable(DateTime),
});

const KeyStatus = Type.Object({
  key_id: Type.String(),
  phase: Type.String(),
  spi_gcm: Type.Integer(),
  spi_gmac: Type.Integer(),
  not_before: DateTime,
  not_after: Nullable(DateTime),
  created_at: DateTime,
  phase_since: DateTime,
  activated_at: Nullable(DateTime),
  activated_by: Nullable(Type.String()),
  remove_at: Nullable(DateTime),
  timed_out_hosts: Type.Array(Type.String()),
});

export const StatusResponse = Type.Object({
  instance_id: Type.String(),
  revision: Nullable(Type.Integer()),
  feed_cursor: Type.Integer(),
  key_managers: Type.Array(Type.String()),
  ack_timeout_seconds: Type.Number(),
  liveness_seconds: Type.Number(),
  counters: Type.Object({
    rollovers: Type.Integer(),
    revocations: Type.Integer(),
    ack_timeouts: Type.Integer(),
    hosts_timed_out: Type.Integer(),
    hosts_down_skipped: Type.Integer(),
  }),
  last_error: Nullable(Type.String()),
  key_policies: Type.Array(
    Type.Object({
      id: Type.String(),
      in_revision: Type.Boolean(),
      in_use: Type.Boolean(),
      keys: Type.Array(KeyStatus),
      barrier: Nullable(
        Type.Object({
          key_id: Type.String(),
          since: DateTime,
          deadline: DateTime,
          hosts_needing: Type.Integer(),
          hosts_acked: Type.Integer(),
          waiting_for: Type.Array(Type.String()),
          down: Type.Array(Type.String()),
        }),
      ),
    }),
  ),
  hosts: Type.Array(
    Type.Object({
      id: Type.String(),
      version: Type.Integer(),
      revision: Type.Integer(),
      up: Type.Boolean(),
      polling: Type.Boolean(),
      last_seen_at: DateTime,
      ack_version: Nullable(Type.Integer()),
      ack_at: Nullable(DateTime),
    }),
  ),
});

export const HealthResponse = Type.Object({ status: Type.Literal('ok'), instanceId: Type.String(), revision: Nullable(Type.Integer()) });

export const ErrorSchema = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String(),
  error: Type.String(),
  message: Type.String(),
});

export function errorResponses(...codes: number[]): Record<number, TSchema> {
  return Object.fromEntries(codes.map((c) => [c, ErrorSchema]));
}
