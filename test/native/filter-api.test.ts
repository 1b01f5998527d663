/**
 * The Filter's TypeScript face refuses bad input with precise messages and
 * changes nothing when it does (no root needed: no ports are opened).
 */
import { randomBytes } from 'node:crypto';
import { Filter, PortTableSpec } from '../../ts/native/filter';

const table = (over: Partial<PortTableSpec> = {}): PortTableSpec => ({
  addresses: ['10.0.0.1'],
  defaultAction: 'allow',
  rules: [
    { ruleId: 1, role: 'source', local: ['10.0.0.1'], remote: ['10.0.1.0/24'], protocol: 6, ports: [[80, 80]], action: 'encrypt', keyPolicy: 1, txSpi: 0 },
  ],
  ...over,
});

describe('constructor', () => {
  test.each([
    [null, /options must be an object/],
    ['x', /options must be an object/],
    [{ workers: 0 }, /workers must be an integer from 1 to 64/],
    [{ defaultAction: 'open' }, /defaultAction must be "allow" or "drop"/],
    [{ blockSize: 4096 }, /blockSize must be a multiple of 4096, at least 69632/],
    [{ blockSize: 64 << 20, blockCount: 1024 }, /at most 256 MiB per interface/],
    [{ retireMs: 0 }, /retireMs must be an integer from 1 to 1000/],
  ])('%p is refused', (opts, msg) => {
    expect(() => new Filter(opts as never)).toThrow(msg);
  });
});

describe('setTables', () => {
  test('unknown ports, bad prefixes and bad rules are refused and the generation stays', () => {
    const f = new Filter();
    const gen = f.generation();
    expect(() => f.setTables({ ports: { nope: table() } })).toThrow(/no port named nope/);
    expect(() => f.setTables({ ports: { p: table({ addresses: ['10.0.0.1/40'] }) } })).toThrow(/addresses\[0\] is not an IPv4\/IPv6/);
    expect(() => f.setTables({ ports: { p: table({ addresses: ['fe80::1%eth0'] }) } })).toThrow(/not an IPv4\/IPv6/);
    expect(() => f.setTables({ ports: 'x' as never })).toThrow(/tables.ports must be an object/);
    expect(() => f.setTables(null as never)).toThrow(/tables must be an object/);
    expect(() => f.setTables({ ports: { '__proto__!': table() } })).toThrow(/is not a port name/);
    expect(() => f.setTables({ ports: { p: table({ rules: [null as never] }) } })).toThrow(/rules\[0\] must be an object/);
    const bad = table();
    bad.rules[0] = { ...table().rules[0]!, protocol: -1 };
    expect(() => f.setTables({ ports: { p: bad } })).toThrow(/protocol must be 0-255, or null for any/);
    expect(f.generation()).toBe(gen);
  });

  test('a filter that drops by default keeps dropping when tables omit defaultAction', () => {
    const f = new Filter({ defaultAction: 'drop' });
    expect(f.effectiveDefaultAction).toBe('drop');
    f.setTables({ ports: {} });
    expect(f.effectiveDefaultAction).toBe('drop');
    f.setTables({ defaultAction: 'allow', ports: {} });
    expect(f.effectiveDefaultAction).toBe('allow');
  });
});

describe('SAs', () => {
  test('bad SA options are refused and the key is wiped anyway', () => {
    const f = new Filter();
    const key = randomBytes(16);
    const salt = randomBytes(3);
    expect(() => f.installSa({ spi: 0x1000, mode: 'gcm', key, salt, keyPolicy: 1, senderIds: [1] })).toThrow(/salt must be 4 bytes/);
    expect(key.equals(Buffer.alloc(16))).toBe(true);
    expect(() => f.installSa({ spi: 0x1000, mode: 'gcm', key: randomBytes(16), salt: randomBytes(4), keyPolicy: -1, senderIds: [1] })).toThrow(
      /keyPolicy must be an integer/,
    );
    expect(() => f.installSa(null as never)).toThrow(/SA options must be an object/);
    expect(() => f.installSa({ spi: 0x1000, mode: 'gcm', key: randomBytes(16), salt: randomBytes(4), keyPolicy: 1, senderIds: [] })).toThrow(
      /one sender ID per worker/,
    );
    f.installSa({ spi: 0x1000, mode: 'gcm', key: randomBytes(16), salt: randomBytes(4), keyPolicy: 1, senderIds: [1] });
    expect(() => f.installSa({ spi: 0x1000, mode: 'gcm', key: randomBytes(16), salt: randomBytes(4), keyPolicy: 1, senderIds: [1] })).toThrow(
      /already installed/,
    );
    expect(() => f.removeSa(-1)).toThrow(/spi must be an integer/);
    expect(() => f.removeSa(256.5)).toThrow(/spi must be an integer/);
    expect(() => f.saStats('x' as never)).toThrow(/spi must be an integer/);
    expect(f.removeSa(0x1000)).toBe(true);
    expect(f.saStats(0x1000)).toBeNull();
  });

  test('replaceSenders: bad arguments and refused IDs change nothing; fresh IDs are taken in place', () => {
    const f = new Filter({ workers: 2 });
    f.installSa({ spi: 0x1000, mode: 'gcm', key: randomBytes(16), salt: randomBytes(4), keyPolicy: 1, senderIds: [1, 2], senderIdBits: 16 });
    const gen = f.generation();
    const refusals: Array<[number, unknown, RegExp]> = [
      [255, [3, 4], /spi must be an integer from 256 to 4294967295/],
      [4096.5, [3, 4], /spi must be an integer/],
      [0x1000, 'x', /senderIds must hold one sender ID per worker \(2\)/],
      [0x1000, [3], /senderIds must hold one sender ID per worker \(2\)/],
      [0x1000, [3, 4, 5], /senderIds must hold one sender ID per worker \(2\)/],
      [0x1000, [3, -1], /senderIds must be integers below 2\^16/],
      [0x1000, [3, 0x10000], /senderIds must be integers below 2\^16/],
      [0x1000, [3, 3.5], /senderIds must be integers below 2\^16/],
      [0x1000, [3, 3], /senderIds must be distinct/],
      [0x2000, [3, 4], /sender IDs refused: SA 0x2000 is not installed/],
      [0x1000, [3, 1], /sender IDs refused: SA 0x1000: a sender ID was already used with this SA/],
      [0x1000, [2, 4], /already used with this SA/],
    ];
    for (const [spi, ids, msg] of refusals) expect(() => f.replaceSenders(spi, ids as number[])).toThrow(msg);
    expect(f.generation()).toBe(gen);
    f.replaceSenders(0x1000, [3, 4]);
    expect(f.generation()).toBe(gen + 1n);
    // The set just taken and the first one are both spent now.
    expect(() => f.replaceSenders(0x1000, [5, 4])).toThrow(/already used with this SA/);
    expect(() => f.replaceSenders(0x1000, [1, 5])).toThrow(/already used with this SA/);
    expect(f.generation()).toBe(gen + 1n);
    // The SA itself stays: installed, counters readable, same SPI.
    expect(f.saStats(0x1000)).not.toBeNull();
    f.replaceSenders(0x1000, [5, 6]);
    expect(f.generation()).toBe(gen + 2n);
    expect(f.removeSa(0x1000)).toBe(true);
    expect(() => f.replaceSenders(0x1000, [7, 8])).toThrow(/SA 0x1000 is not installed/);
  });

  test('replaceSenders: an ID too wide for the SA is refused by the filter too', () => {
    // A second wrapper over nothing it installed itself has no width to check
    // in TypeScript: the native check answers.
    const f = new Filter();
    f.installSa({ spi: 0x1000, mode: 'gcm', key: randomBytes(16), salt: randomBytes(4), keyPolicy: 1, senderIds: [1], senderIdBits: 8 });
    (f as unknown as { saBits: Map<number, number> }).saBits.clear();
    const gen = f.generation();
    expect(() => f.replaceSenders(0x1000, [256])).toThrow(/sender IDs refused: SA 0x1000: a sender ID does not fit the SA's sender ID width/);
    expect(f.generation()).toBe(gen);
  });

  test('ports: bad configs are refused with the reason', () => {
    const f = new Filter();
    expect(() => f.addPort(null as never)).toThrow(/port must be an object/);
    expect(() => f.addPort({ name: 'a', workloadIf: 'lo', networkIf: 'lo' })).toThrow(/must be different interfaces/);
    expect(() => f.addPort({ name: 'a', workloadIf: 'nope0', networkIf: 'lo' })).toThrow(/workload side: no interface named nope0/);
    expect(() => f.addPort({ name: 'a', workloadIf: 'x', networkIf: 'y', workloadNetns: 5 as never })).toThrow(/workloadNetns must be/);
    expect(() => f.addPort({ name: 'bad name', workloadIf: 'x', networkIf: 'y' })).toThrow(/port.name must be/);
    expect(() => f.portStats(5 as never)).toThrow(/port name must be a string/);
  });
});
