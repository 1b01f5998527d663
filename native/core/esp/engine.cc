#include "esp/engine.h"

#include <cstring>

namespace dne {

namespace {
constexpr size_t kMaxIpPacket = 65535;
}

EspEngine::Sa* EspEngine::find(uint32_t spi) {
  auto it = sas_.find(spi);
  return it == sas_.end() ? nullptr : it->second.get();
}

Status EspEngine::install_sa(const SaParams& p, const uint8_t* keymat,
                             size_t len) {
  if (sas_.count(p.spi) != 0) return Status::kBadConfig;
  Status st;
  auto keys = SaKeys::create(p, keymat, len, &st);
  if (!keys) return st;
  auto cipher = keys->make_cipher();
  if (!cipher) return Status::kBadConfig;
  sas_.emplace(p.spi, std::make_unique<Sa>(std::move(keys), std::move(cipher)));
  return Status::kOk;
}

Status EspEngine::remove_sa(uint32_t spi) {
  return sas_.erase(spi) != 0 ? Status::kOk : Status::kUnknownSpi;
}

Status EspEngine::add_sender(uint32_t spi, uint32_t sender_id,
                             uint64_t first_counter, uint64_t low_water) {
  Sa* sa = find(spi);
  if (sa == nullptr) return Status::kUnknownSpi;
  const uint8_t bits = sa->keys->params().sender_id_bits;
  if (bits < 32 && (sender_id >> bits) != 0) return Status::kBadConfig;
  if (first_counter >> (64 - bits) != 0) return Status::kBadConfig;
  if (sa->senders.count(sender_id) != 0) return Status::kBadConfig;
  sa->senders.emplace(sender_id,
                      Sender(sender_id, bits, first_counter, low_water));
  return Status::kOk;
}

Status EspEngine::seal_common(Sa& sa, uint64_t seq, uint64_t iv,
                              const uint8_t* pkt, size_t len, uint8_t* out,
                              size_t cap, size_t* out_len) {
  IpLayout l;
  Status st = ip_layout_for_seal(pkt, len, &l);
  if (st != Status::kOk) return st;
  const size_t payload_len = l.packet_len - l.hdr_len;
  const size_t new_len = l.hdr_len + esp_encap_len(payload_len);
  if (new_len > kMaxIpPacket) return Status::kNoSpace;
  if (new_len > cap) return Status::kNoSpace;
  std::memcpy(out, pkt, l.hdr_len);
  size_t esp_len = 0;
  st = esp_encap(*sa.cipher, sa.keys->params(), sa.keys->salt(), seq, iv,
                 pkt + l.hdr_len, payload_len, l.next_header, out + l.hdr_len,
                 cap - l.hdr_len, &esp_len);
  if (st != Status::kOk) return st;
  ip_rewrite(out, l, kIpProtoEsp, new_len);
  *out_len = new_len;
  ++sa.counters.sealed_packets;
  sa.counters.sealed_bytes += l.packet_len;
  return Status::kOk;
}

Status EspEngine::seal(uint32_t spi, uint32_t sender_id, const uint8_t* pkt,
                       size_t len, uint8_t* out, size_t cap, size_t* out_len,
                       SealInfo* info) {
  Sa* sa = find(spi);
  if (sa == nullptr) return drop_global(Status::kUnknownSpi);
  auto it = sa->senders.find(sender_id);
  if (it == sa->senders.end()) {
    ++sa->counters.drops[static_cast<size_t>(Status::kBadConfig)];
    return Status::kBadConfig;
  }
  // Check the packet before spending a counter value on it.
  IpLayout l;
  Status st = ip_layout_for_seal(pkt, len, &l);
  if (st == Status::kOk &&
      l.hdr_len + esp_encap_len(l.packet_len - l.hdr_len) > cap)
    st = Status::kNoSpace;
  if (st != Status::kOk) {
    ++sa->counters.drops[static_cast<size_t>(st)];
    return st;
  }
  uint64_t iv = 0, counter = 0;
  st = it->second.next(&iv, &counter);
  if (st != Status::kOk) {
    ++sa->counters.drops[static_cast<size_t>(st)];
    return st;
  }
  // The ESP sequence number carries the counter's low 32 bits; replay
  // protection uses the full counter from the IV (RFC 6054 §3).
  st = seal_common(*sa, counter, iv, pkt, len, out, cap, out_len);
  if (st != Status::kOk) {
    ++sa->counters.drops[static_cast<size_t>(st)];
    return st;
  }
  if (info != nullptr) {
    info->iv = iv;
    info->seq = counter;
    info->sender_low = it->second.is_low();
  }
  return Status::kOk;
}

Status EspEngine::seal_with_iv(uint32_t spi, uint64_t seq, uint64_t iv,
                               const uint8_t* pkt, size_t len, uint8_t* out,
                               size_t cap, size_t* out_len) {
  Sa* sa = find(spi);
  if (sa == nullptr) return drop_global(Status::kUnknownSpi);
  return seal_common(*sa, seq, iv, pkt, len, out, cap, out_len);
}

Status EspEngine::open_esp(Sa& sa, const EspHeader& h, const uint8_t* esp,
                           size_t len, uint8_t* out, size_t cap,
                           size_t* payload_len, OpenInfo* info) {
  const SaParams& p = sa.keys->params();
  uint32_t sender_id = 0;
  uint64_t counter = 0;
  uint32_t seq_hi = 0;
  if (p.replay_mode == ReplayMode::kIvCounter) {
    split_iv(h.iv, p.sender_id_bits, &sender_id, &counter);
  } else {
    seq_hi = p.esn ? sa.rx.seq_hi_for(h.seq_lo) : 0;
    counter = (static_cast<uint64_t>(seq_hi) << 32) | h.seq_lo;
  }
  if (p.replay_mode == ReplayMode::kIvCounter && p.esn) {
    // ESN on a group SA: the high half is the counter's (RFC 6054 keeps the
    // sequence number tied to the IV counter).
    seq_hi = static_cast<uint32_t>(counter >> 32);
  }
  // RFC 4303 §3.4.3: duplicate check before the ICV, window moves after it.
  Status st = sa.rx.check(sender_id, counter);
  if (st == Status::kOk) {
    uint8_t nh = 0;
    st = esp_decap(*sa.cipher, p, sa.keys->salt(), seq_hi, esp, len, out, cap,
                   payload_len, &nh);
    if (st == Status::kOk) st = sa.rx.advance(sender_id, counter);
    if (st == Status::kOk && info != nullptr) {
      info->spi = h.spi;
      info->sender_id = sender_id;
      info->counter = counter;
      info->seq = (static_cast<uint64_t>(seq_hi) << 32) | h.seq_lo;
      info->next_header = nh;
    }
  }
  if (st != Status::kOk) {
    ++sa.counters.drops[static_cast<size_t>(st)];
    return st;
  }
  ++sa.counters.opened_packets;
  sa.counters.opened_bytes += *payload_len;
  return Status::kOk;
}

Status EspEngine::open(const uint8_t* pkt, size_t len, uint8_t* out,
                       size_t cap, size_t* out_len, OpenInfo* info) {
  IpLayout l;
  Status st = ip_layout_for_open(pkt, len, &l);
  if (st != Status::kOk) return drop_global(st);
  const uint8_t* esp = pkt + l.hdr_len;
  const size_t esp_len = l.packet_len - l.hdr_len;
  EspHeader h;
  st = esp_read_header(esp, esp_len, &h);
  if (st != Status::kOk) return drop_global(st);
  Sa* sa = find(h.spi);
  if (sa == nullptr) return drop_global(Status::kUnknownSpi);
  // The decrypted body (payload + padding + trailer) is written right after
  // the kept header; it is never longer than the ESP packet.
  if (cap < l.hdr_len + esp_len) {
    ++sa->counters.drops[static_cast<size_t>(Status::kNoSpace)];
    return Status::kNoSpace;
  }
  OpenInfo local;
  OpenInfo* oi = info != nullptr ? info : &local;
  size_t payload_len = 0;
  st = open_esp(*sa, h, esp, esp_len, out + l.hdr_len, cap - l.hdr_len,
                &payload_len, oi);
  if (st != Status::kOk) return st;
  std::memcpy(out, pkt, l.hdr_len);
  ip_rewrite(out, l, oi->next_header, l.hdr_len + payload_len);
  *out_len = l.hdr_len + payload_len;
  return Status::kOk;
}

Status EspEngine::encap_payload(uint32_t spi, uint64_t seq, uint64_t iv,
                                const uint8_t* payload, size_t len,
                                uint8_t next_header, uint8_t* out, size_t cap,
                                size_t* out_len) {
  Sa* sa = find(spi);
  if (sa == nullptr) return drop_global(Status::kUnknownSpi);
  return esp_encap(*sa->cipher, sa->keys->params(), sa->keys->salt(), seq, iv,
                   payload, len, next_header, out, cap, out_len);
}

Status EspEngine::decap_payload(const uint8_t* esp, size_t len, uint8_t* out,
                                size_t cap, size_t* out_len, OpenInfo* info) {
  EspHeader h;
  Status st = esp_read_header(esp, len, &h);
  if (st != Status::kOk) return drop_global(st);
  Sa* sa = find(h.spi);
  if (sa == nullptr) return drop_global(Status::kUnknownSpi);
  OpenInfo local;
  return open_esp(*sa, h, esp, len, out, cap, out_len,
                  info != nullptr ? info : &local);
}

const SaCounters* EspEngine::counters(uint32_t spi) const {
  auto it = sas_.find(spi);
  return it == sas_.end() ? nullptr : &it->second->counters;
}

const SenderInfo* EspEngine::sender_info(uint32_t spi, uint32_t sender_id,
                                         SenderInfo* out) const {
  auto it = sas_.find(spi);
  if (it == sas_.end()) return nullptr;
  auto s = it->second->senders.find(sender_id);
  if (s == it->second->senders.end()) return nullptr;
  *out = {sender_id, s->second.next_counter(), s->second.remaining(),
          s->second.is_low()};
  return out;
}

}  // namespace dne
