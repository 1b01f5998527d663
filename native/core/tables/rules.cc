#include "tables/rules.h"

#include <arpa/inet.h>

#include <cstring>

namespace dne {

const char* action_name(Action a) {
  switch (a) {
    case Action::kAllow:
      return "allow";
    case Action::kEncrypt:
      return "encrypt";
    case Action::kIntegrity:
      return "integrity";
    case Action::kDrop:
      return "drop";
  }
  return "invalid";
}

bool Prefix::parse(const std::string& text, Prefix* out) {
  std::string addr = text;
  int len = -1;
  const auto slash = text.find('/');
  if (slash != std::string::npos) {
    addr = text.substr(0, slash);
    const std::string l = text.substr(slash + 1);
    if (l.empty() || l.size() > 3) return false;
    len = 0;
    for (char c : l) {
      if (c < '0' || c > '9') return false;
      len = len * 10 + (c - '0');
    }
  }
  Prefix p;
  if (inet_pton(AF_INET, addr.c_str(), p.addr) == 1) {
    p.family = 4;
    if (len < 0) len = 32;
    if (len > 32) return false;
  } else if (inet_pton(AF_INET6, addr.c_str(), p.addr) == 1) {
    p.family = 6;
    if (len < 0) len = 128;
    if (len > 128) return false;
  } else {
    return false;
  }
  p.len = static_cast<uint8_t>(len);
  // Canonical form: host bits cleared, so equal prefixes compare equal.
  const int bytes = p.family == 4 ? 4 : 16;
  for (int i = 0; i < bytes; ++i) {
    const int keep = len - i * 8;
    if (keep >= 8) continue;
    p.addr[i] &= keep <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
  }
  *out = p;
  return true;
}

bool Prefix::contains(uint8_t fam, const uint8_t* a) const {
  if (fam != family) return false;
  const int full = len / 8;
  if (std::memcmp(addr, a, full) != 0) return false;
  const int rest = len % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == addr[full];
}

bool PrefixSet::contains(uint8_t family, const uint8_t* a) const {
  if (prefixes.empty()) return true;
  for (const auto& p : prefixes)
    if (p.contains(family, a)) return true;
  return false;
}

bool rule_matches(const CompiledRule& r, const FlowKey& k, Direction dir) {
  if (r.ip_version != 0 && r.ip_version != k.family) return false;
  if (r.protocol != kAnyProtocol && r.protocol != k.protocol) return false;
  const uint8_t* local = dir == Direction::kOut ? k.src : k.dst;
  const uint8_t* remote = dir == Direction::kOut ? k.dst : k.src;
  if (!r.local.contains(k.family, local)) return false;
  if (!r.remote.contains(k.family, remote)) return false;
  if (r.ports.empty()) return true;
  if (!k.has_ports) return false;
  // The service port is the destination port of the conversation's forward
  // direction (source -> destination) and the source port of its replies.
  const bool forward = (dir == Direction::kOut) == (r.role == Role::kSource);
  const uint16_t port = forward ? k.dport : k.sport;
  for (const auto& pr : r.ports)
    if (port >= pr.lo && port <= pr.hi) return true;
  return false;
}

Match classify(const std::vector<CompiledRule>& rules, const FlowKey& k,
               Direction dir, Action default_action) {
  for (const auto& r : rules)
    if (rule_matches(r, k, dir)) return {&r, r.action};
  return {nullptr, default_action};
}

}  // namespace dne
