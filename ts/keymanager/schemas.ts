/**
 * Request and response schemas of the key manager API (TypeBox: one
 * definition gives validation, response serialisation and TS types).
 * Objects reject unknown fields; responses are serialised through their
 * schema, so a field that is not declared here (key bytes in a metadata
 * response, say) can never reach a client by accident.
 */
import { Static, TSchema, Type } from '@sinclair/typebox';
import { UUID_PATTERN, GRANT_MAX_CHARS, GRANT_MAX_KEY_IDS } from '../common/grant';
import { ALGORITHMS } from './store';
import { MAX_RELEASE_COUNT, POLICY_ID_PATTERN } from './service';

/** Human descriptions of patterns and formats, for precise 400 messages. */
export const PATTERN_TEXT: Record<string, string> = {
  [UUID_PATTERN]: 'a UUID (8-4-4-4-12 hex digits)',
  [POLICY_ID_PATTERN]: '1..128 characters of A-Z a-z 0-9 . _ : -',
  '^[0-9]{1,15}$': 'a non-negative integer',
  '^[0-9]{1,4}$': 'a non-negative integer',
};

function StringEnum<T extends readonly string[]>(values: T) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values] });
}

export const Uuid = Type.String({ pattern: UUID_PATTERN });
export const PolicyId = Type.String({ pattern: POLICY_ID_PATTERN });
export const AlgorithmSchema = StringEnum(ALGORITHMS);
export const KeyStateSchema = StringEnum(['active', 'retired', 'revoked', 'expired'] as const);
const DateTime = Type.String({ format: 'date-time' });
const NullableDateTime = Type.Union([DateTime, Type.Null()]);

export const CreateKeyBody = Type.Object(
  {
    policyId: PolicyId,
    algorithm: AlgorithmSchema,
    notBefore: Type.Optional(DateTime),
    notAfter: Type.Optional(DateTime),
  },
  { additionalProperties: false },
);
export type CreateKeyBody = Static<typeof CreateKeyBody>;

export const RotateBody = Type.Object(
  {
    algorithm: Type.Optional(AlgorithmSchema),
    notBefore: Type.Optional(DateTime),
    notAfter: Type.Optional(DateTime),
  },
  { additionalProperties: false },
);
export type RotateBody = Static<typeof RotateBody>;

export const RevokeBody = Type.Object({ reason: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })) }, { additionalProperties: false });
export type RevokeBody = Static<typeof RevokeBody>;

export const ReleaseBody = Type.Object(
  {
    grant: Type.Optional(Type.String({ maxLength: GRANT_MAX_CHARS })),
    keyIds: Type.Optional(Type.Array(Uuid, { minItems: 1, maxItems: GRANT_MAX_KEY_IDS, uniqueItems: true })),
    count: Type.Integer({ minimum: 1, maximum: MAX_RELEASE_COUNT }),
  },
  { additionalProperties: false },
);
export type ReleaseBody = Static<typeof ReleaseBody>;

export const KeyIdParams = Type.Object({ keyId: Uuid }, { additionalProperties: false });
export type KeyIdParams = Static<typeof KeyIdParams>;
export const PolicyParams = Type.Object({ policyId: PolicyId }, { additionalProperties: false });
export type PolicyParams = Static<typeof PolicyParams>;

// Query strings are strings (no type coercion anywhere: a wrong type in a body is a 400).
export const ListKeysQuery = Type.Object(
  {
    policyId: Type.Optional(PolicyId),
    after: Type.Optional(Uuid),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
  },
  { additionalProperties: false },
);
export type ListKeysQuery = Static<typeof ListKeysQuery>;

export const AuditQuery = Type.Object(
  {
    since: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
  },
  { additionalProperties: false },
);
export type AuditQuery = Static<typeof AuditQuery>;

export const KeyMetadataSchema = Type.Object({
  keyId: Type.String(),
  policyId: Type.String(),
  algorithm: AlgorithmSchema,
  state: KeyStateSchema,
  senderIdBits: Type.Integer(),
  notBefore: NullableDateTime,
  notAfter: NullableDateTime,
  createdAt: DateTime,
  createdBy: Type.String(),
  retiredAt: NullableDateTime,
  revokedAt: NullableDateTime,
  revokeReason: Type.Union([Type.String(), Type.Null()]),
});

export const KeyListSchema = Type.Object({ keys: Type.Array(KeyMetadataSchema) });
export const RotateResponse = Type.Object({ key: KeyMetadataSchema, retired: Type.Array(Type.String()) });

export const ReleasedKeySchema = Type.Object({
  keyId: Type.String(),
  policyId: Type.String(),
  algorithm: AlgorithmSchema,
  key: Type.String({ description: 'base64' }),
  salt: Type.String({ description: 'base64, 4 bytes (RFC 4106 §8.1)' }),
  senderIds: Type.Array(Type.Integer()),
  senderIdBits: Type.Integer(),
  state: KeyStateSchema,
  notBefore: NullableDateTime,
  notAfter: NullableDateTime,
});
export const ReleaseResponse = Type.Object({ keys: Type.Array(ReleasedKeySchema) });

export const AuditEntrySchema = Type.Object({
  id: Type.Integer(),
  at: DateTime,
  actor: Type.String(),
  action: Type.String(),
  outcome: Type.String(),
  policyId: Type.Union([Type.String(), Type.Null()]),
  keyIds: Type.Array(Type.String()),
  detail: Type.Record(Type.String(), Type.Unknown()),
  prevHash: Type.String(),
  hash: Type.String(),
});
export const AuditResponse = Type.Object({ entries: Type.Array(AuditEntrySchema), next: Type.Integer() });

export const ErrorSchema = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String(),
  error: Type.String(),
  message: Type.String(),
});

export const HealthResponse = Type.Object({ status: Type.Literal('ok'), instanceId: Type.String(), store: Type.String() });

export function errorResponses(...codes: number[]): Record<number, TSchema> {
  return Object.fromEntries(codes.map((c) => [c, ErrorSchema]));
}
