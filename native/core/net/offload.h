// Software completion of what veth/tap offloads leave undone (DESIGN §4):
// frames arrive as GSO super-packets and with partial checksums, described
// by a virtio_net_hdr (PACKET_VNET_HDR). Before ESP can be applied, every
// segment must be a complete, MTU-sized IP packet with final checksums.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/bytes.h"
#include "common/status.h"
#include "net/checksum.h"
#include "net/frame.h"

namespace dne {

// struct virtio_net_hdr (linux/virtio_net.h); AF_PACKET fills it in host
// byte order.
struct VnetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
static_assert(sizeof(VnetHdr) == 10, "virtio_net_hdr is 10 bytes");
inline constexpr uint8_t kVnetNeedsCsum = 1;
inline constexpr uint8_t kGsoNone = 0;
inline constexpr uint8_t kGsoTcpV4 = 1;
inline constexpr uint8_t kGsoUdp = 3;  // UFO, obsolete
inline constexpr uint8_t kGsoTcpV6 = 4;
inline constexpr uint8_t kGsoUdpL4 = 5;
inline constexpr uint8_t kGsoEcn = 0x80;

// Finishes a partial checksum in place: the field at csum_start+csum_offset
// holds the pseudo-header sum, the sum over [csum_start, end) completes it.
bool complete_checksum(uint8_t* frame, size_t len, uint16_t csum_start,
                       uint16_t csum_offset);

// Lowers the TCP MSS option of a SYN to `mss` if it is larger. When the
// checksum is final it is updated incrementally (RFC 1624 eqn. 3); a partial
// checksum does not cover the options yet and is left alone.
bool clamp_tcp_mss(uint8_t* frame, const ParsedFrame& p, uint16_t mss,
                   bool checksum_is_partial);

// Splits the IP packet of a GSO frame into segments of gso_size payload
// bytes (TCP: RFC 9293 sequence numbers and flags per segment; UDP_L4: one
// datagram each), each written to `scratch` with complete headers and
// checksums and handed to emit(ip, len) before the next is built.
// kUnsupported for GSO types other than TCPv4/TCPv6/UDP_L4.
template <typename Emit>
Status gso_segment(const uint8_t* frame, const ParsedFrame& p,
                   const VnetHdr& h, uint8_t* scratch, size_t cap, Emit&& emit);

// Fragments an IPv4 packet (RFC 791 §3.2) so that no fragment exceeds
// max_ip_len; a packet that is already a fragment keeps its offset and MF.
template <typename Emit>
Status ipv4_fragment(const uint8_t* ip, size_t ip_len, size_t max_ip_len,
                     uint8_t* scratch, size_t cap, Emit&& emit);

// ---------------------------------------------------------------------------

namespace detail {
void fix_ipv4_header(uint8_t* ip, size_t total_len, uint16_t id);
}

template <typename Emit>
Status gso_segment(const uint8_t* frame, const ParsedFrame& p,
                   const VnetHdr& h, uint8_t* scratch, size_t cap, Emit&& emit) {
  const uint8_t type = h.gso_type & ~kGsoEcn;
  const bool tcp = type == kGsoTcpV4 || type == kGsoTcpV6;
  if (!(tcp || type == kGsoUdpL4)) return Status::kUnsupported;
  if (tcp && p.l4_proto != 6) return Status::kMalformed;
  if (!tcp && p.l4_proto != 17) return Status::kMalformed;
  if (h.gso_size == 0) return Status::kMalformed;
  const uint8_t* ip = frame + p.l3_off;
  const size_t l4 = p.l4_off - p.l3_off;  // IP (and extension) header bytes
  size_t l4_hdr = 8;
  if (tcp) {
    if (p.l4_off + 20 > p.l3_off + p.ip_len) return Status::kMalformed;
    l4_hdr = static_cast<size_t>(frame[p.l4_off + 12] >> 4) * 4;
    if (l4_hdr < 20) return Status::kMalformed;
  }
  const size_t hdrs = l4 + l4_hdr;
  if (hdrs > p.ip_len) return Status::kMalformed;
  const size_t payload = p.ip_len - hdrs;
  const uint16_t id0 = p.family == 4 ? load_be16(ip + 4) : 0;
  const uint32_t seq0 = tcp ? load_be32(ip + l4 + 4) : 0;
  const uint8_t flags0 = tcp ? ip[l4 + 13] : 0;
  size_t done = 0;
  for (uint16_t i = 0; done < payload || (payload == 0 && i == 0); ++i) {
    const size_t chunk = payload - done < h.gso_size ? payload - done : h.gso_size;
    const size_t seg_len = hdrs + chunk;
    if (seg_len > cap) return Status::kNoSpace;
    std::memcpy(scratch, ip, hdrs);
    std::memcpy(scratch + hdrs, ip + hdrs + done, chunk);
    uint8_t* l4p = scratch + l4;
    if (p.family == 4)
      detail::fix_ipv4_header(scratch, seg_len, static_cast<uint16_t>(id0 + i));
    else
      store_be16(scratch + 4, static_cast<uint16_t>(seg_len - 40));
    const bool last = done + chunk >= payload;
    if (tcp) {
      store_be32(l4p + 4, seq0 + static_cast<uint32_t>(done));
      uint8_t f = flags0;
      if (!last) f &= static_cast<uint8_t>(~0x09);  // FIN, PSH only on the last
      if (i != 0) f &= static_cast<uint8_t>(~0x80);  // CWR only on the first
      l4p[13] = f;
    } else {
      store_be16(l4p + 4, static_cast<uint16_t>(l4_hdr + chunk));
    }
    set_l4_checksum(p.family, scratch + (p.family == 4 ? 12 : 8),
                    scratch + (p.family == 4 ? 16 : 24), p.l4_proto, l4p,
                    seg_len - l4);
    emit(scratch, seg_len);
    done += chunk;
    if (payload == 0) break;
  }
  return Status::kOk;
}

template <typename Emit>
Status ipv4_fragment(const uint8_t* ip, size_t ip_len, size_t max_ip_len,
                     uint8_t* scratch, size_t cap, Emit&& emit) {
  const size_t ihl = static_cast<size_t>(ip[0] & 15) * 4;
  // Fragment data sizes are multiples of 8 octets (RFC 791).
  const size_t per = ((max_ip_len - ihl) / 8) * 8;
  if (per == 0) return Status::kMtu;
  const uint16_t frag = load_be16(ip + 6);
  const uint16_t base_off = frag & 0x1fff;  // in 8-octet units
  const bool orig_mf = (frag & 0x2000) != 0;
  const size_t data = ip_len - ihl;
  for (size_t done = 0; done < data; done += per) {
    const size_t chunk = data - done < per ? data - done : per;
    if (ihl + chunk > cap) return Status::kNoSpace;
    // Options are copied into every fragment; the copied-flag distinction
    // (RFC 791 option types) only matters for options a host would add.
    std::memcpy(scratch, ip, ihl);
    std::memcpy(scratch + ihl, ip + ihl + done, chunk);
    const bool mf = done + chunk < data || orig_mf;
    const uint16_t off = static_cast<uint16_t>(base_off + done / 8);
    store_be16(scratch + 6, static_cast<uint16_t>((frag & 0x4000) | (mf ? 0x2000 : 0) | off));
    detail::fix_ipv4_header(scratch, ihl + chunk, load_be16(ip + 4));
    emit(scratch, ihl + chunk);
  }
  return Status::kOk;
}

}  // namespace dne
