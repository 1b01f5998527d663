#include "net/frame.h"

#include <cstring>

#include "common/bytes.h"

namespace dne {

namespace {

bool has_ports(uint8_t proto) {
  return proto == 6 || proto == 17 || proto == 132 || proto == 136;
}

void read_ports(const uint8_t* frame, size_t len, ParsedFrame* p) {
  if (!has_ports(p->l4_proto) || p->l4_off + 4 > len) return;
  if (p->fragment && !p->first_fragment) return;
  p->key.has_ports = true;
  p->key.sport = load_be16(frame + p->l4_off);
  p->key.dport = load_be16(frame + p->l4_off + 2);
  if (p->l4_proto == 6 && p->l4_off + 14 <= len) p->tcp_flags = frame[p->l4_off + 13];
}

bool parse_ipv4(const uint8_t* f, size_t len, ParsedFrame* p) {
  const uint8_t* ip = f + p->l3_off;
  const size_t avail = len - p->l3_off;
  if (avail < 20 || (ip[0] >> 4) != 4) return false;
  const size_t ihl = static_cast<size_t>(ip[0] & 15) * 4;
  const size_t total = load_be16(ip + 2);
  if (ihl < 20 || total < ihl || total > avail) return false;
  p->family = 4;
  p->ip_len = total;
  const uint16_t frag = load_be16(ip + 6);
  p->df = (frag & 0x4000) != 0;
  const bool mf = (frag & 0x2000) != 0;
  const uint16_t offset = frag & 0x1fff;
  p->fragment = mf || offset != 0;
  p->first_fragment = p->fragment && offset == 0;
  p->frag_id = load_be16(ip + 4);
  p->l4_proto = ip[9];
  p->l4_off = p->l3_off + ihl;
  p->key.family = 4;
  p->key.protocol = ip[9];
  std::memcpy(p->key.src, ip + 12, 4);
  std::memcpy(p->key.dst, ip + 16, 4);
  read_ports(f, p->l3_off + total, p);
  return true;
}

bool parse_ipv6(const uint8_t* f, size_t len, ParsedFrame* p) {
  const uint8_t* ip = f + p->l3_off;
  const size_t avail = len - p->l3_off;
  if (avail < 40 || (ip[0] >> 4) != 6) return false;
  const size_t payload = load_be16(ip + 4);
  if (payload == 0 || 40 + payload > avail) return false;  // no jumbograms
  p->family = 6;
  p->ip_len = 40 + payload;
  p->key.family = 6;
  std::memcpy(p->key.src, ip + 8, 16);
  std::memcpy(p->key.dst, ip + 24, 16);
  uint8_t nh = ip[6];
  size_t off = 40;
  for (int i = 0; i < 8; ++i) {
    if (nh != 0 && nh != 43 && nh != 44 && nh != 60) break;
    if (off + 8 > p->ip_len) return false;
    if (nh == 44) {
      const uint16_t fo = load_be16(ip + off + 2);
      p->fragment = true;
      p->first_fragment = (fo & 0xfff8) == 0;
      p->frag_id = load_be32(ip + off + 4);
      nh = ip[off];
      off += 8;
    } else {
      const size_t hl = (static_cast<size_t>(ip[off + 1]) + 1) * 8;
      nh = ip[off];
      off += hl;
    }
  }
  if (off > p->ip_len) return false;
  p->l4_proto = nh;
  p->l4_off = p->l3_off + off;
  p->key.protocol = nh;
  read_ports(f, p->l3_off + p->ip_len, p);
  return true;
}

}  // namespace

bool parse_frame(const uint8_t* frame, size_t len, ParsedFrame* p) {
  *p = ParsedFrame();
  if (len < kEthHeaderLen) return false;
  size_t off = 12;
  uint16_t type = load_be16(frame + off);
  if (type == 0x8100 || type == 0x88a8) {  // one VLAN tag (802.1Q / 802.1ad)
    if (len < kEthHeaderLen + 4) return false;
    off += 4;
    type = load_be16(frame + off);
  }
  p->ethertype = type;
  p->l3_off = off + 2;
  if (type == kEthIpv4) return parse_ipv4(frame, len, p);
  if (type == kEthIpv6) return parse_ipv6(frame, len, p);
  return true;  // not IP: passes untouched
}

bool is_link_control(const ParsedFrame& p, const uint8_t* frame) {
  if (p.family == 6 && p.l4_proto == 58 && !p.fragment && p.l4_off + 1 <= p.l3_off + p.ip_len) {
    const uint8_t type = frame[p.l4_off];
    return (type >= 130 && type <= 137) || type == 143;
  }
  if (p.l4_proto == 17 && p.key.has_ports) {
    const uint16_t s = p.key.sport, d = p.key.dport;
    if (p.family == 4 && ((s == 68 && d == 67) || (s == 67 && d == 68))) return true;
    if (p.family == 6 && ((s == 546 && d == 547) || (s == 547 && d == 546))) return true;
  }
  return false;
}

}  // namespace dne
