#include "net/icmp.h"

#include <cstring>

#include "common/bytes.h"
#include "net/checksum.h"

namespace dne {

namespace {

size_t write_eth(const uint8_t* frame, const ParsedFrame& p, uint8_t* out) {
  std::memcpy(out, frame + 6, 6);  // back to the sender
  std::memcpy(out + 6, frame, 6);
  // Keep a VLAN tag if the original had one.
  std::memcpy(out + 12, frame + 12, p.l3_off - 12);
  return p.l3_off;
}

}  // namespace

size_t build_frag_needed(const uint8_t* frame, const ParsedFrame& p,
                         uint16_t mtu, uint8_t* out, size_t cap) {
  if (p.family != 4) return 0;
  const uint8_t* orig = frame + p.l3_off;
  // RFC 1812 §4.3.2.3: quote as much as fits in 576 bytes.
  size_t quote = p.ip_len;
  if (quote > 576 - 28) quote = 576 - 28;
  const size_t total = p.l3_off + 20 + 8 + quote;
  if (total > cap) return 0;
  size_t o = write_eth(frame, p, out);
  uint8_t* ip = out + o;
  std::memset(ip, 0, 28);
  ip[0] = 0x45;
  ip[1] = 0xc0;  // internetwork control precedence, as routers send errors
  store_be16(ip + 2, static_cast<uint16_t>(28 + quote));
  ip[8] = 64;
  ip[9] = 1;
  std::memcpy(ip + 12, orig + 16, 4);  // from the original destination
  std::memcpy(ip + 16, orig + 12, 4);  // to the original source
  store_be16(ip + 10, ipv4_header_checksum(ip, 20));
  uint8_t* icmp = ip + 20;
  icmp[0] = 3;  // destination unreachable
  icmp[1] = 4;  // fragmentation needed and DF set
  store_be16(icmp + 6, mtu);  // next-hop MTU (RFC 1191 §4)
  std::memcpy(icmp + 8, orig, quote);
  set_l4_checksum(4, nullptr, nullptr, 1, icmp, 8 + quote);
  return total;
}

size_t build_packet_too_big(const uint8_t* frame, const ParsedFrame& p,
                            uint32_t mtu, uint8_t* out, size_t cap) {
  if (p.family != 6) return 0;
  const uint8_t* orig = frame + p.l3_off;
  // RFC 4443 §3.2: as much of the invoking packet as fits in the minimum
  // IPv6 MTU.
  size_t quote = p.ip_len;
  if (quote > 1280 - 48) quote = 1280 - 48;
  const size_t total = p.l3_off + 40 + 8 + quote;
  if (total > cap) return 0;
  size_t o = write_eth(frame, p, out);
  uint8_t* ip = out + o;
  std::memset(ip, 0, 48);
  ip[0] = 0x60;
  store_be16(ip + 4, static_cast<uint16_t>(8 + quote));
  ip[6] = 58;
  ip[7] = 64;
  std::memcpy(ip + 8, orig + 24, 16);
  std::memcpy(ip + 24, orig + 8, 16);
  uint8_t* icmp = ip + 40;
  icmp[0] = 2;  // packet too big
  icmp[1] = 0;
  store_be32(icmp + 4, mtu);
  std::memcpy(icmp + 8, orig, quote);
  set_l4_checksum(6, ip + 8, ip + 24, 58, icmp, 8 + quote);
  return total;
}

}  // namespace dne
