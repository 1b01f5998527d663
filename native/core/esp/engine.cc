#include "esp/engine.h"

#include <cstring>

namespace dne {

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
  const SaParams& p = sa->keys->params();
  const uint64_t cap =
      p.replay_mode == ReplayMode::kEspSeq && !p.esn ? 0xffffffffull : 0;
  sa->senders.emplace(sender_id,
                      Sender(sender_id, bits, first_counter, low_water, cap));
  return Status::kOk;
}

Status EspEngine::seal_common(Sa& sa, const IpLayout& l, uint64_t seq,
                              uint64_t iv, const uint8_t* pkt, uint8_t* out,
                              size_t cap, size_t* out_len) {
  const Status st =
      transport_seal(*sa.cipher, *sa.keys, l, seq, iv, pkt, out, cap, out_len);
  if (st != Status::kOk) return st;
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
  if (it == sa->senders.end()) return count(*sa, Status::kBadConfig);
  // Check the packet before spending a counter value on it.
  IpLayout l;
  Status st = ip_layout_for_seal(pkt, len, &l);
  if (st == Status::kOk &&
      l.hdr_len + esp_encap_len(l.packet_len - l.hdr_len) > cap)
    st = Status::kNoSpace;
  if (st != Status::kOk) return count(*sa, st);
  uint64_t iv = 0, counter = 0;
  st = it->second.next(&iv, &counter);
  if (st != Status::kOk) return count(*sa, st);
  // The ESP sequence number carries the counter's low 32 bits; replay
  // protection uses the full counter from the IV (RFC 6054 §3).
  st = seal_common(*sa, l, counter, iv, pkt, out, cap, out_len);
  if (st != Status::kOk) return count(*sa, st);
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
  IpLayout l;
  const Status st = ip_layout_for_seal(pkt, len, &l);
  if (st != Status::kOk) return count(*sa, st);
  return count(*sa, seal_common(*sa, l, seq, iv, pkt, out, cap, out_len));
}

Status EspEngine::open(const uint8_t* pkt, size_t len, uint8_t* out,
                       size_t cap, size_t* out_len, OpenInfo* info) {
  IpLayout l;
  Status st = ip_layout_for_open(pkt, len, &l);
  if (st != Status::kOk) return drop_global(st);
  EspHeader h;
  st = esp_read_header(pkt + l.hdr_len, l.packet_len - l.hdr_len, &h);
  if (st != Status::kOk) return drop_global(st);
  Sa* sa = find(h.spi);
  if (sa == nullptr) return drop_global(Status::kUnknownSpi);
  OpenInfo local;
  st = transport_open(*sa->cipher, *sa->keys, sa->rx, l, h, pkt, out, cap,
                      out_len, info != nullptr ? info : &local);
  if (st != Status::kOk) return count(*sa, st);
  ++sa->counters.opened_packets;
  sa->counters.opened_bytes += *out_len;
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
  st = esp_open_checked(*sa->cipher, *sa->keys, sa->rx, h, esp, len, out, cap,
                        out_len, info != nullptr ? info : &local);
  if (st != Status::kOk) return count(*sa, st);
  ++sa->counters.opened_packets;
  sa->counters.opened_bytes += *out_len;
  return Status::kOk;
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
