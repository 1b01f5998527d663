#include "esp/transform.h"

#include <cstring>

namespace dne {

namespace {
constexpr size_t kMaxIpPacket = 65535;
}

Status transport_seal(AesGcm& gcm, const SaKeys& sa, const IpLayout& l,
                      uint64_t seq, uint64_t iv, const uint8_t* pkt,
                      uint8_t* out, size_t cap, size_t* out_len) {
  const size_t payload_len = l.packet_len - l.hdr_len;
  const size_t new_len = l.hdr_len + esp_encap_len(payload_len);
  if (new_len > kMaxIpPacket || new_len > cap) return Status::kNoSpace;
  std::memcpy(out, pkt, l.hdr_len);
  size_t esp_len = 0;
  const Status st =
      esp_encap(gcm, sa.params(), sa.salt(), seq, iv, pkt + l.hdr_len,
                payload_len, l.next_header, out + l.hdr_len, cap - l.hdr_len,
                &esp_len);
  if (st != Status::kOk) return st;
  ip_rewrite(out, l, kIpProtoEsp, new_len);
  *out_len = new_len;
  return Status::kOk;
}

Status esp_open_checked(AesGcm& gcm, const SaKeys& sa, ReceiveState& rx,
                        const EspHeader& h, const uint8_t* esp, size_t len,
                        uint8_t* out, size_t cap, size_t* payload_len,
                        OpenInfo* info) {
  const SaParams& p = sa.params();
  uint32_t sender_id = 0;
  uint64_t counter = 0;
  uint32_t seq_hi = 0;
  if (p.replay_mode == ReplayMode::kIvCounter) {
    split_iv(h.iv, p.sender_id_bits, &sender_id, &counter);
    // ESN on a group SA: the high half is the counter's, which the sender
    // used as its sequence number (RFC 6054 ties them together).
    if (p.esn) seq_hi = static_cast<uint32_t>(counter >> 32);
  } else {
    seq_hi = p.esn ? rx.seq_hi_for(h.seq_lo) : 0;
    counter = (static_cast<uint64_t>(seq_hi) << 32) | h.seq_lo;
  }
  Status st = rx.check(sender_id, counter);
  if (st != Status::kOk) return st;
  uint8_t nh = 0;
  st = esp_decap(gcm, p, sa.salt(), seq_hi, esp, len, out, cap, payload_len,
                 &nh);
  if (st != Status::kOk) return st;
  st = rx.advance(sender_id, counter);
  if (st != Status::kOk) return st;
  info->spi = h.spi;
  info->sender_id = sender_id;
  info->counter = counter;
  info->seq = (static_cast<uint64_t>(seq_hi) << 32) | h.seq_lo;
  info->next_header = nh;
  return Status::kOk;
}

Status transport_open(AesGcm& gcm, const SaKeys& sa, ReceiveState& rx,
                      const IpLayout& l, const EspHeader& h,
                      const uint8_t* pkt, uint8_t* out, size_t cap,
                      size_t* out_len, OpenInfo* info) {
  const size_t esp_len = l.packet_len - l.hdr_len;
  // The decrypted body (payload + padding + trailer) is written right after
  // the kept header; it is never longer than the ESP packet.
  if (cap < l.hdr_len + esp_len) return Status::kNoSpace;
  size_t payload_len = 0;
  const Status st = esp_open_checked(gcm, sa, rx, h, pkt + l.hdr_len, esp_len,
                                     out + l.hdr_len, cap - l.hdr_len,
                                     &payload_len, info);
  if (st != Status::kOk) return st;
  std::memcpy(out, pkt, l.hdr_len);
  ip_rewrite(out, l, info->next_header, l.hdr_len + payload_len);
  *out_len = l.hdr_len + payload_len;
  return Status::kOk;
}

}  // namespace dne
