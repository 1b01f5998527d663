/**
 * Builds plain IPv4/IPv6 UDP packets with correct checksums, for the
 * self-test and tests that need real packets without a network.
 */

function sum16(buf: Buffer, start = 0, end = buf.length, init = 0): number {
  let s = init;
  for (let i = start; i + 1 < end; i += 2) s += buf.readUInt16BE(i);
  if ((end - start) & 1) s += buf[end - 1]! << 8;
  return s;
}

function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** RFC 1071 checksum. */
export function inetChecksum(buf: Buffer, start = 0, end = buf.length, init = 0): number {
  return ~fold(sum16(buf, start, end, init)) & 0xffff;
}

export interface UdpOptions {
  src: string;
  dst: string;
  srcPort?: number;
  dstPort?: number;
  payload: Buffer;
}

function ipv4Bytes(a: string): Buffer {
  const parts = a.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new RangeError(`not an IPv4 address: ${a}`);
  }
  return Buffer.from(parts);
}

function ipv6Bytes(a: string): Buffer {
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) throw new RangeError(`not an IPv6 address: ${a}`);
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function udpHeader(o: UdpOptions): Buffer {
  const u = Buffer.alloc(8 + o.payload.length);
  u.writeUInt16BE(o.srcPort ?? 40000, 0);
  u.writeUInt16BE(o.dstPort ?? 5201, 2);
  u.writeUInt16BE(u.length, 4);
  o.payload.copy(u, 8);
  return u;
}

export function udp4(o: UdpOptions): Buffer {
  const src = ipv4Bytes(o.src);
  const dst = ipv4Bytes(o.dst);
  const udp = udpHeader(o);
  // UDP checksum over the RFC 768 pseudo-header.
  const pseudo = Buffer.concat([src, dst, Buffer.from([0, 17]), Buffer.from([udp.length >> 8, udp.length & 0xff])]);
  let c = inetChecksum(udp, 0, udp.length, sum16(pseudo));
  if (c === 0) c = 0xffff;
  udp.writeUInt16BE(c, 6);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + udp.length, 2);
  ip.writeUInt16BE(0x4000, 6);
  ip[8] = 64;
  ip[9] = 17;
  src.copy(ip, 12);
  dst.copy(ip, 16);
  ip.writeUInt16BE(inetChecksum(ip), 10);
  return Buffer.concat([ip, udp]);
}

export function udp6(o: UdpOptions): Buffer {
  const src = ipv6Bytes(o.src);
  const dst = ipv6Bytes(o.dst);
  const udp = udpHeader(o);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(udp.length);
  const pseudo = Buffer.concat([src, dst, len, Buffer.from([0, 0, 0, 17])]);
  let c = inetChecksum(udp, 0, udp.length, sum16(pseudo));
  if (c === 0) c = 0xffff;
  udp.writeUInt16BE(c, 6);
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(udp.length, 4);
  ip[6] = 17;
  ip[7] = 64;
  src.copy(ip, 8);
  dst.copy(ip, 24);
  return Buffer.concat([ip, udp]);
}

export interface IpOptions {
  src: string;
  dst: string;
  /** IP protocol number; 6 and 17 get a TCP/UDP header with the ports. */
  protocol: number;
  srcPort?: number;
  dstPort?: number;
  payload?: Buffer;
}

/** An IPv4 or IPv6 packet (family from the addresses) with a minimal L4 header. */
export function ipPacket(o: IpOptions): Buffer {
  const payload = o.payload ?? Buffer.alloc(0);
  const v6 = o.src.includes(':');
  if (o.protocol === 17) {
    const u = { src: o.src, dst: o.dst, srcPort: o.srcPort ?? 0, dstPort: o.dstPort ?? 0, payload };
    return v6 ? udp6(u) : udp4(u);
  }
  let l4: Buffer;
  if (o.protocol === 6) {
    l4 = Buffer.alloc(20 + payload.length);
    l4.writeUInt16BE(o.srcPort ?? 0, 0);
    l4.writeUInt16BE(o.dstPort ?? 0, 2);
    l4[12] = 0x50;
    l4[13] = 0x10;
    payload.copy(l4, 20);
  } else {
    l4 = Buffer.concat([Buffer.from([8, 0, 0, 0, 0, 1, 0, 1]), payload]);
  }
  if (v6) {
    const ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(l4.length, 4);
    ip[6] = o.protocol;
    ip[7] = 64;
    ipv6Bytes(o.src).copy(ip, 8);
    ipv6Bytes(o.dst).copy(ip, 24);
    return Buffer.concat([ip, l4]);
  }
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + l4.length, 2);
  ip[8] = 64;
  ip[9] = o.protocol;
  ipv4Bytes(o.src).copy(ip, 12);
  ipv4Bytes(o.dst).copy(ip, 16);
  ip.writeUInt16BE(inetChecksum(ip), 10);
  return Buffer.concat([ip, l4]);
}

/** Wraps an IP packet in an Ethernet header (locally administered MACs). */
export function ethFrame(ip: Buffer): Buffer {
  const h = Buffer.from([0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0, 0]);
  h.writeUInt16BE((ip[0]! >> 4) === 6 ? 0x86dd : 0x0800, 12);
  return Buffer.concat([h, ip]);
}
