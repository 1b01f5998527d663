// Anti-replay sliding window over 64-bit counters, bitmap layout of RFC 6479:
// the bitmap is a ring of 64-bit blocks with one spare block, so sliding the
// window forward clears whole blocks instead of shifting bits.
//
// check() and advance() are separate calls because ESP must not move the
// window for a packet whose ICV has not been verified yet (RFC 4303 §3.4.3:
// the window is updated only if the integrity check succeeds). A window has
// exactly one writer thread.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"

namespace dne {

class ReplayWindow {
 public:
  static constexpr uint32_t kMinSize = 64;
  static constexpr uint32_t kMaxSize = 65536;
  static constexpr uint32_t kDefaultSize = 4096;
  // Valid sizes are multiples of 64 within [kMinSize, kMaxSize].
  static bool valid_size(uint32_t size);

  // `top` starts the window at a counter already consumed (nothing below it
  // is accepted as new unless inside the window).
  explicit ReplayWindow(uint32_t size = kDefaultSize, uint64_t top = 0);

  // kOk when the counter may be accepted, kReplay when it was seen, kTooOld
  // when it lies left of the window.
  Status check(uint64_t counter) const;
  // Records the counter as seen; call only after the ICV verified.
  void advance(uint64_t counter);

  uint64_t top() const { return top_; }
  uint32_t size() const { return size_; }

 private:
  uint32_t size_;
  uint64_t top_ = 0;
  std::vector<uint64_t> blocks_;  // size_/64 + 1 blocks; count is a power of 2
  uint64_t block_mask_;
};

// RFC 4303 Appendix A2.2: the receiver's guess of the high 32 bits of an
// extended sequence number from the low 32 bits on the wire, given the highest
// authenticated sequence number `top` and the window size.
uint32_t infer_seq_hi(uint64_t top, uint32_t seq_lo, uint32_t window);

}  // namespace dne
