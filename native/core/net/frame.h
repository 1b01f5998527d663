// Parsing of the frames the filter sees: Ethernet (with one optional 802.1Q
// / 802.1ad tag), IPv4 or IPv6 with extension headers, and the upper-layer
// ports that classification needs.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tables/rules.h"

namespace dne {

inline constexpr size_t kEthHeaderLen = 14;
inline constexpr uint16_t kEthIpv4 = 0x0800;
inline constexpr uint16_t kEthIpv6 = 0x86dd;

struct ParsedFrame {
  size_t l3_off = 0;        // start of the IP header
  uint16_t ethertype = 0;   // after any VLAN tag
  uint8_t family = 0;       // 4, 6, or 0 for non-IP
  size_t ip_len = 0;        // IP packet length per its header
  size_t l4_off = 0;        // upper-layer header offset from frame start (0: none)
  uint8_t l4_proto = 0;     // upper-layer protocol (50 for ESP)
  bool fragment = false;    // IPv4 MF/offset or IPv6 fragment header
  bool first_fragment = false;
  bool df = false;          // IPv4 don't-fragment
  uint32_t frag_id = 0;
  uint8_t tcp_flags = 0;
  FlowKey key;
};

// false for frames too short or inconsistent to be handled as IP; non-IP
// frames return true with family 0.
bool parse_frame(const uint8_t* frame, size_t len, ParsedFrame* out);

// Whether the packet is control traffic that must pass untouched whatever
// the rules say: IPv6 neighbour discovery, router solicitation and
// advertisement, MLD (ICMPv6 130-137, 143) and DHCP/DHCPv6.
bool is_link_control(const ParsedFrame& p, const uint8_t* frame);

}  // namespace dne
