#include "replay/window.h"

namespace dne {

namespace {
uint32_t round_up_pow2(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}
}  // namespace

bool ReplayWindow::valid_size(uint32_t size) {
  return size >= kMinSize && size <= kMaxSize && size % 64 == 0;
}

ReplayWindow::ReplayWindow(uint32_t size, uint64_t top)
    : size_(valid_size(size) ? size : kDefaultSize), top_(top) {
  // One block more than the window spans, rounded to a power of two so the
  // ring index is a mask (RFC 6479 §2).
  const uint32_t n = round_up_pow2(size_ / 64 + 1);
  blocks_.assign(n, 0);
  block_mask_ = n - 1;
}

Status ReplayWindow::check(uint64_t counter) const {
  if (counter > top_) return Status::kOk;
  if (top_ - counter >= size_) return Status::kTooOld;
  const uint64_t block = (counter >> 6) & block_mask_;
  const uint64_t bit = uint64_t{1} << (counter & 63);
  return (blocks_[block] & bit) ? Status::kReplay : Status::kOk;
}

void ReplayWindow::advance(uint64_t counter) {
  if (counter > top_) {
    const uint64_t old_block = top_ >> 6;
    const uint64_t new_block = counter >> 6;
    uint64_t diff = new_block - old_block;
    if (diff > block_mask_ + 1) diff = block_mask_ + 1;
    // Blocks that enter the window must start empty.
    for (uint64_t i = 1; i <= diff; ++i)
      blocks_[(old_block + i) & block_mask_] = 0;
    top_ = counter;
  }
  blocks_[(counter >> 6) & block_mask_] |= uint64_t{1} << (counter & 63);
}

uint32_t infer_seq_hi(uint64_t top, uint32_t seq_lo, uint32_t window) {
  const uint32_t th = static_cast<uint32_t>(top >> 32);
  const uint32_t tl = static_cast<uint32_t>(top);
  const uint32_t bottom = tl - window + 1;  // wraps in case B, on purpose
  if (tl >= window - 1) {
    // Case A: the window lies inside one 2^32 subspace.
    return seq_lo >= bottom ? th : th + 1;
  }
  // Case B: the window spans two subspaces. With th == 0 there is no earlier
  // subspace; the ICV check rejects a wrong guess either way.
  if (seq_lo >= bottom) return th == 0 ? 0 : th - 1;
  return th;
}

}  // namespace dne
