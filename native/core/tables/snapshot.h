// The immutable configuration the workers run on. The control plane builds a
// new Snapshot for every change and publishes it with one atomic pointer
// swap; workers pick it up between bursts and never block on the control
// plane. A snapshot is freed when the last worker lets go of it (reference
// counting plays the role of DPDK's RCU quiescent-state reclamation).
//
// Mutable per-SA state (cipher contexts, replay windows, sender counters) is
// not here: it lives in each worker, keyed by SPI, so a swap never resets it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "esp/sa.h"
#include "io/packet_io.h"
#include "stats/counters.h"
#include "tables/rules.h"

namespace dne {

struct PortTable {
  std::vector<CompiledRule> rules;
  PrefixSet addresses;  // the workload's own addresses (any: not checked)
  Action default_action = Action::kAllow;
};

struct PortRuntime {
  std::string name;
  // Where the two interfaces are (empty for test I/O), to refuse a second
  // port on an interface that is already in use.
  std::string workload_if, network_if, workload_netns, network_netns;
  uint32_t slot = 0;
  uint32_t worker = 0;
  std::shared_ptr<PacketIo> workload;  // the VM's tap / container's veth end
  std::shared_ptr<PacketIo> network;   // towards the host bridge / overlay
  std::shared_ptr<const PortTable> table;  // null: the filter's default
};

struct SaEntry {
  std::shared_ptr<const SaKeys> keys;
  uint32_t key_policy = 0;
  uint32_t slot = 0;
  std::vector<uint32_t> sender_ids;  // one per worker (RFC 6054: each is a sender)
  uint64_t low_water = 0;
};

struct Snapshot {
  uint64_t generation = 0;
  Action default_action = Action::kAllow;
  std::vector<PortRuntime> ports;
  std::unordered_map<uint32_t, SaEntry> sas;
  // Counter slots are reused (a new port, SA or rule can take a freed slot).
  // Each slot has an epoch that the control plane bumps when it hands the
  // slot out; a worker zeroes its counters of a slot whose epoch moved, so a
  // new holder never shows its predecessor's counts.
  std::vector<uint32_t> port_epoch;
  std::vector<uint32_t> sa_epoch;
  std::vector<uint32_t> rule_epoch;
};

}  // namespace dne
