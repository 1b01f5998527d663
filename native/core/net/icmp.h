// ICMP errors the filter sends back to a workload when a packet would not
// fit the network once ESP is added (DESIGN §4): IPv4 "fragmentation needed"
// (RFC 792, RFC 1191 §4) and ICMPv6 "packet too big" (RFC 4443 §3.2), built
// so that the workload's kernel accepts them and lowers its path MTU.
#pragma once

#include <cstddef>
#include <cstdint>

#include "net/frame.h"

namespace dne {

// Builds a whole Ethernet frame back to the sender of `frame` (MACs swapped,
// addressed from the packet's destination) into `out`; returns its length,
// or 0 if it cannot be built.
size_t build_frag_needed(const uint8_t* frame, const ParsedFrame& p,
                         uint16_t mtu, uint8_t* out, size_t cap);
size_t build_packet_too_big(const uint8_t* frame, const ParsedFrame& p,
                            uint32_t mtu, uint8_t* out, size_t cap);

}  // namespace dne
