// Network byte order loads and stores on unaligned buffers. Packets arrive at
// any alignment (ring frames, Buffers), so every access goes through memcpy,
// which compilers turn into a single move plus bswap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace dne {

inline uint16_t load_be16(const uint8_t* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
inline uint32_t load_be32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return __builtin_bswap32(v);
}
inline uint64_t load_be64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return __builtin_bswap64(v);
}
inline void store_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void store_be32(uint8_t* p, uint32_t v) {
  v = __builtin_bswap32(v);
  std::memcpy(p, &v, 4);
}
inline void store_be64(uint8_t* p, uint64_t v) {
  v = __builtin_bswap64(v);
  std::memcpy(p, &v, 8);
}

// RFC 1071 Internet checksum over a header (IPv4 header checksum).
inline uint16_t inet_checksum(const uint8_t* p, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += load_be16(p + i);
  if (len & 1) sum += static_cast<uint32_t>(p[len - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// The IPv4 header checksum (RFC 791) of a header, computed as if its checksum
// field (bytes 10-11) were zero.
inline uint16_t ipv4_header_checksum(const uint8_t* hdr, size_t ihl) {
  // IHL is a multiple of 4: sum 32-bit words, then take the stored checksum
  // field back out (one's-complement subtraction = adding its complement).
  uint64_t sum = 0;
  for (size_t i = 0; i + 4 <= ihl; i += 4) sum += load_be32(hdr + i);
  sum += static_cast<uint16_t>(~load_be16(hdr + 10));
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace dne
