// Helpers shared by the native tests: hex, vector files, packet builders.
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/bytes.h"

namespace dne::test {

using Bytes = std::vector<uint8_t>;

inline Bytes from_hex(const std::string& h) {
  Bytes out;
  out.reserve(h.size() / 2);
  for (size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

inline std::string to_hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(d[p[i] >> 4]);
    s.push_back(d[p[i] & 15]);
  }
  return s;
}
inline std::string to_hex(const Bytes& b) { return to_hex(b.data(), b.size()); }

inline std::string vector_path(const std::string& name) {
  return std::string(DNE_VECTORS_DIR) + "/" + name;
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline nlohmann::json load_json(const std::string& name) {
  return nlohmann::json::parse(read_file(vector_path(name)), nullptr, false);
}

// A UDP packet over IPv4 with optional IP options (multiple of 4 bytes).
inline Bytes ipv4_udp(const Bytes& payload, const Bytes& options = {},
                      uint8_t tos = 0) {
  const size_t ihl = 20 + options.size();
  Bytes p(ihl + 8 + payload.size());
  p[0] = static_cast<uint8_t>(0x40 | (ihl / 4));
  p[1] = tos;
  store_be16(&p[2], static_cast<uint16_t>(p.size()));
  store_be16(&p[4], 0x1234);
  store_be16(&p[6], 0x4000);  // DF
  p[8] = 64;
  p[9] = 17;
  const uint8_t src[4] = {10, 1, 0, 1}, dst[4] = {10, 2, 0, 2};
  std::copy(src, src + 4, &p[12]);
  std::copy(dst, dst + 4, &p[16]);
  std::copy(options.begin(), options.end(), p.begin() + 20);
  store_be16(&p[10], inet_checksum(p.data(), ihl));
  store_be16(&p[ihl], 40000);
  store_be16(&p[ihl + 2], 5201);
  store_be16(&p[ihl + 4], static_cast<uint16_t>(8 + payload.size()));
  std::copy(payload.begin(), payload.end(), p.begin() + ihl + 8);
  return p;
}

// An IPv6 packet: fixed header, then the given extension headers (each a
// (type, bytes) pair where bytes already hold the next-header byte slot at
// [0], patched here), then a UDP header and payload.
struct Ext {
  uint8_t type;
  Bytes bytes;
};
inline Bytes ipv6_udp(const Bytes& payload, const std::vector<Ext>& exts = {}) {
  Bytes p(40);
  p[0] = 0x60;
  p[7] = 64;
  for (int i = 0; i < 16; ++i) {
    p[8 + i] = static_cast<uint8_t>(i == 0 ? 0xfd : (i == 15 ? 1 : 0));
    p[24 + i] = static_cast<uint8_t>(i == 0 ? 0xfd : (i == 15 ? 2 : 0));
  }
  size_t nh_pos = 6;
  for (const auto& e : exts) {
    p[nh_pos] = e.type;
    nh_pos = p.size();
    p.insert(p.end(), e.bytes.begin(), e.bytes.end());
  }
  p[nh_pos] = 17;
  const size_t udp = p.size();
  p.resize(udp + 8 + payload.size());
  store_be16(&p[udp], 40000);
  store_be16(&p[udp + 2], 5201);
  store_be16(&p[udp + 4], static_cast<uint16_t>(8 + payload.size()));
  std::copy(payload.begin(), payload.end(), p.begin() + udp + 8);
  store_be16(&p[4], static_cast<uint16_t>(p.size() - 40));
  return p;
}

// Generic 8-byte option-style extension header (hop-by-hop, destination
// options, routing type 0 stub) with PadN filling.
inline Ext ext8(uint8_t type) {
  Bytes b(8, 0);
  if (type == 44) {  // fragment header: offset 0, M=0, identification
    store_be32(&b[4], 0xabcdef01);
  } else if (type == 43) {  // routing header: type 4 stub, segments left 0
    b[2] = 4;
  } else {
    b[2] = 1;  // PadN option, length 4
    b[3] = 4;
  }
  return {type, b};
}

inline Bytes pattern(size_t n, uint8_t seed = 7) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 31);
  return b;
}

}  // namespace dne::test
