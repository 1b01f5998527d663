// Per-worker counters (kernel xfrm MIB style): each worker owns one
// WorkerStats and is its only writer; readers sum all workers on demand.
// Plain relaxed load+store keeps the hot path free of locked instructions,
// and each worker's block is its own cache-line-aligned allocation.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/status.h"

namespace dne {

class Counter {
 public:
  void add(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void set(uint64_t n) { v_.store(n, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

inline constexpr uint32_t kMaxPorts = 256;
inline constexpr uint32_t kMaxRuleSlots = 16384;
inline constexpr uint32_t kMaxSaSlots = 1024;

// X(enum, metric name)
#define DNE_PORT_COUNTERS(X)                       \
  X(kFromWorkloadPackets, "from_workload_packets") \
  X(kFromWorkloadBytes, "from_workload_bytes")     \
  X(kToNetworkPackets, "to_network_packets")       \
  X(kToNetworkBytes, "to_network_bytes")           \
  X(kFromNetworkPackets, "from_network_packets")   \
  X(kFromNetworkBytes, "from_network_bytes")       \
  X(kToWorkloadPackets, "to_workload_packets")     \
  X(kToWorkloadBytes, "to_workload_bytes")         \
  X(kSealedPackets, "sealed_packets")              \
  X(kOpenedPackets, "opened_packets")              \
  X(kClearPackets, "clear_packets")                \
  X(kDroppedPackets, "dropped_packets")            \
  X(kIcmpSent, "icmp_sent")                        \
  X(kSegmentedPackets, "gso_segmented_packets")

enum PortCounter : uint32_t {
#define DNE_PC_ENUM(e, n) e,
  DNE_PORT_COUNTERS(DNE_PC_ENUM)
#undef DNE_PC_ENUM
  kPortCounterCount
};

enum RuleCounter : uint32_t {
  kRuleOutPackets,
  kRuleOutBytes,
  kRuleInPackets,
  kRuleInBytes,
  kRuleCounterCount
};

// Per SA slot: traffic, then whether this worker's sender is below its
// low-water mark, then one drop counter per status code.
enum SaCounter : uint32_t {
  kSaSealedPackets,
  kSaSealedBytes,
  kSaOpenedPackets,
  kSaOpenedBytes,
  kSaSenderLow,
  kSaDropBase,
  kSaCounterCount = kSaDropBase + kStatusCount
};

struct alignas(64) WorkerStats {
  Counter drops[kStatusCount];
  Counter port_drops[kMaxPorts][kStatusCount];
  Counter port[kMaxPorts][kPortCounterCount];
  Counter rule[kMaxRuleSlots][kRuleCounterCount];
  Counter sa[kMaxSaSlots][kSaCounterCount];
};

const char* port_counter_name(uint32_t i);

}  // namespace dne
