/**
 * Shared by the agent suites: a real per-host translation (the controller's
 * translate()) of a two-host revision, in the rollover phases of DESIGN §5,
 * and an agent wired to the fakes.
 */
import type { HostConfigResponse } from '../../ts/common/contracts';
import { KeyState, KeyStateName, translate, HostConfig } from '../../ts/controller/translate';
import { Agent } from '../../ts/agent/agent';
import { AgentConfig, parseAgentConfig } from '../../ts/agent/config';
import { SecurityLog } from '../../ts/agent/syslog';
import { FakeDataplane, FakeKeySource, memoryLogger } from './fakes';
import { ref, revision, rule, section, workload } from '../controller/model-builders';

export const K1 = '11111111-1111-4111-8111-111111111111';
export const K2 = '22222222-2222-4222-8222-222222222222';
export const K3 = '33333333-3333-4333-8333-333333333333';
export const SPI = { [K1]: 0x1100, [K2]: 0x2200, [K3]: 0x3300 } as Record<string, number>;

export const REV = revision({
  workloads: [workload('vm1', 'h1', ['10.0.0.1'], { ipv6: ['fd00::1'] }), workload('vm2', 'h2', ['10.0.0.2'], { ipv6: ['fd00::2'] })],
  sections: [
    section('s1', [
      rule('web', { sources: [ref.workload('vm1')], destinations: [ref.workload('vm2')], services: [{ protocol: 'TCP', destination_ports: ['443'] }], key_policy_identifier: 'kp-enc', action: 'ENCRYPT' }),
      rule('dns', { sources: [ref.workload('vm1')], destinations: [ref.workload('vm2')], services: [{ protocol: 'UDP', destination_ports: ['53'] }], action: 'ALLOW_IN_CLEAR' }),
    ]),
  ],
});

export function keyStates(keys: Array<[string, KeyStateName, string?]>): KeyState[] {
  return [
    {
      keyPolicyId: 'kp-enc',
      keys: keys.map(([keyId, state, notAfter]) => ({ keyId, spiGcm: SPI[keyId]!, spiGmac: SPI[keyId]! + 1, state, notBefore: '2026-01-01T00:00:00Z', notAfter: notAfter ?? '2099-01-01T00:00:00Z' })),
    },
  ];
}

export function hostConfig(keys: Array<[string, KeyStateName, string?]>, host = 'h1'): HostConfig {
  return translate(REV, keyStates(keys)).get(host)!;
}

export function response(version: number, config: HostConfig, reset = false): HostConfigResponse {
  return { host_id: config.hostId, versions: [{ version, revision: config.revision, created_at: new Date().toISOString(), config }], key_managers: ['https://km.test:8443'], ...(reset ? { reset } : {}) };
}

export function agentConfig(over: Record<string, unknown> = {}): AgentConfig {
  return parseAgentConfig(
    {
      hostId: 'h1',
      controller: 'https://controller.test:8445',
      manager: 'https://manager.test:8444',
      tls: { cert: 'host.crt', key: 'host.key', ca: 'ca.crt' },
      syslog: { target: 'off' },
      workloads: [
        {
          id: 'vm1',
          tags: [{ scope: 'app', tag: 'web' }],
          vnics: [{ id: 'vm1-nic0', mac: '02:00:00:00:00:01', ipv4: ['10.0.0.1'], ipv6: ['fd00::1'], workload_if: 'tap-vm1', network_if: 'veth-vm1', network_netns: 'hostnet' }],
        },
      ],
      ...over,
    },
    '/etc/dne',
  );
}

export function makeAgent(o: { workers?: number; keys?: FakeKeySource; dp?: FakeDataplane; now?: () => number; cfg?: AgentConfig } = {}) {
  const workers = o.workers ?? 2;
  const dp = o.dp ?? new FakeDataplane(workers);
  const keys = o.keys ?? new FakeKeySource(workers);
  const { log, lines } = memoryLogger();
  const cfg = o.cfg ?? agentConfig();
  const syslog = new SecurityLog(cfg.syslog);
  const agent = new Agent(cfg, { dataplane: dp, keys, controller: null, manager: null, syslog, log, now: o.now });
  return { agent, dp, keys, syslog, lines };
}
