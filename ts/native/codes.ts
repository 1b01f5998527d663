/**
 * Status codes and drop reasons of the packet path, in the order of the
 * native X-macro table (native/core/common/status.h). The addon reports its
 * own list at load time and loader.ts refuses to run if the two disagree.
 */
export const STATUS_NAMES = [
  'ok',
  'malformed',
  'unsupported',
  'unknown_spi',
  'icv_failure',
  'replay',
  'too_old',
  'bad_padding',
  'counter_exhausted',
  'too_many_senders',
  'no_space',
  'bad_config',
  'no_sa',
  'policy',
  'mtu',
  'ring_full',
  'fragment',
  'rx_overflow',
] as const;

export type StatusName = (typeof STATUS_NAMES)[number];

export function statusName(code: number): StatusName {
  const name = STATUS_NAMES[code];
  if (name === undefined) throw new RangeError(`unknown native status code ${code}`);
  return name;
}

export function statusCode(name: StatusName): number {
  return STATUS_NAMES.indexOf(name);
}
