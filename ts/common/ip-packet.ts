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
