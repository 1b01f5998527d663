#include "esp/esp_packet.h"

#include <cstring>

#include "common/bytes.h"

namespace dne {

namespace {

void make_nonce(const uint8_t salt[kSaltLen], const uint8_t* iv_wire,
                uint8_t nonce[kGcmNonceLen]) {
  std::memcpy(nonce, salt, kSaltLen);
  std::memcpy(nonce + kSaltLen, iv_wire, kEspIvLen);
}

// SPI || [seq_hi] || seq_lo: RFC 4106 §5 (and RFC 4543 §3.3 for the first
// part of GMAC's AAD). Returns its length, 8 or 12.
size_t make_aad_head(const uint8_t* esp, bool esn, uint32_t seq_hi,
                     uint8_t head[12]) {
  std::memcpy(head, esp, 4);  // SPI
  if (!esn) {
    std::memcpy(head + 4, esp + 4, 4);
    return 8;
  }
  store_be32(head + 4, seq_hi);
  std::memcpy(head + 8, esp + 4, 4);
  return 12;
}

}  // namespace

Status esp_read_header(const uint8_t* esp, size_t len, EspHeader* h) {
  if (len < kEspMinLen) return Status::kMalformed;
  h->spi = load_be32(esp);
  h->seq_lo = load_be32(esp + 4);
  h->iv = load_be64(esp + 8);
  return Status::kOk;
}

Status esp_encap(AesGcm& gcm, const SaParams& sa, const uint8_t salt[kSaltLen],
                 uint64_t seq, uint64_t iv, const uint8_t* payload, size_t len,
                 uint8_t next_header, uint8_t* out, size_t cap,
                 size_t* out_len) {
  const size_t pad = esp_pad_len(len);
  const size_t total = esp_encap_len(len);
  if (total > cap) return Status::kNoSpace;

  store_be32(out, sa.spi);
  store_be32(out + 4, static_cast<uint32_t>(seq));
  store_be64(out + 8, iv);
  uint8_t* body = out + kEspHeaderLen + kEspIvLen;
  if (len > 0) std::memcpy(body, payload, len);
  // RFC 4303 §2.4: default padding bytes are 1, 2, 3, ...
  for (size_t i = 0; i < pad; ++i) body[len + i] = static_cast<uint8_t>(i + 1);
  body[len + pad] = static_cast<uint8_t>(pad);
  body[len + pad + 1] = next_header;
  const size_t body_len = len + pad + kEspTrailerLen;
  uint8_t* icv = body + body_len;

  uint8_t nonce[kGcmNonceLen];
  make_nonce(salt, out + kEspHeaderLen, nonce);
  uint8_t head[12];
  const size_t head_len =
      make_aad_head(out, sa.esn, static_cast<uint32_t>(seq >> 32), head);

  bool ok;
  if (sa.mode == EspMode::kGcm) {
    const Span aad[1] = {{head, head_len}};
    ok = gcm.seal(nonce, aad, 1, body, body, body_len, icv);
  } else {
    // RFC 4543 §3.3: IV, payload and trailer are all AAD, in wire order.
    const Span aad[2] = {{head, head_len},
                         {out + kEspHeaderLen, kEspIvLen + body_len}};
    ok = gcm.seal(nonce, aad, 2, nullptr, nullptr, 0, icv);
  }
  if (!ok) return Status::kBadConfig;
  *out_len = total;
  return Status::kOk;
}

Status esp_decap(AesGcm& gcm, const SaParams& sa, const uint8_t salt[kSaltLen],
                 uint32_t seq_hi, const uint8_t* esp, size_t len, uint8_t* out,
                 size_t cap, size_t* payload_len, uint8_t* next_header) {
  if (len < kEspMinLen) return Status::kMalformed;
  const uint8_t* body = esp + kEspHeaderLen + kEspIvLen;
  const size_t body_len = len - kEspHeaderLen - kEspIvLen - kGcmTagLen;
  const uint8_t* icv = body + body_len;
  if (body_len > cap) return Status::kNoSpace;

  uint8_t nonce[kGcmNonceLen];
  make_nonce(salt, esp + kEspHeaderLen, nonce);
  uint8_t head[12];
  const size_t head_len = make_aad_head(esp, sa.esn, seq_hi, head);

  bool ok;
  if (sa.mode == EspMode::kGcm) {
    const Span aad[1] = {{head, head_len}};
    ok = gcm.open(nonce, aad, 1, body, out, body_len, icv);
  } else {
    const Span aad[2] = {{head, head_len},
                         {esp + kEspHeaderLen, kEspIvLen + body_len}};
    ok = gcm.open(nonce, aad, 2, nullptr, nullptr, 0, icv);
    if (ok) std::memcpy(out, body, body_len);
  }
  if (!ok) return Status::kIcvFailure;

  // Trailer checks come after the ICV, which covers them: a failure here is
  // a sender bug, not tampering.
  const uint8_t pad = out[body_len - 2];
  if (static_cast<size_t>(pad) + kEspTrailerLen > body_len)
    return Status::kBadPadding;
  const size_t plen = body_len - kEspTrailerLen - pad;
  // RFC 4303 §2.4: a receiver checks the default 1, 2, 3, ... pattern.
  for (size_t i = 0; i < pad; ++i)
    if (out[plen + i] != static_cast<uint8_t>(i + 1)) return Status::kBadPadding;
  *next_header = out[body_len - 1];
  *payload_len = plen;
  return Status::kOk;
}

}  // namespace dne
