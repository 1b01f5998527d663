/**
 * Per-host translation on small hand-written revisions: one behaviour of
 * DESIGN §2 (as pinned down in docs/controller.md) per test.
 */
import type { Revision } from '../../ts/common/policy-model';
import type { RuleSpec } from '../../ts/native/filter';
import { RefFlow, refClassify } from '../../ts/native/reference-matcher';
import {
  fnv1a32,
  HostConfig,
  HostPort,
  KeyState,
  keyPolicyIndexes,
  portName,
  ruleIds,
  stableIds,
  translate,
} from '../../ts/controller/translate';
import { activeKeys, group, ipSet, keyPolicy, ref, revision, rule, section, workload } from './model-builders';

// ------------------------------------------------------------------ helpers

function allPorts(cfgs: Map<string, HostConfig>): HostPort[] {
  return [...cfgs.values()].flatMap((h) => h.ports);
}

function portOf(cfgs: Map<string, HostConfig>, name: string): HostPort {
  const p = allPorts(cfgs).find((x) => x.name === name);
  if (!p) throw new Error(`no port ${name}`);
  return p;
}

function rulesAt(cfgs: Map<string, HostConfig>, name: string): RuleSpec[] {
  return portOf(cfgs, name).table.rules;
}

/** Names of the ports whose table holds `ruleId` in `role`. */
function portsWith(cfgs: Map<string, HostConfig>, ruleId: number, role?: 'source' | 'destination'): string[] {
  return allPorts(cfgs)
    .filter((p) => p.table.rules.some((r) => r.ruleId === ruleId && (role === undefined || r.role === role)))
    .map((p) => p.name)
    .sort();
}

/** What the sending port decides on the way out and the receiving port on the way in. */
function send(cfgs: Map<string, HostConfig>, from: string, to: string, f: RefFlow) {
  return { out: refClassify(portOf(cfgs, from).table, f, 'out'), in: refClassify(portOf(cfgs, to).table, f, 'in') };
}

const tcp = (src: string, dst: string, dport: number, sport = 40000): RefFlow => ({
  family: src.includes(':') ? 6 : 4,
  protocol: 6,
  src,
  dst,
  sport,
  dport,
});

function idOf(rev: Revision, ruleId: string): number {
  return ruleIds(rev).get(ruleId)!;
}

// ----------------------------------------------------------------- groups

describe('groups and references', () => {
  const workloads = [
    workload('a', 'h1', ['10.0.0.1'], { tags: [['app', 'web']] }),
    workload('b', 'h1', ['10.0.0.2'], { tags: [['app', 'db']] }),
    workload('c', 'h2', ['10.0.0.3'], { tags: [['tier', 'web']] }),
    // "app" and "web" on two different tags: not a member of {scope app, tag web}.
    workload('d', 'h2', ['10.0.0.4'], { tags: [['app', 'db'], ['tier', 'web']] }),
    workload('e', 'h3', ['10.0.1.5'], { ipv6: ['fd00:1::5'] }),
    workload('f', 'h3', ['10.0.2.6'], { extraVnics: [{ ipv4: ['10.0.3.6'] }] }),
  ];
  const external = ref.ip('192.168.0.0/16');

  test('tag expressions: scope only, tag only, scope and tag on the same tag', () => {
    const rev = revision({
      workloads,
      groups: [
        group('by-scope', { expressions: [{ scope: 'app' }] }),
        group('by-tag', { expressions: [{ tag: 'web' }] }),
        group('by-both', { expressions: [{ scope: 'app', tag: 'web' }] }),
        group('either', { expressions: [{ scope: 'app', tag: 'db' }, { tag: 'web', scope: 'tier' }] }),
      ],
      sections: [
        section('s', ['by-scope', 'by-tag', 'by-both', 'either'].map((g) => rule(`r-${g}`, { sources: [ref.group(g)], destinations: [external] }))),
      ],
    });
    const cfgs = translate(rev, []);
    expect(portsWith(cfgs, idOf(rev, 'r-by-scope'), 'source')).toEqual(['a-nic0', 'b-nic0', 'd-nic0']);
    expect(portsWith(cfgs, idOf(rev, 'r-by-tag'), 'source')).toEqual(['a-nic0', 'c-nic0', 'd-nic0']);
    expect(portsWith(cfgs, idOf(rev, 'r-by-both'), 'source')).toEqual(['a-nic0']);
    expect(portsWith(cfgs, idOf(rev, 'r-either'), 'source')).toEqual(['b-nic0', 'c-nic0', 'd-nic0']);
    // The external side has no workload: nothing is compiled as destination.
    expect(portsWith(cfgs, idOf(rev, 'r-by-scope'), 'destination')).toEqual([]);
    const r = rulesAt(cfgs, 'a-nic0').find((x) => x.ruleId === idOf(rev, 'r-by-both'))!;
    expect(r).toMatchObject({ role: 'source', local: ['10.0.0.1'], remote: ['192.168.0.0/16'], action: 'encrypt' });
  });

  test('a group\'s prefixes are its members\' vNIC addresses plus its IP sets\' addresses', () => {
    const rev = revision({
      workloads,
      ip_sets: [ipSet('s1', ['10.0.1.0/24', 'fd00:1::/64'])],
      groups: [group('g', { workload_ids: ['a'], ip_set_ids: ['s1'] })],
      sections: [section('s', [rule('r', { sources: [ref.ip('10.0.0.3')], destinations: [ref.group('g')] })])],
    });
    const cfgs = translate(rev, []);
    const at = (p: string) => rulesAt(cfgs, p);
    expect(at('c-nic0')).toEqual([expect.objectContaining({ role: 'source', local: ['10.0.0.3'], remote: ['10.0.0.1', '10.0.1.0/24', 'fd00:1::/64'] })]);
    expect(at('a-nic0')).toEqual([expect.objectContaining({ role: 'destination', local: ['10.0.0.1'], remote: ['10.0.0.3'] })]);
    // e is not a member, but both its addresses lie in the group's IP set: it is a destination by address.
    expect(at('e-nic0')).toEqual([expect.objectContaining({ role: 'destination', local: ['10.0.1.5', 'fd00:1::5'] })]);
    expect(portsWith(cfgs, idOf(rev, 'r'))).toEqual(['a-nic0', 'c-nic0', 'e-nic0']);
  });

  test('IP sets and IP addresses referenced directly cover the workloads whose addresses they contain', () => {
    const rev = revision({
      workloads,
      ip_sets: [ipSet('v6', ['fd00:1::/64'])],
      sections: [
        section('s', [
          rule('r-set', { sources: [ref.ipSet('v6')], destinations: [ref.ip('10.0.0.0/30')] }),
          rule('r-addr', { sources: [ref.ip('10.0.3.6')], destinations: [external] }),
        ]),
      ],
    });
    const cfgs = translate(rev, []);
    // Only e's IPv6 address is in the set: local is that address alone.
    expect(rulesAt(cfgs, 'e-nic0')).toEqual([expect.objectContaining({ role: 'source', local: ['fd00:1::5'], remote: ['10.0.0.0/30'] })]);
    // 10.0.0.0/30 covers a, b, c (10.0.0.1-3), not d (10.0.0.4).
    expect(portsWith(cfgs, idOf(rev, 'r-set'), 'destination')).toEqual(['a-nic0', 'b-nic0', 'c-nic0']);
    // An address picks one vNIC of a two-vNIC workload.
    expect(portsWith(cfgs, idOf(rev, 'r-addr'))).toEqual(['f-nic1']);
  });

  test('explicit workloads: listed in a group and referenced directly (all vNICs, both families)', () => {
    const rev = revision({
      workloads,
      groups: [group('g', { workload_ids: ['f', 'b'] })],
      sections: [section('s', [rule('r', { sources: [ref.group('g')], destinations: [ref.workload('e')] })])],
    });
    const cfgs = translate(rev, []);
    expect(portsWith(cfgs, idOf(rev, 'r'), 'source')).toEqual(['b-nic0', 'f-nic0', 'f-nic1']);
    expect(rulesAt(cfgs, 'f-nic1')).toEqual([expect.objectContaining({ local: ['10.0.3.6'], remote: ['10.0.1.5', 'fd00:1::5'] })]);
    // Member prefixes come in workload order, whatever the order of workload_ids.
    expect(rulesAt(cfgs, 'e-nic0')).toEqual([
      expect.objectContaining({ role: 'destination', local: ['10.0.1.5', 'fd00:1::5'], remote: ['10.0.0.2', '10.0.2.6', '10.0.3.6'] }),
    ]);
  });

  test('any: every port gets the rule, local is all its addresses, remote is empty (any)', () => {
    const rev = revision({ workloads, sections: [section('s', [rule('r', { action: 'INTEGRITY_ONLY' })])] });
    const cfgs = translate(rev, []);
    const id = idOf(rev, 'r');
    const names = allPorts(cfgs).map((p) => p.name).sort();
    expect(portsWith(cfgs, id, 'source')).toEqual(names);
    expect(portsWith(cfgs, id, 'destination')).toEqual(names);
    expect(rulesAt(cfgs, 'e-nic0')).toEqual([
      expect.objectContaining({ role: 'source', local: ['10.0.1.5', 'fd00:1::5'], remote: [] }),
      expect.objectContaining({ role: 'destination', local: ['10.0.1.5', 'fd00:1::5'], remote: [] }),
    ]);
  });

  test('a named side that resolves to no address matches nothing (it must not become "any")', () => {
    const rev = revision({
      workloads,
      groups: [group('empty', { expressions: [{ scope: 'nobody' }] })],
      sections: [
        section('s', [
          rule('r-to-empty', { destinations: [ref.group('empty')] }),
          rule('r-from-empty', { sources: [ref.group('empty')], destinations: [ref.workload('a')] }),
        ]),
      ],
    });
    const cfgs = translate(rev, []);
    expect(allPorts(cfgs).every((p) => p.table.rules.length === 0)).toBe(true);
    expect([...cfgs.values()].every((h) => h.keys.length === 0)).toBe(true);
  });

  test('a rule inside one group puts both roles at each member port, and both ends agree in both directions', () => {
    const rev = revision({
      workloads,
      groups: [group('web', { expressions: [{ tag: 'web' }] })],
      sections: [section('s', [rule('r', { sources: [ref.group('web')], destinations: [ref.group('web')], services: [{ protocol: 'TCP', destination_ports: ['443'] }] })])],
    });
    const cfgs = translate(rev, activeKeys(['kp-enc']));
    expect(rulesAt(cfgs, 'a-nic0').map((r) => r.role)).toEqual(['source', 'destination']);
    const fwd = send(cfgs, 'a-nic0', 'c-nic0', tcp('10.0.0.1', '10.0.0.3', 443));
    const rep = send(cfgs, 'c-nic0', 'a-nic0', tcp('10.0.0.3', '10.0.0.1', 40000, 443));
    for (const v of [fwd.out, fwd.in, rep.out, rep.in]) expect(v).toEqual({ action: 'encrypt', ruleId: idOf(rev, 'r') });
    // Another port: not the service, so the default.
    expect(send(cfgs, 'a-nic0', 'c-nic0', tcp('10.0.0.1', '10.0.0.3', 80)).out).toEqual({ action: 'allow', ruleId: null });
  });
});

// --------------------------------------------------------- sections, rules

describe('sections and rules', () => {
  const workloads = [
    workload('a', 'h1', ['10.0.0.1'], { tags: [['app', 'web']] }),
    workload('b', 'h2', ['10.0.0.2'], { tags: [['app', 'db']] }),
    workload('c', 'h3', ['10.0.0.3'], { tags: [['app', 'db']] }),
  ];
  const groups = [group('web', { expressions: [{ tag: 'web' }] }), group('db', { expressions: [{ tag: 'db' }] })];
  const ab = { sources: [ref.group('web')], destinations: [ref.group('db')] };

  test('disabled sections and disabled rules are skipped; order is sections, then rules', () => {
    const rev = revision({
      workloads,
      groups,
      sections: [
        section('off', [rule('r-off-section', { ...ab, action: 'ALLOW_IN_CLEAR' })], { disabled: true }),
        section('s1', [rule('r-disabled', { ...ab, action: 'ALLOW_IN_CLEAR', disabled: true }), rule('r-integrity', { ...ab, action: 'INTEGRITY_ONLY' })]),
        section('s2', [rule('r-encrypt', { ...ab })]),
      ],
    });
    const cfgs = translate(rev, []);
    expect(rulesAt(cfgs, 'a-nic0').map((r) => r.ruleId)).toEqual([idOf(rev, 'r-integrity'), idOf(rev, 'r-encrypt')]);
    expect(send(cfgs, 'a-nic0', 'b-nic0', tcp('10.0.0.1', '10.0.0.2', 80))).toEqual({
      out: { action: 'integrity', ruleId: idOf(rev, 'r-integrity') },
      in: { action: 'integrity', ruleId: idOf(rev, 'r-integrity') },
    });
  });

  test('a section\'s key policy overrides its rules\' key policies', () => {
    const rev = revision({
      workloads,
      groups,
      key_policies: [...revision({}).key_policies, keyPolicy('kp-rule'), keyPolicy('kp-section')],
      sections: [
        section('plain', [rule('r1', { ...ab, key_policy_identifier: 'kp-rule' })]),
        section('forced', [rule('r2', { ...ab, key_policy_identifier: 'kp-rule' }), rule('r3', { ...ab, action: 'ALLOW_IN_CLEAR' })], {
          key_policy_identifier: 'kp-section',
        }),
      ],
    });
    const cfgs = translate(rev, activeKeys(['kp-rule', 'kp-section']));
    const idx = keyPolicyIndexes(rev);
    const byRule = (id: string) => rulesAt(cfgs, 'a-nic0').find((r) => r.ruleId === idOf(rev, id))!;
    expect(byRule('r1').keyPolicy).toBe(idx.get('kp-rule'));
    expect(byRule('r2').keyPolicy).toBe(idx.get('kp-section'));
    // A clear-text rule needs no key, whatever its section says.
    expect(byRule('r3')).toMatchObject({ action: 'allow', keyPolicy: 0, txSpi: 0 });
  });

  test('a section\'s applied_tos override its rules\'; applied-to names groups or workloads', () => {
    const rev = revision({
      workloads,
      groups,
      sections: [
        section('s1', [rule('r-rule-scope', { ...ab, applied_tos: [ref.workload('b')] })]),
        section('s2', [rule('r-section-scope', { ...ab, applied_tos: [ref.workload('b')] })], { applied_tos: [ref.group('web'), ref.workload('c')] }),
      ],
    });
    const cfgs = translate(rev, []);
    expect(portsWith(cfgs, idOf(rev, 'r-rule-scope'))).toEqual(['b-nic0']);
    expect(portsWith(cfgs, idOf(rev, 'r-section-scope'))).toEqual(['a-nic0', 'c-nic0']);
  });

  test('an applied-to outside the rule\'s sources and destinations compiles nothing there', () => {
    const rev = revision({
      workloads,
      groups,
      sections: [section('s', [rule('r', { sources: [ref.workload('a')], destinations: [ref.workload('b')], applied_tos: [ref.workload('c'), ref.workload('a')] })])],
    });
    expect(portsWith(translate(rev, []), idOf(rev, 'r'))).toEqual(['a-nic0']);
  });

  test('applied-to on one end only: that end enforces, the other decides by its own table', () => {
    // docs/controller.md: the sender encrypts; the receiver has neither the
    // rule nor the key, so it would drop the ESP as no_sa. Explicit
    // applied-tos must name both ends of protected traffic.
    const rev = revision({
      workloads,
      groups,
      sections: [section('s', [rule('r', { ...ab, applied_tos: [ref.group('web')] })])],
    });
    const cfgs = translate(rev, activeKeys(['kp-enc']));
    expect(send(cfgs, 'a-nic0', 'b-nic0', tcp('10.0.0.1', '10.0.0.2', 80))).toEqual({
      out: { action: 'encrypt', ruleId: idOf(rev, 'r') },
      in: { action: 'allow', ruleId: null },
    });
    expect(cfgs.get('h1')!.keys.map((k) => k.keyPolicyId)).toEqual(['kp-enc']);
    expect(cfgs.get('h2')!.keys).toEqual([]);
  });
});

// --------------------------------------------------- services, ip_protocol

describe('services and ip_protocol', () => {
  const workloads = [workload('a', 'h1', ['10.0.0.1'], { ipv6: ['fd00::1'] }), workload('b', 'h2', ['10.0.0.2'], { ipv6: ['fd00::2'] })];
  const compile = (r: Partial<Parameters<typeof rule>[1]>) => {
    const rev = revision({ workloads, sections: [section('s', [rule('r', { sources: [ref.workload('a')], destinations: [ref.workload('b')], ...r })])] });
    return rulesAt(translate(rev, []), 'a-nic0').map((x) => ({ protocol: x.protocol, ipVersion: x.ipVersion, ports: x.ports }));
  };

  test('no services: any protocol and port', () => {
    expect(compile({})).toEqual([{ protocol: null, ipVersion: null, ports: [] }]);
    expect(compile({ ip_protocol: 'IPV6' })).toEqual([{ protocol: null, ipVersion: 6, ports: [] }]);
  });

  test('one entry per distinct protocol; port lists merged, ranges joined', () => {
    expect(
      compile({
        services: [
          { protocol: 'TCP', destination_ports: ['443', '80', '82'] },
          { protocol: 'UDP', destination_ports: ['53'] },
          { protocol: 'TCP', destination_ports: ['1000-2000', '1500-2500', '2501'] },
          { protocol: 6, destination_ports: ['8080'] },
          { protocol: 47, destination_ports: [] },
        ],
      }),
    ).toEqual([
      { protocol: 6, ipVersion: null, ports: [[80, 80], [82, 82], [443, 443], [1000, 2501], [8080, 8080]] },
      { protocol: 17, ipVersion: null, ports: [[53, 53]] },
      { protocol: 47, ipVersion: null, ports: [] },
    ]);
  });

  test('a service without ports makes its protocol any-port', () => {
    expect(compile({ services: [{ protocol: 'TCP', destination_ports: ['80'] }, { protocol: 'TCP', destination_ports: [] }] })).toEqual([
      { protocol: 6, ipVersion: null, ports: [] },
    ]);
  });

  test('ICMPv4/ICMPv6 imply their IP version; ip_protocol narrows the rest; impossible entries are dropped', () => {
    const services = [
      { protocol: 'ICMPv4' as const, destination_ports: [] },
      { protocol: 'ICMPv6' as const, destination_ports: [] },
      { protocol: 'TCP' as const, destination_ports: ['22'] },
    ];
    expect(compile({ services, ip_protocol: 'IPV4_IPV6' })).toEqual([
      { protocol: 1, ipVersion: 4, ports: [] },
      { protocol: 58, ipVersion: 6, ports: [] },
      { protocol: 6, ipVersion: null, ports: [[22, 22]] },
    ]);
    expect(compile({ services, ip_protocol: 'IPV4' })).toEqual([
      { protocol: 1, ipVersion: 4, ports: [] },
      { protocol: 6, ipVersion: 4, ports: [[22, 22]] },
    ]);
    expect(compile({ services, ip_protocol: 'IPV6' })).toEqual([
      { protocol: 58, ipVersion: 6, ports: [] },
      { protocol: 6, ipVersion: 6, ports: [[22, 22]] },
    ]);
    // Nothing possible is left: the rule is compiled nowhere.
    expect(compile({ services: [{ protocol: 'ICMPv4', destination_ports: [] }], ip_protocol: 'IPV6' })).toEqual([]);
    // A bare protocol number carries no version of its own.
    expect(compile({ services: [{ protocol: 1, destination_ports: [] }] })).toEqual([{ protocol: 1, ipVersion: null, ports: [] }]);
  });

  test('the compiled table decides like the rule: forward to the service port, replies from it, other families not', () => {
    const rev = revision({
      workloads,
      sections: [section('s', [rule('r', { sources: [ref.workload('a')], destinations: [ref.workload('b')], ip_protocol: 'IPV4', services: [{ protocol: 'UDP', destination_ports: ['53'] }] })])],
    });
    const cfgs = translate(rev, []);
    const udp = (src: string, dst: string, sport: number, dport: number): RefFlow => ({ family: src.includes(':') ? 6 : 4, protocol: 17, src, dst, sport, dport });
    const id = idOf(rev, 'r');
    expect(send(cfgs, 'a-nic0', 'b-nic0', udp('10.0.0.1', '10.0.0.2', 5000, 53)).in).toEqual({ action: 'encrypt', ruleId: id });
    expect(send(cfgs, 'b-nic0', 'a-nic0', udp('10.0.0.2', '10.0.0.1', 53, 5000)).in).toEqual({ action: 'encrypt', ruleId: id });
    // b -> a to port 53 is not the conversation: b is not a source.
    expect(send(cfgs, 'b-nic0', 'a-nic0', udp('10.0.0.2', '10.0.0.1', 5000, 53)).out).toEqual({ action: 'allow', ruleId: null });
    expect(send(cfgs, 'a-nic0', 'b-nic0', udp('fd00::1', 'fd00::2', 5000, 53)).out).toEqual({ action: 'allow', ruleId: null });
  });

  test('malformed services are refused with the rule and field named', () => {
    expect(() => compile({ services: [{ protocol: 'ICMPv4', destination_ports: ['8'] }] })).toThrow(
      /section "s" rule "r" services\[0\]: protocol 1 has no ports, but destination_ports is set/,
    );
    for (const bad of ['0x50', '80-', '2000-1000', '70000', ' 80']) {
      expect(() => compile({ services: [{ protocol: 'TCP', destination_ports: [bad] }] })).toThrow(/services\[0\]: destination port .* is not "N" or "LO-HI"/);
    }
    expect(() => compile({ services: [{ protocol: 256, destination_ports: [] }] })).toThrow(/protocol 256 is not TCP, UDP, ICMPv4, ICMPv6 or 0-255/);
    expect(() => compile({ services: [{ protocol: 'SCTP' as never, destination_ports: [] }] })).toThrow(/protocol "SCTP"/);
    expect(() => compile({ ip_protocol: 'IPV5' as never })).toThrow(/ip_protocol "IPV5" is not/);
  });
});

// ------------------------------------------------------ key policies, keys

describe('key policies and keys', () => {
  const workloads = [workload('a', 'h1', ['10.0.0.1']), workload('b', 'h2', ['10.0.0.2'])];
  const ab = { sources: [ref.workload('a')], destinations: [ref.workload('b')] };

  test('the default key policy is the REGULAR default of the type the action needs', () => {
    const rev = revision({
      workloads,
      key_policies: [
        keyPolicy('bum-enc', { is_default: true, type: 'BUM_TRAFFIC' }),
        keyPolicy('enc', { is_default: true }),
        keyPolicy('int', { is_default: true, encrypt_type: 'INTEGRITY_ONLY' }),
        keyPolicy('enc-other'),
      ],
      sections: [section('s', [rule('r-enc', ab), rule('r-int', { ...ab, action: 'INTEGRITY_ONLY' }), rule('r-clear', { ...ab, action: 'ALLOW_IN_CLEAR' })])],
    });
    const idx = keyPolicyIndexes(rev);
    const t = rulesAt(translate(rev, []), 'a-nic0');
    expect(t.map((r) => [r.action, r.keyPolicy])).toEqual([
      ['encrypt', idx.get('enc')],
      ['integrity', idx.get('int')],
      ['allow', 0],
    ]);
  });

  test('no default, or two, for an action that needs one is an error naming the rule', () => {
    const none = revision({ workloads, key_policies: [keyPolicy('enc', { is_default: true })], sections: [section('s', [rule('r', { ...ab, action: 'INTEGRITY_ONLY' })])] });
    expect(() => translate(none, [])).toThrow(/section "s" rule "r": INTEGRITY_ONLY names no key policy and there is no default REGULAR INTEGRITY_ONLY key policy/);
    const two = revision({ workloads, key_policies: [keyPolicy('e1', { is_default: true }), keyPolicy('e2', { is_default: true })], sections: [section('s', [rule('r', ab)])] });
    expect(() => translate(two, [])).toThrow(/ENCRYPT names no key policy and the default is ambiguous: "e1", "e2"/);
    // Clear-text rules need none.
    const clear = revision({ workloads, key_policies: [], sections: [section('s', [rule('r', { ...ab, action: 'ALLOW_IN_CLEAR' })])] });
    expect(() => translate(clear, [])).not.toThrow();
  });

  test('a key policy of the wrong type for the action is refused, whether the rule or the section names it', () => {
    const rev = (s: Partial<Parameters<typeof section>[2]>, r: Partial<Parameters<typeof rule>[1]>) =>
      revision({ workloads, sections: [section('s', [rule('r', { ...ab, ...r })], s)] });
    expect(() => translate(rev({}, { key_policy_identifier: 'kp-int' }), [])).toThrow(
      /rule "r": ENCRYPT needs an ENCRYPTION_AND_INTEGRITY key policy, but its key policy "kp-int" is INTEGRITY_ONLY/,
    );
    expect(() => translate(rev({ key_policy_identifier: 'kp-enc' }, { action: 'INTEGRITY_ONLY' }), [])).toThrow(
      /INTEGRITY_ONLY needs an INTEGRITY_ONLY key policy, but section "s"'s key policy "kp-enc" is ENCRYPTION_AND_INTEGRITY/,
    );
  });

  test('txSpi is the SPI of the policy\'s active key for the rule\'s mode, 0 while none is active', () => {
    const rev = revision({ workloads, sections: [section('s', [rule('r-enc', ab), rule('r-int', { ...ab, action: 'INTEGRITY_ONLY' })])] });
    const keys: KeyState[] = [
      {
        keyPolicyId: 'kp-enc',
        keys: [
          { keyId: 'old', spiGcm: 0x500, spiGmac: 0x501, state: 'retiring', notBefore: 't0', notAfter: 't2' },
          { keyId: 'cur', spiGcm: 0x600, spiGmac: 0x601, state: 'active', notBefore: 't1', notAfter: 't3' },
          { keyId: 'next', spiGcm: 0x700, spiGmac: 0x701, state: 'receive', notBefore: 't2', notAfter: 't4' },
        ],
      },
      { keyPolicyId: 'kp-int', keys: [{ keyId: 'pending', spiGcm: 0x800, spiGmac: 0x801, state: 'receive', notBefore: 't2', notAfter: 't4' }] },
    ];
    const t = rulesAt(translate(rev, keys), 'a-nic0');
    expect(t.map((r) => [r.action, r.txSpi])).toEqual([
      ['encrypt', 0x600],
      ['integrity', 0],
    ]);
    keys[1]!.keys[0]!.state = 'active';
    expect(rulesAt(translate(rev, keys), 'b-nic0').map((r) => r.txSpi)).toEqual([0x600, 0x801]);
  });

  test('a host gets the non-revoked keys of the policies its ports use, with the SPI of their mode', () => {
    const rev = revision({
      workloads: [...workloads, workload('c', 'h3', ['10.0.0.3'])],
      key_policies: [...revision({}).key_policies, keyPolicy('kp-unused')],
      sections: [section('s', [rule('r-int', { ...ab, action: 'INTEGRITY_ONLY' }), rule('r-enc', ab)])],
    });
    const keys: KeyState[] = [
      ...activeKeys(['kp-enc', 'kp-unused']),
      {
        keyPolicyId: 'kp-int',
        keys: [
          { keyId: 'gone', spiGcm: 0x900, spiGmac: 0x901, state: 'revoked', notBefore: 't0', notAfter: 't1' },
          { keyId: 'live', spiGcm: 0xa00, spiGmac: 0xa01, state: 'active', notBefore: 't1', notAfter: 't2' },
        ],
      },
      // The rollover state may still carry a policy this revision deleted.
      { keyPolicyId: 'kp-deleted', keys: [{ keyId: 'x', spiGcm: 1, spiGmac: 2, state: 'active', notBefore: 't', notAfter: 't' }] },
    ];
    const cfgs = translate(rev, keys);
    const idx = keyPolicyIndexes(rev);
    expect(cfgs.get('h1')!.keys).toEqual([
      { keyId: 'kp-enc-k1', keyPolicyId: 'kp-enc', keyPolicyIndex: idx.get('kp-enc'), spi: 0x1000, mode: 'gcm', state: 'active', notBefore: '2026-01-01T00:00:00Z', notAfter: '2026-01-03T00:00:00Z', replayWindow: 4096 },
      { keyId: 'live', keyPolicyId: 'kp-int', keyPolicyIndex: idx.get('kp-int'), spi: 0xa01, mode: 'gmac', state: 'active', notBefore: 't1', notAfter: 't2', replayWindow: 1024 },
    ]);
    expect(cfgs.get('h2')!.keys).toEqual(cfgs.get('h1')!.keys);
    expect(cfgs.get('h3')!.keys).toEqual([]);
  });

  test('a key keeps the mode it was made for: after a type change the old key sends in its mode (rules keep its action) until the new one is active', () => {
    // kp-x was ENCRYPTION_AND_INTEGRITY and is now INTEGRITY_ONLY (its rule's action changed with it).
    const rev = revision({ workloads, key_policies: [keyPolicy('kp-x', { encrypt_type: 'INTEGRITY_ONLY' })], sections: [section('s', [rule('r', { ...ab, action: 'INTEGRITY_ONLY', key_policy_identifier: 'kp-x' })])] });
    const keys: KeyState[] = [
      {
        keyPolicyId: 'kp-x',
        keys: [
          { keyId: 'old', spiGcm: 0x500, spiGmac: 0x501, state: 'active', notBefore: 't0', notAfter: 't2', mode: 'gcm' },
          { keyId: 'new', spiGcm: 0x600, spiGmac: 0x601, state: 'receive', notBefore: 't1', notAfter: 't3', mode: 'gmac' },
        ],
      },
    ];
    const during = translate(rev, keys);
    expect(during.get('h1')!.keys.map((k) => [k.keyId, k.mode, k.spi, k.state])).toEqual([
      ['old', 'gcm', 0x500, 'active'],
      ['new', 'gmac', 0x601, 'receive'],
    ]);
    expect(rulesAt(during, 'a-nic0').map((r) => [r.action, r.txSpi])).toEqual([['encrypt', 0x500]]);
    keys[0]!.keys[0]!.state = 'retiring';
    keys[0]!.keys[1]!.state = 'active';
    const after = translate(rev, keys);
    expect(after.get('h1')!.keys.map((k) => [k.keyId, k.mode, k.spi, k.state])).toEqual([
      ['old', 'gcm', 0x500, 'retiring'],
      ['new', 'gmac', 0x601, 'active'],
    ]);
    expect(rulesAt(after, 'a-nic0').map((r) => [r.action, r.txSpi])).toEqual([['integrity', 0x601]]);
    // Without a mode, a key takes the policy's type (as before modes were recorded).
    delete keys[0]!.keys[1]!.mode;
    expect(translate(rev, keys).get('h1')!.keys[1]).toMatchObject({ keyId: 'new', mode: 'gmac', spi: 0x601 });
  });

  test('inconsistent key state is refused rather than guessed', () => {
    const rev = revision({ workloads, sections: [section('s', [rule('r', ab)])] });
    const two = activeKeys(['kp-enc']);
    two[0]!.keys.push({ ...two[0]!.keys[0]!, keyId: 'k2', spiGcm: 0x2000 });
    expect(() => translate(rev, two)).toThrow(/key state of policy "kp-enc": has more than one active key/);
    const reserved = activeKeys(['kp-enc'], 0x10);
    expect(() => translate(rev, reserved)).toThrow(/key "kp-enc-k1": gcm SPI 16 is not in 256..4294967295/);
    expect(() => translate(rev, [...activeKeys(['kp-enc']), ...activeKeys(['kp-enc'])])).toThrow(/key state of policy "kp-enc": given twice/);
  });
});

// --------------------------------------------------------------- hosts

describe('host scoping', () => {
  test('a host with no workload in a rule\'s scope gets neither the rule nor its keys; every host gets a config', () => {
    const rev = revision({
      workloads: [
        workload('a', 'h1', ['10.0.0.1'], { tags: [['app', 'web']] }),
        workload('b', 'h2', ['10.0.0.2'], { tags: [['app', 'db']] }),
        workload('c', 'h3', ['10.0.0.3'], { tags: [['app', 'batch']] }),
      ],
      groups: [group('web', { expressions: [{ tag: 'web' }] }), group('db', { expressions: [{ tag: 'db' }] })],
      key_policies: [...revision({}).key_policies, keyPolicy('kp-webdb')],
      sections: [section('s', [rule('r', { sources: [ref.group('web')], destinations: [ref.group('db')], key_policy_identifier: 'kp-webdb' })])],
    });
    rev.hosts.push({ id: 'h4', display_name: 'empty host' });
    const cfgs = translate(rev, activeKeys(['kp-enc', 'kp-int', 'kp-webdb']));
    expect([...cfgs.keys()]).toEqual(['h1', 'h2', 'h3', 'h4']);
    expect(cfgs.get('h3')!.ports.map((p) => p.table.rules)).toEqual([[]]);
    expect(cfgs.get('h3')!.keys).toEqual([]);
    expect(cfgs.get('h3')!.rules).toEqual([]);
    expect(cfgs.get('h3')!.keyPolicies).toEqual([]);
    expect(cfgs.get('h4')).toEqual({ hostId: 'h4', revision: 1, defaultAction: 'allow', ports: [], keys: [], rules: [], keyPolicies: [] });
    for (const h of ['h1', 'h2']) {
      const c = cfgs.get(h)!;
      expect(c.keys.map((k) => k.keyId)).toEqual(['kp-webdb-k1']);
      // The names the agent reports counters under: exactly the rules and policies in this host's tables.
      expect(c.rules).toEqual([{ ruleId: c.ports[0]!.table.rules[0]!.ruleId, id: 'r', sectionId: 's', displayName: expect.any(String) }]);
      expect(c.keyPolicies).toEqual([{ index: c.keys[0]!.keyPolicyIndex, id: 'kp-webdb', displayName: expect.any(String) }]);
    }
  });

  test('port tables: the vNIC\'s addresses, the configured default, interfaces and namespace passed through', () => {
    const w = workload('a', 'h1', ['10.0.0.1'], { ipv6: ['fd00::1'], extraVnics: [{ ipv4: [] }] });
    w.vnics[0]!.netns = 'ns-a';
    const rev = revision({ workloads: [w], config: { rekey_margin: 1, default_action: 'DROP' }, revision: 42 });
    const cfg = translate(rev, []).get('h1')!;
    expect(cfg).toMatchObject({ hostId: 'h1', revision: 42, defaultAction: 'drop' });
    expect(cfg.ports).toEqual([
      { name: 'a-nic0', workload_id: 'a', vnic_id: 'a-nic0', workload_if: 'a-wl0', network_if: 'a-nt0', netns: 'ns-a', addresses: ['10.0.0.1', 'fd00::1'], table: { addresses: ['10.0.0.1', 'fd00::1'], defaultAction: 'drop', rules: [] } },
      { name: 'a-nic1', workload_id: 'a', vnic_id: 'a-nic1', workload_if: 'a-wl1', network_if: 'a-nt1', addresses: [], table: { addresses: [], defaultAction: 'drop', rules: [] } },
    ]);
  });
  test('a vNIC id the filter cannot take as a port name gets a stable digest name', () => {
    const w = workload('a', 'h1', ['10.0.0.1'], { extraVnics: [{ ipv4: ['10.0.0.2'] }, { ipv4: ['10.0.0.3'] }] });
    w.vnics[1]!.id = 'pod/default/web-0/eth0';
    w.vnics[2]!.id = 'x'.repeat(65);
    const ports = translate(revision({ workloads: [w] }), []).get('h1')!.ports;
    expect(ports.map((p) => p.vnic_id)).toEqual(['a-nic0', 'pod/default/web-0/eth0', 'x'.repeat(65)]);
    expect(ports[0]!.name).toBe('a-nic0');
    for (const p of ports.slice(1)) expect(p.name).toMatch(/^vnic-[0-9a-f]{24}$/);
    expect(ports[1]!.name).toBe(portName('pod/default/web-0/eth0'));
    expect(ports[1]!.name).not.toBe(ports[2]!.name);
    // A literal id equal to another vNIC's derived name is refused rather than shared.
    const clash = workload('b', 'h1', ['10.0.0.9']);
    clash.vnics[0]!.id = portName('pod/default/web-0/eth0');
    expect(() => translate(revision({ workloads: [w, clash] }), [])).toThrow(/workload "b" vNIC "vnic-[0-9a-f]{24}": port name .* is already another vNIC's/);
  });
});

// -------------------------------------------------------- stable numbers

describe('stable rule and key policy numbers', () => {
  const workloads = [workload('a', 'h1', ['10.0.0.1']), workload('b', 'h2', ['10.0.0.2']), workload('c', 'h3', ['10.0.0.3'])];

  test('a rule has one ruleId at every host, and keeps it when rules and policies are added', () => {
    const r1 = rule('r1', { key_policy_identifier: 'kp-x' });
    const base = revision({ workloads, key_policies: [...revision({}).key_policies, keyPolicy('kp-x')], sections: [section('s', [r1])] });
    const grown = revision({
      workloads,
      key_policies: [keyPolicy('kp-a'), ...base.key_policies],
      sections: [section('s0', [rule('r0')]), section('s', [rule('r-before'), r1])],
    });
    for (const rev of [base, grown]) {
      const cfgs = translate(rev, []);
      const ids = new Set(allPorts(cfgs).flatMap((p) => p.table.rules.filter((r) => r.keyPolicy === keyPolicyIndexes(rev).get('kp-x')).map((r) => r.ruleId)));
      expect([...ids]).toEqual([fnv1a32('r1')]);
    }
    expect(keyPolicyIndexes(grown).get('kp-x')).toBe(keyPolicyIndexes(base).get('kp-x'));
    expect(ruleIds(grown).get('r1')).toBe(ruleIds(base).get('r1'));
  });

  test('colliding hashes get distinct numbers, decided by sorted id order', () => {
    // FNV-1a("rule-179599") == FNV-1a("rule-362382") == 567303106.
    expect(fnv1a32('rule-179599')).toBe(fnv1a32('rule-362382'));
    const ids = stableIds(['rule-362382', 'rule-179599']);
    expect(ids.get('rule-179599')).toBe(567303106);
    expect(ids.get('rule-362382')).toBe(567303107);
    expect(stableIds(['rule-179599', 'rule-362382'])).toEqual(ids);
  });
});

// ------------------------------------------------------------- validation

describe('references that do not resolve', () => {
  const base = () =>
    revision({
      workloads: [workload('a', 'h1', ['10.0.0.1']), workload('b', 'h2', ['10.0.0.2'])],
      ip_sets: [ipSet('s1', ['10.9.0.0/16'])],
      groups: [group('g', { workload_ids: ['a'], ip_set_ids: ['s1'] })],
      sections: [section('s', [rule('r', { sources: [ref.group('g')], destinations: [ref.workload('b')] })])],
    });
  const cases: Array<[string, (r: Revision) => void, RegExp]> = [
    ['a group in sources', (r) => (r.sections[0]!.rules[0]!.sources = [ref.group('nope')]), /section "s" rule "r" sources\[0\]: NSGroup "nope" does not exist/],
    ['an IP set in destinations', (r) => (r.sections[0]!.rules[0]!.destinations = [ref.workload('b'), ref.ipSet('nope')]), /rule "r" destinations\[1\]: IP set "nope" does not exist/],
    ['a workload reference', (r) => (r.sections[0]!.rules[0]!.destinations = [ref.workload('nope')]), /rule "r" destinations\[0\]: workload "nope" does not exist/],
    ['a group\'s workload', (r) => r.groups[0]!.workload_ids.push('nope'), /group "g" workload_ids\[1\]: workload "nope" does not exist/],
    ['a group\'s IP set', (r) => r.groups[0]!.ip_set_ids.push('nope'), /group "g" ip_set_ids\[1\]: IP set "nope" does not exist/],
    ['a rule\'s key policy', (r) => (r.sections[0]!.rules[0]!.key_policy_identifier = 'nope'), /section "s" rule "r": key policy "nope" does not exist/],
    ['a section\'s key policy', (r) => (r.sections[0]!.key_policy_identifier = 'nope'), /section "s": key policy "nope" does not exist/],
    ['a rule\'s applied-to', (r) => (r.sections[0]!.rules[0]!.applied_tos = [ref.group('nope')]), /rule "r" applied_tos\[0\]: NSGroup "nope" does not exist/],
    ['a section\'s applied-to', (r) => (r.sections[0]!.applied_tos = [ref.workload('nope')]), /section "s" applied_tos\[0\]: workload "nope" does not exist/],
    ['a workload\'s host', (r) => (r.workloads[1]!.host_id = 'nope'), /workload "b": host "nope" does not exist/],
    ['a disabled rule still', (r) => r.sections[0]!.rules.push(rule('off', { disabled: true, sources: [ref.group('nope')] })), /rule "off" sources\[0\]: NSGroup "nope" does not exist/],
    ['a disabled section still', (r) => r.sections.push(section('off', [], { disabled: true, key_policy_identifier: 'nope' })), /section "off": key policy "nope" does not exist/],
  ];
  test.each(cases)('a missing object in %s is an error naming where', (_, mutate, message) => {
    const rev = base();
    expect(() => translate(rev, [])).not.toThrow();
    mutate(rev);
    expect(() => translate(rev, [])).toThrow(message);
    try {
      translate(rev, []);
    } catch (e) {
      expect(e).toMatchObject({ code: 'ERR_DNE_BAD_ARGUMENT', message: expect.stringMatching(/^revision 1: /) });
    }
  });

  const malformed: Array<[string, (r: Revision) => void, RegExp]> = [
    ['an IP set as applied-to', (r) => (r.sections[0]!.rules[0]!.applied_tos = [ref.ipSet('s1')]), /applied_tos\[0\]: an applied-to must be an NSGroup or a Workload, not "IPSet"/],
    ['an unparsable IPAddress', (r) => (r.sections[0]!.rules[0]!.sources = [ref.ip('10.0.0.0/33')]), /sources\[0\]: "10.0.0.0\/33" is not an IPv4\/IPv6 address or CIDR/],
    ['an unparsable IP set entry', (r) => r.ip_sets[0]!.ip_addresses.push('fd00::/64/1'), /ip set "s1": "fd00::\/64\/1" is not/],
    ['an IPv6 address among ipv4', (r) => r.workloads[0]!.vnics[0]!.ipv4.push('fd00::1'), /workload "a" vNIC "a-nic0": "fd00::1" is not an IPv4 address/],
    ['a zone in an address', (r) => r.workloads[0]!.vnics[0]!.ipv6.push('fe80::1%eth0'), /"fe80::1%eth0" is not an IPv6 address/],
    ['an expression without fields', (r) => r.groups[0]!.expressions.push({}), /group "g" expressions\[0\]: needs a scope, a tag or both/],
    ['a duplicate rule id', (r) => r.sections.push(section('s2', [rule('r')])), /section "s2" rule "r": rule id is used twice/],
    ['a duplicate vNIC id', (r) => (r.workloads[1]!.vnics[0]!.id = 'a-nic0'), /workload "b": vNIC id "a-nic0" is used twice/],
    ['a duplicate workload id', (r) => r.workloads.push({ ...r.workloads[0]!, vnics: [] }), /workload "a": id is used twice/],
    ['an unknown default action', (r) => (r.config.default_action = 'REJECT' as never), /config.default_action: must be ALLOW_IN_CLEAR or DROP, not "REJECT"/],
  ];
  test.each(malformed)('%s is refused', (_, mutate, message) => {
    const rev = base();
    mutate(rev);
    expect(() => translate(rev, [])).toThrow(message);
  });
});
