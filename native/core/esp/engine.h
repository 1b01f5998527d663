// Single-threaded ESP transport-mode engine: an SA table keyed by SPI, the
// senders of this thread, the receive windows, and per-SA counters.
//
// Pipeline:
//   seal: IP layout -> sender IV (RFC 6054) -> ESP encap -> IP header rewrite
//   open: IP layout -> SPI lookup -> replay check -> ESP decap (ICV)
//         -> replay advance -> IP header restore
//
// Threading contract: one EspEngine is used by one thread at a time. The
// filter's workers each own their own per-SA state; this class is the unit
// they compose, and what tests, the fuzzer and the addon's diagnostic surface
// drive directly.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "common/status.h"
#include "esp/esp_packet.h"
#include "esp/sa.h"
#include "esp/transform.h"
#include "esp/transport.h"

namespace dne {

struct SaCounters {
  uint64_t sealed_packets = 0;
  uint64_t sealed_bytes = 0;  // plaintext bytes in
  uint64_t opened_packets = 0;
  uint64_t opened_bytes = 0;  // plaintext bytes out
  std::array<uint64_t, kStatusCount> drops{};  // indexed by Status
};

struct SealInfo {
  uint64_t iv = 0;
  uint64_t seq = 0;
  bool sender_low = false;  // counter space below its low-water mark
};

struct SenderInfo {
  uint32_t sender_id;
  uint64_t next_counter;
  uint64_t remaining;
  bool low;
};

class EspEngine {
 public:
  // keymat = key || salt. kBadConfig for invalid parameters or a SPI that is
  // already installed.
  Status install_sa(const SaParams& p, const uint8_t* keymat, size_t len);
  // Removes the SA and wipes its key; kUnknownSpi if absent.
  Status remove_sa(uint32_t spi);
  bool has_sa(uint32_t spi) const { return sas_.count(spi) != 0; }
  size_t sa_count() const { return sas_.size(); }

  // Registers a sender ID (handed out by the key manager) on an SA.
  // kBadConfig when the ID does not fit the SA's width or is registered.
  Status add_sender(uint32_t spi, uint32_t sender_id, uint64_t first_counter = 1,
                    uint64_t low_water = 0);

  // Seals a plaintext IPv4/IPv6 packet with the sender's next IV.
  Status seal(uint32_t spi, uint32_t sender_id, const uint8_t* pkt, size_t len,
              uint8_t* out, size_t cap, size_t* out_len, SealInfo* info);
  // The same transformation with a caller-chosen sequence number and IV, for
  // known-answer and interop tests: it shares every step with seal() except
  // where the IV comes from.
  Status seal_with_iv(uint32_t spi, uint64_t seq, uint64_t iv,
                      const uint8_t* pkt, size_t len, uint8_t* out, size_t cap,
                      size_t* out_len);
  // Verifies and restores a received ESP transport-mode packet.
  Status open(const uint8_t* pkt, size_t len, uint8_t* out, size_t cap,
              size_t* out_len, OpenInfo* info);

  // Bare ESP (SPI..ICV, no IP header) for the draft-mcgrew vectors, whose
  // payloads are not transport-mode packets. Same SA state and code path.
  Status encap_payload(uint32_t spi, uint64_t seq, uint64_t iv,
                       const uint8_t* payload, size_t len, uint8_t next_header,
                       uint8_t* out, size_t cap, size_t* out_len);
  Status decap_payload(const uint8_t* esp, size_t len, uint8_t* out,
                       size_t cap, size_t* out_len, OpenInfo* info);

  const SaCounters* counters(uint32_t spi) const;
  const SenderInfo* sender_info(uint32_t spi, uint32_t sender_id,
                                SenderInfo* out) const;
  // Drops that happened before an SA was found (malformed, unknown SPI, ...).
  const std::array<uint64_t, kStatusCount>& global_drops() const {
    return global_drops_;
  }

 private:
  struct Sa {
    std::unique_ptr<SaKeys> keys;
    std::unique_ptr<AesGcm> cipher;
    ReceiveState rx;
    std::unordered_map<uint32_t, Sender> senders;
    SaCounters counters;
    Sa(std::unique_ptr<SaKeys> k, std::unique_ptr<AesGcm> c)
        : keys(std::move(k)), cipher(std::move(c)), rx(keys->params()) {}
  };

  Status seal_common(Sa& sa, const IpLayout& l, uint64_t seq, uint64_t iv,
                     const uint8_t* pkt, uint8_t* out, size_t cap,
                     size_t* out_len);
  Status count(Sa& sa, Status s) {
    if (s != Status::kOk) ++sa.counters.drops[static_cast<size_t>(s)];
    return s;
  }
  Sa* find(uint32_t spi);
  Status drop_global(Status s) {
    ++global_drops_[static_cast<size_t>(s)];
    return s;
  }

  std::unordered_map<uint32_t, std::unique_ptr<Sa>> sas_;
  std::array<uint64_t, kStatusCount> global_drops_{};
};

}  // namespace dne
