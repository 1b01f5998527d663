#include "crypto/aes_gcm.h"

#include <cpuid.h>
#include <dlfcn.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdlib.h>

#include <cstring>

namespace dne {

namespace {

EVP_CIPHER_CTX* make_ctx(const EVP_CIPHER* cipher, const uint8_t* key,
                         int enc) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return nullptr;
  // Key schedule and GHASH table are computed here, once per SA; per packet
  // only the nonce changes.
  if (EVP_CipherInit_ex(ctx, cipher, nullptr, nullptr, nullptr, enc) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN,
                          static_cast<int>(kGcmNonceLen), nullptr) != 1 ||
      EVP_CipherInit_ex(ctx, nullptr, nullptr, key, nullptr, enc) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

bool feed_aad(EVP_CIPHER_CTX* ctx, const Span* aad, size_t n_aad) {
  for (size_t i = 0; i < n_aad; ++i) {
    if (aad[i].len == 0) continue;
    int outl = 0;
    if (EVP_CipherUpdate(ctx, nullptr, &outl, aad[i].data,
                         static_cast<int>(aad[i].len)) != 1)
      return false;
  }
  return true;
}

}  // namespace

std::unique_ptr<AesGcm> AesGcm::create(const uint8_t* key, size_t key_len) {
  const EVP_CIPHER* cipher = nullptr;
  if (key_len == 16)
    cipher = EVP_aes_128_gcm();
  else if (key_len == 24)
    cipher = EVP_aes_192_gcm();
  else if (key_len == 32)
    cipher = EVP_aes_256_gcm();
  else
    return nullptr;
  std::unique_ptr<AesGcm> g(new AesGcm());
  g->enc_ = make_ctx(cipher, key, 1);
  g->dec_ = make_ctx(cipher, key, 0);
  g->key_len_ = key_len;
  if (g->enc_ == nullptr || g->dec_ == nullptr) return nullptr;
  return g;
}

AesGcm::~AesGcm() {
  // EVP_CIPHER_CTX_free cleanses the key schedule before freeing it.
  EVP_CIPHER_CTX_free(enc_);
  EVP_CIPHER_CTX_free(dec_);
}

bool AesGcm::seal(const uint8_t nonce[kGcmNonceLen], const Span* aad,
                  size_t n_aad, const uint8_t* in, uint8_t* out, size_t len,
                  uint8_t tag[kGcmTagLen]) {
  int outl = 0;
  if (EVP_EncryptInit_ex(enc_, nullptr, nullptr, nullptr, nonce) != 1)
    return false;
  if (!feed_aad(enc_, aad, n_aad)) return false;
  if (len > 0 &&
      EVP_EncryptUpdate(enc_, out, &outl, in, static_cast<int>(len)) != 1)
    return false;
  if (EVP_EncryptFinal_ex(enc_, out + len, &outl) != 1) return false;
  return EVP_CIPHER_CTX_ctrl(enc_, EVP_CTRL_GCM_GET_TAG,
                             static_cast<int>(kGcmTagLen), tag) == 1;
}

bool AesGcm::open(const uint8_t nonce[kGcmNonceLen], const Span* aad,
                  size_t n_aad, const uint8_t* in, uint8_t* out, size_t len,
                  const uint8_t tag[kGcmTagLen]) {
  int outl = 0;
  if (EVP_DecryptInit_ex(dec_, nullptr, nullptr, nullptr, nonce) != 1)
    return false;
  if (!feed_aad(dec_, aad, n_aad)) return false;
  if (len > 0 &&
      EVP_DecryptUpdate(dec_, out, &outl, in, static_cast<int>(len)) != 1)
    return false;
  // OpenSSL copies the tag into the context; the const_cast is its API's.
  if (EVP_CIPHER_CTX_ctrl(dec_, EVP_CTRL_GCM_SET_TAG,
                          static_cast<int>(kGcmTagLen),
                          const_cast<uint8_t*>(tag)) != 1)
    return false;
  return EVP_DecryptFinal_ex(dec_, out + len, &outl) == 1;
}

CryptoProvenance crypto_provenance() {
  CryptoProvenance p;
  p.openssl_version = OpenSSL_version(OPENSSL_VERSION);
  p.evp_object = "unknown";
  char exe[PATH_MAX];
  const bool have_exe = realpath("/proc/self/exe", exe) != nullptr;
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&EVP_EncryptInit_ex), &info) == 0 ||
      info.dli_fname == nullptr)
    return p;
  // The dynamic loader names the main program by argv[0] (or ""), shared
  // objects by path.
  char obj[PATH_MAX];
  if (std::strchr(info.dli_fname, '/') == nullptr) {
    p.from_main_executable = true;
    p.evp_object = have_exe ? exe : info.dli_fname;
  } else {
    p.evp_object = realpath(info.dli_fname, obj) ? obj : info.dli_fname;
    p.from_main_executable = have_exe && p.evp_object == exe;
  }
  return p;
}

CpuAesFeatures cpu_aes_features() {
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return {false, false};
  return {(ecx & bit_AES) != 0, (ecx & bit_PCLMUL) != 0};
}

}  // namespace dne
