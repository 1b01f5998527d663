// Result codes of the packet path. One X-macro table is the single source of
// truth: C++ switch statements, per-reason drop counters and the names that
// TypeScript reads from the addon (ts/native/codes.ts checks they agree) all
// expand from it, in the manner of VPP's foreach_* lists.
#pragma once

#include <cstdint>

namespace dne {

// X(enum name, wire/metric name, description)
#define DNE_STATUS_LIST(X)                                                     \
  X(kOk, "ok", "accepted")                                                     \
  X(kMalformed, "malformed", "truncated or inconsistent IP/ESP framing")       \
  X(kUnsupported, "unsupported", "not an IPv4/IPv6 packet this path handles")  \
  X(kUnknownSpi, "unknown_spi", "no SA installed for the SPI")                 \
  X(kIcvFailure, "icv_failure", "integrity check value did not verify")        \
  X(kReplay, "replay", "counter already seen inside the replay window")        \
  X(kTooOld, "too_old", "counter left of the replay window")                   \
  X(kBadPadding, "bad_padding", "ESP padding bytes are not 1,2,3,...")         \
  X(kCounterExhausted, "counter_exhausted",                                   \
    "sender counter space used up; new sender ID or key needed")              \
  X(kTooManySenders, "too_many_senders",                                      \
    "replay state for this SA already tracks the maximum number of senders")  \
  X(kNoSpace, "no_space", "output buffer too small for the result")            \
  X(kBadConfig, "bad_config", "invalid SA or sender parameters")               \
  X(kNoSa, "no_sa", "the matching rule's key has no SA installed yet")          \
  X(kPolicy, "policy",                                                          \
    "refused by policy: clear text where protection is required, a "           \
    "decrypted flow its key may not carry, or a drop rule / fail-closed "      \
    "default")                                                                  \
  X(kMtu, "mtu", "too large after ESP overhead; ICMP sent to the workload")     \
  X(kRingFull, "ring_full", "transmit failed or receive frame truncated")       \
  X(kFragment, "fragment",                                                     \
    "non-first fragment whose first fragment was not seen")                   \
  X(kRxOverflow, "rx_overflow",                                               \
    "the kernel dropped frames before the filter read them: receive ring "    \
    "full (packet(7) PACKET_STATISTICS tp_drops)")

enum class Status : uint8_t {
#define DNE_STATUS_ENUM(name, str, desc) name,
  DNE_STATUS_LIST(DNE_STATUS_ENUM)
#undef DNE_STATUS_ENUM
};

#define DNE_STATUS_COUNT_ONE(name, str, desc) +1
inline constexpr int kStatusCount = 0 DNE_STATUS_LIST(DNE_STATUS_COUNT_ONE);
#undef DNE_STATUS_COUNT_ONE

const char* status_name(Status s);
const char* status_description(Status s);

}  // namespace dne
