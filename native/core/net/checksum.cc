#include "net/checksum.h"

#include <cstring>

#include "common/bytes.h"

namespace dne {

uint64_t csum_add(const uint8_t* p, size_t len, uint64_t sum) {
  // 32-bit big-endian words summed into 64 bits: carries are kept and
  // folded once at the end (RFC 1071 §2 (B), deferred carries).
  size_t i = 0;
  for (; i + 4 <= len; i += 4) sum += load_be32(p + i);
  if (i + 2 <= len) {
    sum += load_be16(p + i);
    i += 2;
  }
  if (i < len) sum += static_cast<uint64_t>(p[i]) << 8;
  return sum;
}

uint16_t csum_fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

uint64_t pseudo_header_sum(uint8_t family, const uint8_t* src,
                           const uint8_t* dst, uint8_t proto, uint32_t len) {
  const size_t alen = family == 4 ? 4 : 16;
  uint64_t s = csum_add(src, alen, 0);
  s = csum_add(dst, alen, s);
  return s + proto + len;
}

int l4_checksum_offset(uint8_t proto) {
  switch (proto) {
    case 6:  // TCP
      return 16;
    case 17:   // UDP
    case 136:  // UDP-Lite
      return 6;
    case 1:   // ICMP
    case 58:  // ICMPv6
      return 2;
    default:
      return -1;
  }
}

void set_l4_checksum(uint8_t family, const uint8_t* src, const uint8_t* dst,
                     uint8_t proto, uint8_t* l4, size_t len) {
  const int off = l4_checksum_offset(proto);
  if (off < 0 || static_cast<size_t>(off) + 2 > len) return;
  store_be16(l4 + off, 0);
  uint64_t s = proto == 1 ? 0 : pseudo_header_sum(family, src, dst, proto,
                                                  static_cast<uint32_t>(len));
  s = csum_add(l4, len, s);
  uint16_t c = static_cast<uint16_t>(~csum_fold(s));
  // UDP sends zero as "no checksum"; a computed zero goes out as 0xffff
  // (RFC 768).
  if (c == 0 && proto == 17) c = 0xffff;
  store_be16(l4 + off, c);
}

}  // namespace dne
