/**
 * What the agent needs from the packet path, as an interface: the real
 * adapter is the native Filter (ts/native/filter.ts), which already has
 * exactly this shape; unit tests use a fake that records operations
 * (test/agent/fakes.ts). Nothing here touches a packet.
 */
import type { StatusName } from '../native/codes';
import { Filter, FilterSaOptions, PortConfig, PortStats, PortTableSpec, RuleStats, SaStats } from '../native/filter';

export interface Dataplane {
  readonly workers: number;
  start(): void;
  close(): void;
  addPort(c: PortConfig): number;
  removePort(name: string): boolean;
  portMtu(name: string): number;
  /** Must zero-fill `key` and `salt` whatever the outcome (Filter.installSa does). */
  installSa(o: FilterSaOptions): void;
  removeSa(spi: number): boolean;
  /**
   * New sender IDs (one per worker) for an installed SA, in place: its key,
   * replay windows and counters stay. Throws, changing nothing, for an SPI
   * not installed or IDs that are the wrong count, too wide, duplicated or
   * already used with the SA.
   */
  replaceSenders(spi: number, senderIds: number[]): void;
  setTables(t: { defaultAction?: 'allow' | 'drop'; ports: Record<string, PortTableSpec> }): bigint;
  portStats(name: string): PortStats | null;
  saStats(spi: number): SaStats | null;
  ruleStats(): Map<number, RuleStats>;
  drops(): Record<StatusName, bigint>;
}

export interface FilterDataplaneOptions {
  workers: number;
  defaultAction: 'allow' | 'drop';
}

/** The real dataplane: the native filter with its worker threads started. */
export function createFilterDataplane(o: FilterDataplaneOptions): Dataplane {
  const f: Dataplane = new Filter({ workers: o.workers, defaultAction: o.defaultAction });
  return f;
}
