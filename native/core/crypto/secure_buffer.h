// Key bytes live only here on the native side: page-aligned, locked in RAM
// (mlock, so they never reach swap), excluded from core dumps
// (MADV_DONTDUMP), and wiped with OPENSSL_cleanse before the pages go back.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dne {

class SecureBuffer {
 public:
  SecureBuffer() = default;
  // Copies `len` bytes from `src`. ok() is false when allocation failed.
  SecureBuffer(const uint8_t* src, size_t len);
  ~SecureBuffer();
  SecureBuffer(const SecureBuffer&) = delete;
  SecureBuffer& operator=(const SecureBuffer&) = delete;
  SecureBuffer(SecureBuffer&& other) noexcept;
  SecureBuffer& operator=(SecureBuffer&& other) noexcept;

  bool ok() const { return data_ != nullptr; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return len_; }
  // Whether mlock succeeded (it can fail under RLIMIT_MEMLOCK; the key is
  // still usable, and the agent reports the condition).
  bool locked() const { return locked_; }

 private:
  void release();
  uint8_t* data_ = nullptr;
  size_t len_ = 0;
  size_t map_len_ = 0;
  bool locked_ = false;
};

}  // namespace dne
