#include "crypto/secure_buffer.h"

#include <openssl/crypto.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace dne {

SecureBuffer::SecureBuffer(const uint8_t* src, size_t len) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t map_len = ((len + page - 1) / page) * page;
  if (len == 0) return;
  void* p = mmap(nullptr, map_len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return;
  madvise(p, map_len, MADV_DONTDUMP);
  locked_ = mlock(p, map_len) == 0;
  data_ = static_cast<uint8_t*>(p);
  len_ = len;
  map_len_ = map_len;
  std::memcpy(data_, src, len);
}

SecureBuffer::~SecureBuffer() { release(); }

SecureBuffer::SecureBuffer(SecureBuffer&& other) noexcept
    : data_(other.data_),
      len_(other.len_),
      map_len_(other.map_len_),
      locked_(other.locked_) {
  other.data_ = nullptr;
  other.len_ = other.map_len_ = 0;
  other.locked_ = false;
}

SecureBuffer& SecureBuffer::operator=(SecureBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = other.data_;
    len_ = other.len_;
    map_len_ = other.map_len_;
    locked_ = other.locked_;
    other.data_ = nullptr;
    other.len_ = other.map_len_ = 0;
    other.locked_ = false;
  }
  return *this;
}

void SecureBuffer::release() {
  if (data_ == nullptr) return;
  OPENSSL_cleanse(data_, map_len_);
  if (locked_) munlock(data_, map_len_);
  munmap(data_, map_len_);
  data_ = nullptr;
  len_ = map_len_ = 0;
  locked_ = false;
}

}  // namespace dne
