// ESP transport mode (RFC 4303 §3.1.1): the ESP header goes between the IP
// header (with its options, or with IPv6 hop-by-hop, routing and fragment
// headers) and the upper-layer data; the IP header stays readable so the host
// network forwards the packet unchanged.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"

namespace dne {

struct IpLayout {
  uint8_t family = 0;      // 4 or 6
  size_t hdr_len = 0;      // bytes kept in front of the ESP header
  size_t nh_offset = 0;    // byte holding the protocol / next header to patch
  size_t packet_len = 0;   // length per the IP header (trailing bytes ignored)
  uint8_t next_header = 0; // protocol found at hdr_len
};

// Finds where ESP goes in a plaintext packet. kUnsupported for non-IP data or
// IPv6 jumbograms, kMalformed for inconsistent lengths.
Status ip_layout_for_seal(const uint8_t* pkt, size_t len, IpLayout* out);

// Finds the ESP header of a received packet; kUnsupported when the packet
// carries no ESP at the transport-mode position.
Status ip_layout_for_open(const uint8_t* pkt, size_t len, IpLayout* out);

// Rewrites the kept header in `hdr` (already copied to the output) for a new
// next header and a new total packet length: IPv4 protocol, total length and
// header checksum (RFC 791), or the IPv6 next-header byte and payload length
// (RFC 8200 §3).
void ip_rewrite(uint8_t* hdr, const IpLayout& l, uint8_t next_header,
                size_t new_packet_len);

// The maximum packet length after sealing a packet of `len` bytes.
size_t transport_sealed_len_max(size_t len);

}  // namespace dne
