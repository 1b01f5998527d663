// The ESP transformations on one SA, shared by the single-threaded EspEngine
// and the filter's workers, so tests of one exercise the other's code:
//   transport_seal: ESP encap between the kept IP header and the payload
//   esp_open_checked: replay check -> decap (ICV) -> replay advance
//   transport_open: the same behind a transport-mode IP header
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "crypto/aes_gcm.h"
#include "esp/esp_packet.h"
#include "esp/sa.h"
#include "esp/transport.h"

namespace dne {

struct OpenInfo {
  uint32_t spi = 0;
  uint32_t sender_id = 0;
  uint64_t counter = 0;  // IV counter (kIvCounter) or full sequence number
  uint64_t seq = 0;
  uint8_t next_header = 0;
};

// Seals the packet whose layout `l` was computed by ip_layout_for_seal.
Status transport_seal(AesGcm& gcm, const SaKeys& sa, const IpLayout& l,
                      uint64_t seq, uint64_t iv, const uint8_t* pkt,
                      uint8_t* out, size_t cap, size_t* out_len);

// Verifies and decrypts a bare ESP packet of a known SA, with the anti-replay
// check before and the window update after the ICV (RFC 4303 §3.4.3).
// Writes payload + trailer bytes to `out` (needs len - 32 bytes) and the
// payload length to *payload_len.
Status esp_open_checked(AesGcm& gcm, const SaKeys& sa, ReceiveState& rx,
                        const EspHeader& h, const uint8_t* esp, size_t len,
                        uint8_t* out, size_t cap, size_t* payload_len,
                        OpenInfo* info);

// Opens the transport-mode packet whose layout `l` came from
// ip_layout_for_open; writes the restored IP packet to `out`.
Status transport_open(AesGcm& gcm, const SaKeys& sa, ReceiveState& rx,
                      const IpLayout& l, const EspHeader& h,
                      const uint8_t* pkt, uint8_t* out, size_t cap,
                      size_t* out_len, OpenInfo* info);

}  // namespace dne
