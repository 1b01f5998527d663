// ESP framing (RFC 4303 §2) with the AES-GCM / GMAC transforms, independent of
// the IP header around it. Framing and padding are kept apart from the crypto
// calls, as in Linux esp4.c (esp_output_head / esp_output_tail).
//
// Layout, from the SPI to the end:
//   SPI(4) | Sequence(4) | IV(8) | payload | padding | pad len(1) | next hdr(1) | ICV(16)
// GCM (RFC 4106): payload..next hdr is ciphertext; AAD = SPI || [seq_hi] || seq.
// GMAC (RFC 4543 §3): nothing is encrypted; AAD = SPI || [seq_hi] || seq || IV
//   || payload || padding || pad len || next hdr, plaintext empty.
// Nonce (both): salt(4) || IV(8) (RFC 4106 §4).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "crypto/aes_gcm.h"
#include "esp/sa.h"

namespace dne {

inline constexpr size_t kEspHeaderLen = 8;  // SPI + sequence number
inline constexpr size_t kEspIvLen = 8;
inline constexpr size_t kEspTrailerLen = 2;  // pad length + next header
inline constexpr size_t kEspMinLen =
    kEspHeaderLen + kEspIvLen + kEspTrailerLen + kGcmTagLen;
// Header + IV + worst-case padding (3) + trailer + ICV.
inline constexpr size_t kEspMaxOverhead =
    kEspHeaderLen + kEspIvLen + 3 + kEspTrailerLen + kGcmTagLen;
inline constexpr uint8_t kIpProtoEsp = 50;

// RFC 4106 §3 / RFC 4543 §3.2: no block alignment, only the 4-byte alignment
// of RFC 4303 §2.4 for payload + padding + trailer.
inline size_t esp_pad_len(size_t payload_len) {
  return (4 - ((payload_len + kEspTrailerLen) & 3)) & 3;
}
inline size_t esp_encap_len(size_t payload_len) {
  return kEspHeaderLen + kEspIvLen + payload_len + esp_pad_len(payload_len) +
         kEspTrailerLen + kGcmTagLen;
}

// Fields readable before any crypto.
struct EspHeader {
  uint32_t spi;
  uint32_t seq_lo;
  uint64_t iv;
};
// kMalformed when shorter than the smallest valid ESP packet.
Status esp_read_header(const uint8_t* esp, size_t len, EspHeader* h);

// Writes a complete ESP packet (SPI..ICV) for `payload` at `out`. `seq` is the
// 64-bit sequence number (only its low 32 bits go on the wire; the high ones
// are authenticated when the SA has ESN). `payload` must not overlap `out`.
Status esp_encap(AesGcm& gcm, const SaParams& sa, const uint8_t salt[kSaltLen],
                 uint64_t seq, uint64_t iv, const uint8_t* payload, size_t len,
                 uint8_t next_header, uint8_t* out, size_t cap,
                 size_t* out_len);

// Verifies (and for GCM decrypts) the ESP packet at `esp`, writing the payload
// without padding and trailer to `out`. seq_hi is the high half used in the
// AAD when the SA has ESN. `out` must not overlap `esp`.
Status esp_decap(AesGcm& gcm, const SaParams& sa, const uint8_t salt[kSaltLen],
                 uint32_t seq_hi, const uint8_t* esp, size_t len, uint8_t* out,
                 size_t cap, size_t* payload_len, uint8_t* next_header);

}  // namespace dne
