// AES-GCM through OpenSSL's EVP interface, keyed once when an SA is installed
// (as esp4.c's esp_init_aead does), so the per-packet cost is setting the
// nonce and streaming AAD and data. RFC 4106 ESP and RFC 4543 GMAC-ESP both
// run through this one class: GMAC is GCM with everything in the AAD and an
// empty plaintext (RFC 4543 §3.1).
//
// Threading: an AesGcm belongs to one thread (EVP_CIPHER_CTX is not shareable);
// the dataplane makes one per (SA, worker).
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace dne {

inline constexpr size_t kGcmNonceLen = 12;  // salt(4) || IV(8), RFC 4106 §4
inline constexpr size_t kGcmTagLen = 16;    // ICV, RFC 4106 §6 (16 octets)

// A slice of additional authenticated data. ESP's AAD is not contiguous on the
// wire when ESN is on (seq_hi is not transmitted, RFC 4106 §5), so callers pass
// up to a few pieces.
struct Span {
  const uint8_t* data;
  size_t len;
};

class AesGcm {
 public:
  // Key length must be 16, 24 or 32 bytes (RFC 4106 §8.1 allows all three;
  // the control plane offers 128 and 256); returns nullptr
  // otherwise or when OpenSSL cannot create the contexts.
  static std::unique_ptr<AesGcm> create(const uint8_t* key, size_t key_len);
  ~AesGcm();
  AesGcm(const AesGcm&) = delete;
  AesGcm& operator=(const AesGcm&) = delete;

  // Encrypts len bytes from in to out (they may be the same buffer) and writes
  // the tag. Returns false only on an OpenSSL failure.
  bool seal(const uint8_t nonce[kGcmNonceLen], const Span* aad, size_t n_aad,
            const uint8_t* in, uint8_t* out, size_t len,
            uint8_t tag[kGcmTagLen]);
  // Decrypts and verifies; false when the tag does not verify. Output bytes
  // must not be used after a false return.
  bool open(const uint8_t nonce[kGcmNonceLen], const Span* aad, size_t n_aad,
            const uint8_t* in, uint8_t* out, size_t len,
            const uint8_t tag[kGcmTagLen]);

  size_t key_len() const { return key_len_; }

 private:
  AesGcm() = default;
  EVP_CIPHER_CTX* enc_ = nullptr;
  EVP_CIPHER_CTX* dec_ = nullptr;
  size_t key_len_ = 0;
};

// The OpenSSL this code runs against: its version text, and where its EVP
// entry points were resolved from (the node binary inside the addon, the
// shared libcrypto in native tests). Used by the start-up self-check.
struct CryptoProvenance {
  std::string openssl_version;
  std::string evp_object;  // path of the object defining EVP_EncryptInit_ex
  bool from_main_executable = false;  // e.g. node's own statically linked copy
};
CryptoProvenance crypto_provenance();

// CPU feature bits that OpenSSL's AES-GCM fast path needs (CPUID leaf 1 ECX:
// AES-NI bit 25, PCLMULQDQ bit 1).
struct CpuAesFeatures {
  bool aesni;
  bool pclmulqdq;
};
CpuAesFeatures cpu_aes_features();

}  // namespace dne
