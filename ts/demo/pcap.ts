/** Reads classic pcap files (what tcpdump -w writes) into frame buffers. */
import * as fs from 'node:fs';

export interface PcapFrame {
  ts: number;
  data: Buffer;
  origLen: number;
}

export function readPcap(path: string): { linktype: number; frames: PcapFrame[] } {
  const b = fs.readFileSync(path);
  if (b.length < 24) return { linktype: 1, frames: [] };
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && b.readUInt32BE(0) !== 0xa1b2c3d4 && b.readUInt32BE(0) !== 0xa1b23c4d) {
    throw new Error(`${path}: not a classic pcap file`);
  }
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const linktype = u32(20);
  const frames: PcapFrame[] = [];
  let off = 24;
  while (off + 16 <= b.length) {
    const incl = u32(off + 8);
    const orig = u32(off + 12);
    if (off + 16 + incl > b.length) break; // partial last record
    frames.push({ ts: u32(off) + u32(off + 4) / 1e6, data: b.subarray(off + 16, off + 16 + incl), origLen: orig });
    off += 16 + incl;
  }
  return { linktype, frames };
}

export interface IpView {
  family: 4 | 6;
  proto: number; // after IPv6 extension headers
  ipLen: number;
  src: string;
  dst: string;
  l3: number; // offset of the IP header in the frame
  l4: number;
}

/** Minimal Ethernet/IP view of a captured frame; null for non-IP. */
export function ipView(f: Buffer): IpView | null {
  if (f.length < 14) return null;
  let off = 12;
  let type = f.readUInt16BE(off);
  if (type === 0x8100) {
    off += 4;
    type = f.readUInt16BE(off);
  }
  const l3 = off + 2;
  if (type === 0x0800 && f.length >= l3 + 20) {
    const ihl = (f[l3]! & 15) * 4;
    return {
      family: 4,
      proto: f[l3 + 9]!,
      ipLen: f.readUInt16BE(l3 + 2),
      src: [...f.subarray(l3 + 12, l3 + 16)].join('.'),
      dst: [...f.subarray(l3 + 16, l3 + 20)].join('.'),
      l3,
      l4: l3 + ihl,
    };
  }
  if (type === 0x86dd && f.length >= l3 + 40) {
    let nh = f[l3 + 6]!;
    let o = l3 + 40;
    while ([0, 43, 44, 60].includes(nh) && o + 8 <= f.length) {
      const next = f[o]!;
      o += nh === 44 ? 8 : (f[o + 1]! + 1) * 8;
      nh = next;
    }
    const hex = (a: Buffer) => (a.toString('hex').match(/.{4}/g) ?? []).join(':');
    return {
      family: 6,
      proto: nh,
      ipLen: 40 + f.readUInt16BE(l3 + 4),
      src: hex(f.subarray(l3 + 8, l3 + 24)),
      dst: hex(f.subarray(l3 + 24, l3 + 40)),
      l3,
      l4: o,
    };
  }
  return null;
}
