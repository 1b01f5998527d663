// Compiled per-port rule tables and the first-match classifier.
//
// The controller resolves groups into prefixes and compiles, for each
// protected port, only the rules that apply there (DESIGN §4). A rule covers
// a conversation (DESIGN §2): packets source -> destination with the
// service's destination port, and the replies destination -> source from that
// port. A compiled rule states which side of the rule this port's workload is
// on (its role), so both ends compute the same action for both directions
// without connection state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dne {

enum class Action : uint8_t {
  kAllow = 0,      // ALLOW_IN_CLEAR
  kEncrypt = 1,    // ENCRYPT: AES-GCM
  kIntegrity = 2,  // INTEGRITY_ONLY: AES-GMAC
  kDrop = 3,       // fail-closed default, or a drop rule
};
const char* action_name(Action a);
inline bool action_protects(Action a) {
  return a == Action::kEncrypt || a == Action::kIntegrity;
}

// Direction as seen from the protected port.
enum class Direction : uint8_t {
  kOut = 0,  // from the workload towards the network
  kIn = 1,   // from the network towards the workload
};

enum class Role : uint8_t { kSource = 0, kDestination = 1 };

struct Prefix {
  uint8_t family = 4;  // 4 or 6
  uint8_t len = 0;
  uint8_t addr[16] = {};
  // Parses "10.0.0.0/8", "fd00::/64" or a bare address (host prefix).
  static bool parse(const std::string& text, Prefix* out);
  bool contains(uint8_t family, const uint8_t* a) const;
};

// A list of prefixes; empty means "any". Small lists are scanned linearly;
// the per-worker flow cache keeps the scan off the hot path.
struct PrefixSet {
  std::vector<Prefix> prefixes;
  bool any() const { return prefixes.empty(); }
  bool contains(uint8_t family, const uint8_t* a) const;
};

struct PortRange {
  uint16_t lo;
  uint16_t hi;
};

inline constexpr int kAnyProtocol = -1;

struct CompiledRule {
  uint32_t rule_id = 0;       // the policy's rule, for counters and explain
  uint32_t counter_slot = 0;  // index into the per-rule counters
  Role role = Role::kSource;
  uint8_t ip_version = 0;     // 0: both, 4 or 6
  int protocol = kAnyProtocol;
  PrefixSet local;            // the workload's addresses this rule covers
  PrefixSet remote;           // the other side (sources or destinations)
  std::vector<PortRange> ports;  // service destination ports; empty: any
  Action action = Action::kAllow;
  uint32_t key_policy = 0;    // the key policy protecting this rule's flows
  uint32_t tx_spi = 0;        // current sending SA of that key policy (0: none)
};

// The 5-tuple of one packet, addresses in network order.
struct FlowKey {
  uint8_t family = 4;
  uint8_t protocol = 0;
  bool has_ports = false;  // TCP/UDP/SCTP/UDP-Lite with ports visible
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint8_t src[16] = {};
  uint8_t dst[16] = {};
};

struct Match {
  const CompiledRule* rule = nullptr;  // nullptr: no rule, default action
  Action action = Action::kAllow;
};

// First match over `rules` for a packet travelling in `dir` at the port.
Match classify(const std::vector<CompiledRule>& rules, const FlowKey& k,
               Direction dir, Action default_action);

// Whether `r` alone matches (exposed for the agreement tests and explain).
bool rule_matches(const CompiledRule& r, const FlowKey& k, Direction dir);

}  // namespace dne
