// Per-worker caches in front of the classifier: a direct-mapped flow cache
// (entries stamped with the table generation, so a swap invalidates them all
// at once) and a cache of first-fragment decisions so every fragment of a
// datagram gets the first fragment's action (DESIGN §4).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "tables/rules.h"

namespace dne {

class FlowCache {
 public:
  explicit FlowCache(size_t entries = 4096) : e_(entries) {}
  bool lookup(uint64_t gen, uint32_t port, Direction dir, const FlowKey& k,
              Match* m) const {
    const Entry& e = e_[index(port, dir, k)];
    if (e.gen != gen || e.port != port || e.dir != dir || !same(e.key, k)) return false;
    *m = e.match;
    return true;
  }
  void insert(uint64_t gen, uint32_t port, Direction dir, const FlowKey& k,
              const Match& m) {
    Entry& e = e_[index(port, dir, k)];
    e.gen = gen;
    e.port = port;
    e.dir = dir;
    e.key = k;
    e.match = m;
  }

 private:
  struct Entry {
    uint64_t gen = ~uint64_t{0};
    uint32_t port = 0;
    Direction dir = Direction::kOut;
    FlowKey key;
    Match match;
  };
  static bool same(const FlowKey& a, const FlowKey& b) {
    const size_t alen = a.family == 4 ? 4 : 16;
    return a.family == b.family && a.protocol == b.protocol &&
           a.has_ports == b.has_ports && a.sport == b.sport &&
           a.dport == b.dport && std::memcmp(a.src, b.src, alen) == 0 &&
           std::memcmp(a.dst, b.dst, alen) == 0;
  }
  size_t index(uint32_t port, Direction dir, const FlowKey& k) const {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the key fields
    auto mix = [&h](const uint8_t* p, size_t n) {
      for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    };
    const size_t alen = k.family == 4 ? 4 : 16;
    mix(k.src, alen);
    mix(k.dst, alen);
    const uint8_t rest[8] = {k.protocol, static_cast<uint8_t>(k.sport >> 8),
                             static_cast<uint8_t>(k.sport), static_cast<uint8_t>(k.dport >> 8),
                             static_cast<uint8_t>(k.dport), static_cast<uint8_t>(dir),
                             static_cast<uint8_t>(port), static_cast<uint8_t>(port >> 8)};
    mix(rest, sizeof rest);
    return h % e_.size();
  }
  std::vector<Entry> e_;
};

class FragmentCache {
 public:
  explicit FragmentCache(size_t entries = 1024) : e_(entries) {}
  void insert(uint64_t gen, uint32_t port, Direction dir, const FlowKey& k,
              uint32_t id, const Match& m, uint64_t now_ms) {
    Entry& e = e_[index(k, id)];
    e = {gen, port, dir, k.family, k.protocol, id, {}, {}, m, now_ms + kLifetimeMs};
    std::memcpy(e.src, k.src, 16);
    std::memcpy(e.dst, k.dst, 16);
  }
  bool lookup(uint64_t gen, uint32_t port, Direction dir, const FlowKey& k,
              uint32_t id, uint64_t now_ms, Match* m) const {
    const Entry& e = e_[index(k, id)];
    if (e.gen != gen || e.port != port || e.dir != dir || e.id != id ||
        e.family != k.family || e.protocol != k.protocol || now_ms > e.expires_ms ||
        std::memcmp(e.src, k.src, 16) != 0 || std::memcmp(e.dst, k.dst, 16) != 0)
      return false;
    *m = e.match;
    return true;
  }

 private:
  // Reassembly timers are 30 s (IPv4, RFC 791) and 60 s (IPv6); a datagram's
  // fragments that arrive later than this are dropped by the receiver anyway.
  static constexpr uint64_t kLifetimeMs = 30000;
  struct Entry {
    uint64_t gen = ~uint64_t{0};
    uint32_t port = 0;
    Direction dir = Direction::kOut;
    uint8_t family = 0;
    uint8_t protocol = 0;
    uint32_t id = 0;
    uint8_t src[16];
    uint8_t dst[16];
    Match match;
    uint64_t expires_ms = 0;
  };
  size_t index(const FlowKey& k, uint32_t id) const {
    uint64_t h = id * 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 16; ++i) h = (h ^ k.src[i] ^ (uint64_t{k.dst[i]} << 8)) * 1099511628211ull;
    return h % e_.size();
  }
  std::vector<Entry> e_;
};

}  // namespace dne
