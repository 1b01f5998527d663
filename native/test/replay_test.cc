// Anti-replay window (RFC 4303 §3.4.3, RFC 6479 layout) and ESN inference
// (RFC 4303 Appendix A2.2), as tables of (input, expected).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "replay/window.h"

namespace dne::test {
namespace {

struct Step {
  uint64_t counter;
  Status expected;
};

// Feeds steps to a window, advancing on every accepted counter as the ESP
// receiver does after the ICV verified.
void run_table(uint32_t size, const std::vector<Step>& steps) {
  ReplayWindow w(size);
  for (size_t i = 0; i < steps.size(); ++i) {
    const Status got = w.check(steps[i].counter);
    EXPECT_EQ(status_name(got), std::string(status_name(steps[i].expected)))
        << "step " << i << " counter " << steps[i].counter;
    if (got == Status::kOk) w.advance(steps[i].counter);
  }
}

TEST(ReplayWindow, Table64) {
  run_table(64, {
                    {1, Status::kOk},
                    {1, Status::kReplay},
                    {2, Status::kOk},
                    {64, Status::kOk},
                    {1, Status::kReplay},   // 63 behind top: still inside
                    {65, Status::kOk},
                    {1, Status::kTooOld},   // 64 behind top: left of window
                    {2, Status::kReplay},
                    {3, Status::kOk},       // late but never seen
                    {0, Status::kTooOld},
                    {1000, Status::kOk},
                    {937, Status::kOk},     // 1000 - 64 + 1: leftmost slot
                    {936, Status::kTooOld},
                    {999, Status::kOk},
                    {999, Status::kReplay},
                    {1000, Status::kReplay},
                    {100000, Status::kOk},
                    {1000, Status::kTooOld},
                    {99937, Status::kOk},
                    {uint64_t{1} << 40, Status::kOk},
                    {(uint64_t{1} << 40) - 1, Status::kOk},
                    {(uint64_t{1} << 40) - 64, Status::kTooOld},
                });
}

TEST(ReplayWindow, StaleBitsFromAnEarlierLapAreNotReplays) {
  // With 64 bits the ring has two blocks; counter 133 shares its slot with
  // counter 5, which was seen two laps earlier.
  run_table(64, {{5, Status::kOk},
                 {130, Status::kOk},
                 {133, Status::kOk},
                 {133, Status::kReplay},
                 {69, Status::kTooOld},
                 {70, Status::kOk}});
}

TEST(ReplayWindow, FirstPacketMayHaveAnyCounter) {
  run_table(4096, {{0, Status::kOk}, {0, Status::kReplay}, {7, Status::kOk}});
  run_table(4096, {{123456789, Status::kOk}, {123456789 - 4095, Status::kOk},
                   {123456789 - 4096, Status::kTooOld}});
}

TEST(ReplayWindow, ReorderingInsideTheWindowIsAccepted) {
  for (uint32_t size : {64u, 1024u, 4096u, 8192u, 65536u}) {
    std::vector<uint64_t> c(size);
    for (uint32_t i = 0; i < size; ++i) c[i] = 1000 + i;
    std::mt19937_64 rng(size);
    std::shuffle(c.begin(), c.end(), rng);
    ReplayWindow w(size);
    for (uint64_t v : c) {
      ASSERT_EQ(w.check(v), Status::kOk) << size << " " << v;
      w.advance(v);
    }
    for (uint64_t v : c) ASSERT_EQ(w.check(v), Status::kReplay);
  }
}

TEST(ReplayWindow, AgreesWithAReferenceSetOverRandomTraffic) {
  for (uint32_t size : {64u, 128u, 4096u}) {
    std::mt19937_64 rng(42 + size);
    ReplayWindow w(size);
    std::set<uint64_t> seen;
    uint64_t top = 0;
    for (int i = 0; i < 200000; ++i) {
      // Mostly near the top, sometimes far ahead or far behind.
      const int r = static_cast<int>(rng() % 100);
      uint64_t v;
      if (r < 80)
        v = top + (rng() % (2 * size)) - std::min<uint64_t>(top, size);
      else if (r < 90)
        v = top + rng() % (size * 8);
      else
        v = rng() % (top + 1);
      Status want;
      if (v > top)
        want = Status::kOk;
      else if (top - v >= size)
        want = Status::kTooOld;
      else
        want = seen.count(v) ? Status::kReplay : Status::kOk;
      ASSERT_EQ(w.check(v), want) << "size " << size << " i " << i << " v " << v;
      if (want == Status::kOk) {
        w.advance(v);
        seen.insert(v);
        top = std::max(top, v);
      }
    }
  }
}

TEST(ReplayWindow, SizeLimits) {
  EXPECT_FALSE(ReplayWindow::valid_size(0));
  EXPECT_FALSE(ReplayWindow::valid_size(32));
  EXPECT_FALSE(ReplayWindow::valid_size(100));
  EXPECT_TRUE(ReplayWindow::valid_size(64));
  EXPECT_TRUE(ReplayWindow::valid_size(4096));
  EXPECT_TRUE(ReplayWindow::valid_size(8192));
  EXPECT_TRUE(ReplayWindow::valid_size(65536));
  EXPECT_FALSE(ReplayWindow::valid_size(65600));
}

struct EsnCase {
  uint64_t top;
  uint32_t seq_lo;
  uint32_t window;
  uint32_t want_hi;
  const char* why;
};

// RFC 4303 Appendix A2.2, both cases and their boundaries.
TEST(EsnInference, AppendixA) {
  const uint64_t th = 5;
  const std::vector<EsnCase> cases = {
      // Case A: Tl >= W - 1, window inside one subspace.
      {th << 32 | 1000, 1000, 64, 5, "A: equal to top"},
      {th << 32 | 1000, 990, 64, 5, "A: inside window"},
      {th << 32 | 1000, 937, 64, 5, "A: bottom of window (Tl - W + 1)"},
      {th << 32 | 1000, 936, 64, 6, "A: below window -> next subspace"},
      {th << 32 | 1000, 5000, 64, 5, "A: ahead in same subspace"},
      {th << 32 | 1000, 0, 64, 6, "A: wrapped to next subspace"},
      {th << 32 | 63, 0, 64, 5, "A: Tl == W - 1, bottom is 0"},
      {th << 32 | 0xffffffff, 0xffffffc0, 64, 5, "A: top at end of subspace"},
      {th << 32 | 0xffffffff, 3, 64, 6, "A: top at end, seq wrapped"},
      // Case B: Tl < W - 1, window spans the previous subspace.
      {th << 32 | 10, 5, 64, 5, "B: inside current subspace"},
      {th << 32 | 10, 100, 64, 5, "B: ahead in current subspace"},
      {th << 32 | 10, 0xfffffff0, 64, 4, "B: window part in previous subspace"},
      {th << 32 | 10, 0xffffffcb, 64, 4, "B: bottom of window (Tl - W + 1 mod 2^32)"},
      {th << 32 | 10, 0xffffffca, 64, 5, "B: below window -> current subspace"},
      {th << 32 | 62, 0xffffffff, 64, 4, "B: Tl == W - 2"},
      {0, 0xffffffff, 64, 0, "B: no previous subspace at the start"},
  };
  for (const auto& c : cases)
    EXPECT_EQ(infer_seq_hi(c.top, c.seq_lo, c.window), c.want_hi) << c.why;
}

}  // namespace
}  // namespace dne::test
