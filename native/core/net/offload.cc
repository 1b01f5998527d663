#include "net/offload.h"

namespace dne {

namespace detail {
void fix_ipv4_header(uint8_t* ip, size_t total_len, uint16_t id) {
  const size_t ihl = static_cast<size_t>(ip[0] & 15) * 4;
  store_be16(ip + 2, static_cast<uint16_t>(total_len));
  store_be16(ip + 4, id);
  store_be16(ip + 10, ipv4_header_checksum(ip, ihl));
}
}  // namespace detail

bool complete_checksum(uint8_t* frame, size_t len, uint16_t csum_start,
                       uint16_t csum_offset) {
  if (static_cast<size_t>(csum_start) + csum_offset + 2 > len) return false;
  const uint64_t s = csum_add(frame + csum_start, len - csum_start, 0);
  store_be16(frame + csum_start + csum_offset,
             static_cast<uint16_t>(~csum_fold(s)));
  return true;
}

bool clamp_tcp_mss(uint8_t* frame, const ParsedFrame& p, uint16_t mss,
                   bool checksum_is_partial) {
  if (p.l4_proto != 6 || !p.key.has_ports || !(p.tcp_flags & 0x02)) return false;
  uint8_t* tcp = frame + p.l4_off;
  const size_t end = p.l3_off + p.ip_len;
  if (p.l4_off + 20 > end) return false;
  const size_t doff = static_cast<size_t>(tcp[12] >> 4) * 4;
  if (doff < 20 || p.l4_off + doff > end) return false;
  for (size_t i = 20; i < doff;) {
    const uint8_t kind = tcp[i];
    if (kind == 0) break;           // end of options
    if (kind == 1) { ++i; continue; }  // NOP
    if (i + 1 >= doff) break;
    const uint8_t olen = tcp[i + 1];
    if (olen < 2 || i + olen > doff) break;
    if (kind == 2 && olen == 4) {   // MSS (RFC 9293 §3.7.1)
      const uint16_t old = load_be16(tcp + i + 2);
      if (old <= mss) return false;
      store_be16(tcp + i + 2, mss);
      if (!checksum_is_partial) {
        // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')
        uint32_t s = static_cast<uint16_t>(~load_be16(tcp + 16));
        s += static_cast<uint16_t>(~old);
        s += mss;
        while (s >> 16) s = (s & 0xffff) + (s >> 16);
        store_be16(tcp + 16, static_cast<uint16_t>(~s));
      }
      return true;
    }
    i += olen;
  }
  return false;
}

}  // namespace dne
