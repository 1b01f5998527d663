/**
 * The rules the filter integration test and the end-to-end benchmark apply
 * between two workloads: ICMP, ICMPv6, TCP 5201 and UDP 5201-5301, with one
 * action, and the SAs / key policies they use.
 */
import { Action, PortTableSpec, RuleSpec } from '../../ts/native/filter';
import { Workload } from './netns';

export const SPI_GCM = 0x1001;
export const SPI_GMAC = 0x2001;
export const KP_ENC = 1;
export const KP_INT = 2;

export function pairTables(action: Action, self: Workload, peer: Workload, role: 'source' | 'destination'): PortTableSpec {
  const kp = action === 'integrity' ? KP_INT : KP_ENC;
  const txSpi = action === 'encrypt' ? SPI_GCM : action === 'integrity' ? SPI_GMAC : 0;
  const base = { role, local: [self.ipv4, self.ipv6], remote: [peer.ipv4, peer.ipv6], action, keyPolicy: kp, txSpi };
  const rules: RuleSpec[] = [
    { ...base, ruleId: 1, protocol: 1, ipVersion: 4, ports: [] },
    { ...base, ruleId: 2, protocol: 58, ipVersion: 6, ports: [] },
    { ...base, ruleId: 3, protocol: 6, ports: [[5201, 5201]] },
    { ...base, ruleId: 4, protocol: 17, ports: [[5201, 5301]] },
  ];
  return { addresses: [self.ipv4, self.ipv6], defaultAction: 'allow', rules };
}
