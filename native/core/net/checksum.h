// Internet checksum arithmetic (RFC 1071) for building and completing L4
// checksums in software, which the filter must do because frames from
// veth/tap arrive with partial checksums and as GSO super-packets
// (offloads stay on, DESIGN §4).
#pragma once

#include <cstddef>
#include <cstdint>

namespace dne {

// One's-complement sum of a buffer, accumulated wide and folded by the
// caller. The result can be fed back in as `sum` to continue.
uint64_t csum_add(const uint8_t* p, size_t len, uint64_t sum);
uint16_t csum_fold(uint64_t sum);  // folds to 16 bits, not inverted

// Pseudo-header sum (RFC 793 / RFC 8200 §8.1) for protocol `proto` and
// upper-layer length `len`.
uint64_t pseudo_header_sum(uint8_t family, const uint8_t* src,
                           const uint8_t* dst, uint8_t proto, uint32_t len);

// Computes and stores the full checksum of the upper-layer segment at `l4`
// (length `len`) of `proto` (TCP, UDP, ICMPv6; ICMPv4 has no pseudo header).
void set_l4_checksum(uint8_t family, const uint8_t* src, const uint8_t* dst,
                     uint8_t proto, uint8_t* l4, size_t len);

// Offset of the checksum field inside an upper-layer header, or -1.
int l4_checksum_offset(uint8_t proto);

}  // namespace dne
