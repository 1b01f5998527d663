#include "net/checksum.h"

#include <cstring>

#include "common/bytes.h"

namespace dne {

uint64_t csum_add(const uint8_t* p, size_t len, uint64_t sum) {
  // RFC 1071 §2(B): the one's-complement sum is byte-order independent, so
  // sum native 32-bit words into 64 bits (carries deferred) and swap the
  // folded result once. Four independent accumulators keep the adds from
  // serialising.
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 16 <= len; i += 16) {
    uint32_t w[4];
    std::memcpy(w, p + i, 16);
    a += w[0];
    b += w[1];
    c += w[2];
    d += w[3];
  }
  uint64_t n = a + b + c + d;  // < 2^36 per 4 GiB: no overflow
  for (; i + 4 <= len; i += 4) {
    uint32_t w;
    std::memcpy(&w, p + i, 4);
    n += w;
  }
  uint8_t tail[4] = {0, 0, 0, 0};
  if (i < len) {
    std::memcpy(tail, p + i, len - i);
    uint32_t w;
    std::memcpy(&w, tail, 4);
    n += w;
  }
  // Fold to 16 bits in native order, then to network order.
  while (n >> 16) n = (n & 0xffff) + (n >> 16);
  const uint16_t native = static_cast<uint16_t>(n);
  return sum + static_cast<uint16_t>((native >> 8) | (native << 8));
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
