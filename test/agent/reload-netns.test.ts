/**
 * SIGHUP reload on the real dataplane (docs/agent.md "Reload"): a file whose
 * port names an interface that does not exist is refused, and the workload
 * stays on the network — the port is reopened with its old interfaces and
 * table, /status still lists it, and traffic keeps flowing. A fixed file is
 * taken afterwards.
 *
 * Two hosts in network namespaces, each agent with a real native Filter.
 * Root only (network namespaces, AF_PACKET); CI runs as root.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import { Agent } from '../../ts/agent/agent';
import { AgentConfig, parseAgentConfig } from '../../ts/agent/config';
import { createFilterDataplane, Dataplane } from '../../ts/agent/dataplane';
import { AgentApi, buildAgentApi } from '../../ts/agent/local-api';
import { createAgentMetrics } from '../../ts/agent/metrics';
import { SecurityLog } from '../../ts/agent/syslog';
import type { Workload as PolicyWorkload } from '../../ts/common/policy-model';
import { translate } from '../../ts/controller/translate';
import { loadAddon } from '../../ts/native/loader';
import { keyPolicy, ref, revision, rule, section } from '../controller/model-builders';
import { nsExec, Topology, waitFor, Workload } from '../integration/netns';
import { FakeKeySource, memoryLogger } from './fakes';
import { K1, response } from './helpers';

jest.setTimeout(120000);

let topo: Topology;
const agents: Array<{ agent: Agent; api: AgentApi; dp: Dataplane; port: number; file: Record<string, unknown> }> = [];

function policyWorkload(w: Workload): PolicyWorkload {
  return {
    id: w.name,
    display_name: w.name,
    host_id: w.host.name,
    tags: [],
    vnics: [{ id: w.name, mac: w.mac, ipv4: [w.ipv4], ipv6: [w.ipv6], workload_if: w.workloadIf, network_if: w.networkIf, netns: w.host.ns }],
  };
}

function agentFile(w: Workload, workloadIf = w.workloadIf): Record<string, unknown> {
  return {
    hostId: w.host.name,
    controller: 'https://127.0.0.1:1',
    manager: 'https://127.0.0.1:1',
    tls: { cert: 'x', key: 'x', ca: 'x' },
    syslog: { target: 'off' },
    workloads: [{ id: w.name, vnics: [{ id: w.name, mac: w.mac, ipv4: [w.ipv4], ipv6: [w.ipv6], workload_if: workloadIf, network_if: w.networkIf, netns: w.host.ns }] }],
  };
}

const cfgOf = (f: Record<string, unknown>): AgentConfig => parseAgentConfig(f, '/tmp');

function status(port: number): Promise<{ ports: Array<{ name: string; workload_if: string; rules: number }> }> {
  return new Promise((resolve, reject) => {
    http
      .get(`http://127.0.0.1:${port}/status`, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve(JSON.parse(b)));
      })
      .on('error', reject);
  });
}

const ping = (from: Workload, to: Workload) => nsExec(from.ns, ['ping', '-n', '-c', '1', '-W', '1', to.ipv4]).status === 0;

beforeAll(async () => {
  topo = new Topology([1, 1]);
  const [w1, w2] = topo.workloads as [Workload, Workload];
  const rev = revision({
    workloads: [policyWorkload(w1), policyWorkload(w2)],
    key_policies: [keyPolicy('kp-enc', { is_default: true })],
    sections: [
      section('s1', [
        rule('udp-5300', { sources: [ref.workload(w1.name)], destinations: [ref.workload(w2.name)], services: [{ protocol: 'UDP', destination_ports: ['5300'] }], key_policy_identifier: 'kp-enc', action: 'ENCRYPT' }),
      ]),
    ],
  });
  const configs = translate(rev, [
    { keyPolicyId: 'kp-enc', keys: [{ keyId: K1, spiGcm: 0x1100, spiGmac: 0x1101, state: 'active', notBefore: '2026-01-01T00:00:00Z', notAfter: '2099-01-01T00:00:00Z' }] },
  ]);
  const keys = new FakeKeySource(1);
  const portCounterNames = (loadAddon() as unknown as { portCounterNames: string[] }).portCounterNames;
  for (const w of [w1, w2]) {
    const file = agentFile(w);
    const cfg = cfgOf(file);
    const dp = createFilterDataplane({ workers: 1, defaultAction: 'allow' });
    const agent = new Agent(cfg, { dataplane: dp, keys, controller: null, manager: null, syslog: new SecurityLog(cfg.syslog), log: memoryLogger().log });
    dp.start();
    await agent.handleResponse(response(1, configs.get(w.host.name)!));
    const api = await buildAgentApi(agent, createAgentMetrics(agent, portCounterNames));
    await api.listen({ host: '127.0.0.1', port: 0 });
    agents.push({ agent, api, dp, port: (api.server.address() as net.AddressInfo).port, file });
  }
  // ICMP has no rule: default allow through both filters once the bridges are up.
  expect(await waitFor(() => ping(w1, w2), 15000, 200)).toBe(true);
});

afterAll(async () => {
  for (const a of agents) {
    await a.api.close();
    a.dp.close();
  }
  topo?.destroy();
});

test('reload naming an interface that does not exist: refused, the port stays in the filter with its table, /status lists it, traffic keeps flowing', async () => {
  const [w1, w2] = topo.workloads as [Workload, Workload];
  const a = agents[0]!;
  const before = await status(a.port);
  expect(before.ports.map((p) => [p.name, p.workload_if])).toEqual([[w1.name, w1.workloadIf]]);

  await expect(a.agent.reloadWorkloads(cfgOf(agentFile(w1, 'w1-nope')))).rejects.toThrow(/w1-nope.*the running configuration is kept/);

  expect(await status(a.port)).toMatchObject({ ports: before.ports });
  expect(a.dp.portMtu(w1.name)).toBeGreaterThan(0);
  expect(ping(w1, w2)).toBe(true);
  // The running configuration is what the agent reports and re-applies.
  expect(a.agent.inventory().workloads[0]!.vnics[0]!.workload_if).toBe(w1.workloadIf);

  // The same file, fixed, is taken (the port is reopened on its real interface).
  await a.agent.reloadWorkloads(cfgOf(agentFile(w1)));
  expect(ping(w1, w2)).toBe(true);
});
