#include "esp/transport.h"

#include "common/bytes.h"
#include "esp/esp_packet.h"

namespace dne {

namespace {

constexpr uint8_t kIp6HopByHop = 0;
constexpr uint8_t kIp6Routing = 43;
constexpr uint8_t kIp6Fragment = 44;
constexpr uint8_t kIp6DestOpts = 60;
constexpr size_t kIp6HeaderLen = 40;
constexpr int kMaxExtHeaders = 8;  // bound the walk on hostile input

Status ipv4_layout(const uint8_t* pkt, size_t len, IpLayout* l) {
  if (len < 20) return Status::kMalformed;
  const size_t ihl = static_cast<size_t>(pkt[0] & 0x0f) * 4;
  const size_t total = load_be16(pkt + 2);
  if (ihl < 20 || total < ihl || total > len) return Status::kMalformed;
  // A header with a bad checksum is dropped by every receiving IP stack
  // (RFC 1122 §3.2.1.2). Requiring the canonical value (0xffff never stands
  // for zero, RFC 1624 §3) keeps restoration byte-exact, since the checksum
  // is recomputed over the rewritten header.
  if (ipv4_header_checksum(pkt, ihl) != load_be16(pkt + 10))
    return Status::kMalformed;
  l->family = 4;
  l->hdr_len = ihl;
  l->nh_offset = 9;
  l->packet_len = total;
  l->next_header = pkt[9];
  return Status::kOk;
}

size_t ext_len(const uint8_t* h, uint8_t type) {
  return type == kIp6Fragment ? 8 : (static_cast<size_t>(h[1]) + 1) * 8;
}

// Walks the IPv6 extension headers that precede ESP in transport mode.
// For sealing, stop at the first header that belongs after ESP: RFC 4303
// §3.1.1 puts ESP after hop-by-hop, routing and fragment headers; a
// destination options header stays in front only when a routing header
// follows it (it is meant for the routing hops).
Status ipv6_layout(const uint8_t* pkt, size_t len, bool for_open,
                   IpLayout* l) {
  if (len < kIp6HeaderLen) return Status::kMalformed;
  const size_t payload = load_be16(pkt + 4);
  if (payload == 0) return Status::kUnsupported;  // jumbogram (RFC 2675)
  const size_t total = kIp6HeaderLen + payload;
  if (total > len) return Status::kMalformed;
  uint8_t nh = pkt[6];
  size_t nh_off = 6;
  size_t off = kIp6HeaderLen;
  for (int i = 0; i <= kMaxExtHeaders; ++i) {
    if (for_open && nh == kIpProtoEsp) break;
    bool skip = nh == kIp6HopByHop || nh == kIp6Routing || nh == kIp6Fragment;
    if (nh == kIp6DestOpts) {
      if (for_open) {
        skip = true;
      } else if (off + 2 <= total) {
        const size_t dl = ext_len(pkt + off, nh);
        skip = off + dl < total && pkt[off] == kIp6Routing;
      }
    }
    if (!skip) break;
    if (i == kMaxExtHeaders) return Status::kUnsupported;
    if (off + 2 > total) return Status::kMalformed;
    const size_t hl = ext_len(pkt + off, nh);
    if (off + hl > total) return Status::kMalformed;
    nh_off = off;
    nh = pkt[off];
    off += hl;
  }
  l->family = 6;
  l->hdr_len = off;
  l->nh_offset = nh_off;
  l->packet_len = total;
  l->next_header = nh;
  return Status::kOk;
}

Status ip_layout(const uint8_t* pkt, size_t len, bool for_open, IpLayout* l) {
  if (len < 1) return Status::kMalformed;
  switch (pkt[0] >> 4) {
    case 4:
      return ipv4_layout(pkt, len, l);
    case 6:
      return ipv6_layout(pkt, len, for_open, l);
    default:
      return Status::kUnsupported;
  }
}

}  // namespace

Status ip_layout_for_seal(const uint8_t* pkt, size_t len, IpLayout* out) {
  return ip_layout(pkt, len, false, out);
}

Status ip_layout_for_open(const uint8_t* pkt, size_t len, IpLayout* out) {
  const Status s = ip_layout(pkt, len, true, out);
  if (s != Status::kOk) return s;
  if (out->next_header != kIpProtoEsp) return Status::kUnsupported;
  return Status::kOk;
}

void ip_rewrite(uint8_t* hdr, const IpLayout& l, uint8_t next_header,
                size_t new_packet_len) {
  hdr[l.nh_offset] = next_header;
  if (l.family == 4) {
    store_be16(hdr + 2, static_cast<uint16_t>(new_packet_len));
    store_be16(hdr + 10, ipv4_header_checksum(hdr, l.hdr_len));
  } else {
    store_be16(hdr + 4, static_cast<uint16_t>(new_packet_len - kIp6HeaderLen));
  }
}

size_t transport_sealed_len_max(size_t len) { return len + kEspMaxOverhead; }

}  // namespace dne
