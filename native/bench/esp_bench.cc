// Single-core micro-benchmark of EspEngine::seal / EspEngine::open.
//
// For each packet size S it measures, on one thread (optionally pinned to one
// CPU), how many packets per second the engine seals and opens, and prints
// one JSON object per measurement on stdout. bench/esp-micro.sh runs it next
// to `openssl speed -evp aes-128-gcm` and computes the ratios.
//
// What a "size" is, and how to compare it with openssl speed
// ----------------------------------------------------------
// S is the total length of the plaintext IPv4 packet handed to seal():
// a 20-byte IPv4 header (no options) + 8-byte UDP header + S-28 bytes of data.
// In transport mode the IPv4 header stays in clear, so the bytes that go
// through AES-GCM per packet are the ESP body
//
//     aead_bytes = (S - 20) + pad + 2,   pad = esp_pad_len(S - 20)
//
// (UDP header + data, RFC 4303 padding to a 4-byte boundary, pad-length and
// next-header bytes). For S = 64, 512, 1400, 9000 that is 48, 496, 1384 and
// 8984 bytes. `openssl speed -bytes N` counts N as the bytes given to one
// EVP_EncryptUpdate call, so the fair reference is
// `openssl speed -evp aes-128-gcm -bytes <aead_bytes>`: both sides then push
// the same number of bytes through the cipher per operation, and
// ratio = our packets/s / openssl operations/s = our aead Gbit/s / openssl
// Gbit/s. Everything else ESP does per packet (IP parsing, copying the
// packet, nonce/AAD set-up, GCM init and tag, replay window, IPv4 checksum)
// is overhead that the ratio exposes. Each JSON line carries both
// "aead_gbps" (aead_bytes * 8 * pps, comparable with openssl) and "ip_gbps"
// (S * 8 * pps, what a link would carry as plaintext packets).
//
// --aead-ref adds "aead-seal"/"aead-open": the same dne::AesGcm calls on the
// same aead_bytes with nothing of ESP around them, so seal vs aead-seal is
// the engine's own per-packet cost whatever openssl speed's loop does.
//
// GMAC (INTEGRITY_ONLY, RFC 4543) encrypts nothing; its "aead_bytes" are the
// same ESP body, which goes through GHASH as AAD (plus the 8-byte SPI||seq
// head and the 8-byte IV).
//
// Timing: std::chrono::steady_clock (wall time; esp-micro.sh runs openssl
// speed with -elapsed so it also uses wall time rather than user CPU time).
//   seal: one plaintext packet sealed over and over into one output buffer
//         (the sender's counter advances every call, so every nonce differs).
//   open: a batch of distinct sealed packets (distinct counters) is opened in
//         order; then the receiver's SA is removed and installed again to
//         reset its replay window, and the batch is opened again. Only the
//         open() calls are timed; the reinstall (an mmap/mlock for the key
//         and two EVP context set-ups) is excluded and reported as
//         "reinstall_us". The batch is sized to ~256 KiB of sealed packets
//         (at least 32, at most 1024 packets) so it stays in L2 like
//         openssl speed's single buffer does; --batch overrides.
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "crypto/aes_gcm.h"
#include "esp/engine.h"
#include "esp/esp_packet.h"

namespace {

using dne::EspEngine;
using dne::EspMode;
using dne::SaParams;
using dne::Status;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kSpi = 0x1001;
constexpr uint32_t kSenderId = 7;

struct Options {
  std::vector<size_t> sizes = {64, 512, 1400, 9000};
  std::vector<std::string> suites;  // empty: default matrix
  double seconds = 1.0;
  int cpu = 0;  // -1: do not pin
  size_t batch = 0;  // 0: auto
  bool do_seal = true;
  bool do_open = true;
  bool verify = true;
  bool do_aead = false;  // also the crypto-only reference (aead-seal/-open)
};

struct Suite {
  std::string name;  // "aes-128-gcm", "aes-128-gmac", "aes-256-gcm", ...
  EspMode mode;
  size_t key_len;
};

bool parse_suite(const std::string& s, Suite* out) {
  if (s == "aes-128-gcm") *out = {s, EspMode::kGcm, 16};
  else if (s == "aes-256-gcm") *out = {s, EspMode::kGcm, 32};
  else if (s == "aes-128-gmac") *out = {s, EspMode::kGmac, 16};
  else if (s == "aes-256-gmac") *out = {s, EspMode::kGmac, 32};
  else return false;
  return true;
}

[[noreturn]] void die(const char* what, Status st = Status::kOk) {
  std::fprintf(stderr, "dne_esp_bench: %s%s%s\n", what,
               st == Status::kOk ? "" : ": ",
               st == Status::kOk ? "" : dne::status_name(st));
  std::exit(1);
}

void usage() {
  std::fprintf(
      stderr,
      "usage: dne_esp_bench [--sizes 64,512,1400,9000] [--seconds 1.0]\n"
      "                     [--cpu N|-1] [--suites aes-128-gcm,aes-128-gmac,"
      "aes-256-gcm,aes-256-gmac]\n"
      "                     [--op seal|open|both] [--batch N] [--no-verify]\n"
      "                     [--aead-ref]\n"
      "Default suites: aes-128-gcm and aes-128-gmac at every size, plus\n"
      "aes-256-gcm at 1400. --aead-ref adds ops aead-seal/aead-open: the\n"
      "same dne::AesGcm calls on the same bytes without ESP/IP processing.\n"
      "One JSON object per line on stdout.\n");
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--sizes") {
      o.sizes.clear();
      for (const auto& s : split(value())) {
        const long v = std::strtol(s.c_str(), nullptr, 10);
        if (v < 28 || v > 65535 - 64) die("size must be in [28, 65471]");
        o.sizes.push_back(static_cast<size_t>(v));
      }
    } else if (a == "--seconds") {
      o.seconds = std::strtod(value(), nullptr);
      if (!(o.seconds > 0)) die("--seconds must be > 0");
    } else if (a == "--cpu") {
      o.cpu = static_cast<int>(std::strtol(value(), nullptr, 10));
    } else if (a == "--suites") {
      o.suites = split(value());
    } else if (a == "--batch") {
      o.batch = static_cast<size_t>(std::strtoul(value(), nullptr, 10));
    } else if (a == "--op") {
      const std::string v = value();
      o.do_seal = v == "seal" || v == "both";
      o.do_open = v == "open" || v == "both";
      if (!o.do_seal && !o.do_open) die("--op must be seal, open or both");
    } else if (a == "--aead-ref") {
      o.do_aead = true;
    } else if (a == "--no-verify") {
      o.verify = false;
    } else if (a == "-h" || a == "--help") {
      usage();
      std::exit(0);
    } else {
      usage();
      std::exit(2);
    }
  }
  return o;
}

// A UDP-over-IPv4 packet of `total` bytes (no IP options), as the tests'
// ipv4_udp() builds it.
std::vector<uint8_t> ipv4_udp(size_t total) {
  std::vector<uint8_t> p(total);
  p[0] = 0x45;
  dne::store_be16(&p[2], static_cast<uint16_t>(total));
  dne::store_be16(&p[4], 0x1234);
  dne::store_be16(&p[6], 0x4000);  // DF
  p[8] = 64;
  p[9] = 17;
  const uint8_t src[4] = {10, 1, 0, 1}, dst[4] = {10, 2, 0, 2};
  std::memcpy(&p[12], src, 4);
  std::memcpy(&p[16], dst, 4);
  dne::store_be16(&p[10], dne::inet_checksum(p.data(), 20));
  dne::store_be16(&p[20], 40000);
  dne::store_be16(&p[22], 5201);
  dne::store_be16(&p[24], static_cast<uint16_t>(total - 20));
  for (size_t i = 28; i < total; ++i)
    p[i] = static_cast<uint8_t>(7 + i * 31);
  return p;
}

std::vector<uint8_t> keymat_for(size_t key_len) {
  std::vector<uint8_t> k(key_len + dne::kSaltLen);
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(0xa5 ^ i);
  return k;
}

SaParams params_for(const Suite& s) {
  SaParams p;
  p.spi = kSpi;
  p.mode = s.mode;
  return p;  // kIvCounter replay, 24-bit sender IDs, window 4096: DNE default
}

void install(EspEngine& e, const Suite& s, const std::vector<uint8_t>& km) {
  const Status st = e.install_sa(params_for(s), km.data(), km.size());
  if (st != Status::kOk) die("install_sa", st);
}

double secs(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

struct Result {
  uint64_t packets = 0;
  double seconds = 0;
  double reinstall_us = 0;  // open only: mean per reinstall
  size_t batch = 0;         // open only
};

void print(const Suite& s, const char* op, size_t size, const Result& r) {
  const size_t payload = size - 20;
  const size_t aead = payload + dne::esp_pad_len(payload) + dne::kEspTrailerLen;
  const size_t wire = 20 + dne::esp_encap_len(payload);
  const double pps = static_cast<double>(r.packets) / r.seconds;
  std::printf(
      "{\"suite\":\"%s\",\"op\":\"%s\",\"size\":%zu,\"esp_payload\":%zu,"
      "\"aead_bytes\":%zu,\"wire_bytes\":%zu,\"packets\":%" PRIu64
      ",\"seconds\":%.6f,\"mpps\":%.6f,\"ns_per_packet\":%.3f,"
      "\"aead_gbps\":%.6f,\"ip_gbps\":%.6f",
      s.name.c_str(), op, size, payload, aead, wire, r.packets, r.seconds,
      pps / 1e6, 1e9 / pps, pps * static_cast<double>(aead) * 8 / 1e9,
      pps * static_cast<double>(size) * 8 / 1e9);
  if (r.batch != 0)
    std::printf(",\"batch\":%zu,\"reinstall_us\":%.3f", r.batch,
                r.reinstall_us);
  std::printf("}\n");
  std::fflush(stdout);
}

// Calls between clock reads; keeps steady_clock (~20 ns) out of the per-packet
// cost even at 64 bytes.
constexpr uint64_t kSealChunk = 64;

Result bench_seal(const Suite& s, size_t size, double seconds, bool verify) {
  const auto km = keymat_for(s.key_len);
  EspEngine tx;
  install(tx, s, km);
  if (tx.add_sender(kSpi, kSenderId) != Status::kOk) die("add_sender");
  const auto pkt = ipv4_udp(size);
  std::vector<uint8_t> out(size + dne::kEspMaxOverhead);
  size_t out_len = 0;
  dne::SealInfo info;

  if (verify) {
    // The sealed packet must open to the original on a separate receiver.
    EspEngine rx;
    install(rx, s, km);
    Status st = tx.seal(kSpi, kSenderId, pkt.data(), pkt.size(), out.data(),
                        out.size(), &out_len, &info);
    if (st != Status::kOk) die("seal (verify)", st);
    std::vector<uint8_t> back(out_len);
    size_t back_len = 0;
    st = rx.open(out.data(), out_len, back.data(), back.size(), &back_len,
                 nullptr);
    if (st != Status::kOk) die("open (verify)", st);
    if (back_len != pkt.size() ||
        std::memcmp(back.data(), pkt.data(), back_len) != 0)
      die("seal/open round trip differs");
  }

  auto run = [&](double budget, Result* r) {
    const auto start = Clock::now();
    const auto deadline =
        start + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(budget));
    uint64_t n = 0;
    Clock::time_point now;
    do {
      for (uint64_t i = 0; i < kSealChunk; ++i) {
        const Status st =
            tx.seal(kSpi, kSenderId, pkt.data(), pkt.size(), out.data(),
                    out.size(), &out_len, &info);
        if (st != Status::kOk) die("seal", st);
      }
      n += kSealChunk;
      now = Clock::now();
    } while (now < deadline);
    r->packets = n;
    r->seconds = secs(now - start);
  };
  Result warm, r;
  run(std::min(0.1, seconds / 4), &warm);  // caches, branch predictors, clocks
  run(seconds, &r);
  return r;
}

// Crypto-only reference: the same dne::AesGcm calls esp_encap/esp_decap make
// (same EVP sequence, key schedule reused, 8-byte AAD; for GMAC the IV and
// body go in as AAD), on aead_bytes, with no ESP framing, IP handling, SA
// lookup, copy or replay window. seal/aead-seal is the ESP engine's own cost.
Result bench_aead(const Suite& s, size_t size, bool seal, double seconds) {
  const auto km = keymat_for(s.key_len);
  auto gcm = dne::AesGcm::create(km.data(), s.key_len);
  if (!gcm) die("AesGcm::create");
  const size_t payload = size - 20;
  const size_t n = payload + dne::esp_pad_len(payload) + dne::kEspTrailerLen;
  // Laid out as on the wire: SPI|seq (the AAD head), IV, body, ICV.
  std::vector<uint8_t> esp(dne::kEspHeaderLen + dne::kEspIvLen + n +
                           dne::kGcmTagLen, 0x5a);
  std::vector<uint8_t> out(n);
  uint8_t* head = esp.data();
  uint8_t* iv = head + dne::kEspHeaderLen;
  uint8_t* body = iv + dne::kEspIvLen;
  uint8_t* icv = body + n;
  uint8_t nonce[dne::kGcmNonceLen] = {1, 2, 3, 4};
  const bool gmac = s.mode == EspMode::kGmac;
  const dne::Span gcm_aad[1] = {{head, dne::kEspHeaderLen}};
  const dne::Span gmac_aad[2] = {{head, dne::kEspHeaderLen},
                                 {iv, dne::kEspIvLen + n}};
  const dne::Span* aad = gmac ? gmac_aad : gcm_aad;
  const size_t n_aad = gmac ? 2 : 1;
  const size_t ct_len = gmac ? 0 : n;
  uint64_t counter = 0;

  auto do_seal = [&]() {
    dne::store_be64(nonce + 4, ++counter);
    if (!gcm->seal(nonce, aad, n_aad, gmac ? nullptr : body,
                   gmac ? nullptr : body, ct_len, icv))
      die("AesGcm::seal");
  };
  // Open verifies one fixed valid packet over and over (no replay state
  // here); output goes to a separate buffer as in esp_decap.
  if (!seal) do_seal();
  auto do_open = [&]() {
    if (!gcm->open(nonce, aad, n_aad, gmac ? nullptr : body,
                   gmac ? nullptr : out.data(), ct_len, icv))
      die("AesGcm::open");
    if (gmac) std::memcpy(out.data(), body, n);
  };

  auto run = [&](double budget, Result* r) {
    const auto start = Clock::now();
    const auto deadline =
        start + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(budget));
    uint64_t count = 0;
    Clock::time_point now;
    do {
      for (uint64_t i = 0; i < kSealChunk; ++i) {
        if (seal)
          do_seal();
        else
          do_open();
      }
      count += kSealChunk;
      now = Clock::now();
    } while (now < deadline);
    r->packets = count;
    r->seconds = secs(now - start);
  };
  Result warm, r;
  run(std::min(0.1, seconds / 4), &warm);
  run(seconds, &r);
  return r;
}

Result bench_open(const Suite& s, size_t size, double seconds, size_t batch,
                  bool verify) {
  const auto km = keymat_for(s.key_len);
  EspEngine tx, rx;
  install(tx, s, km);
  install(rx, s, km);
  if (tx.add_sender(kSpi, kSenderId) != Status::kOk) die("add_sender");
  const auto pkt = ipv4_udp(size);
  const size_t cap = size + dne::kEspMaxOverhead;

  // Sealed packets, back to back, one slot of `cap` bytes each.
  if (batch == 0) {
    batch = (256 * 1024) / cap;
    if (batch < 32) batch = 32;
    if (batch > 1024) batch = 1024;
  }
  std::vector<uint8_t> sealed(batch * cap);
  std::vector<size_t> sealed_len(batch);
  for (size_t i = 0; i < batch; ++i) {
    const Status st = tx.seal(kSpi, kSenderId, pkt.data(), pkt.size(),
                              &sealed[i * cap], cap, &sealed_len[i], nullptr);
    if (st != Status::kOk) die("seal (batch)", st);
  }
  std::vector<uint8_t> out(cap);
  size_t out_len = 0;
  dne::OpenInfo info;

  auto reset = [&]() {
    if (rx.remove_sa(kSpi) != Status::kOk) die("remove_sa");
    install(rx, s, km);
  };

  auto run = [&](double budget, Result* r) {
    Clock::duration timed{0}, reinstall{0};
    uint64_t n = 0, resets = 0;
    const auto start = Clock::now();
    const auto deadline =
        start + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(budget));
    for (;;) {
      const auto t0 = Clock::now();
      for (size_t i = 0; i < batch; ++i) {
        const Status st = rx.open(&sealed[i * cap], sealed_len[i], out.data(),
                                  out.size(), &out_len, &info);
        if (st != Status::kOk) die("open", st);
      }
      const auto t1 = Clock::now();
      timed += t1 - t0;
      n += batch;
      if (t1 >= deadline) break;
      reset();
      reinstall += Clock::now() - t1;
      ++resets;
    }
    // Leave a fresh window for the next run.
    reset();
    r->packets = n;
    r->seconds = secs(timed);
    r->batch = batch;
    r->reinstall_us =
        resets == 0 ? 0 : secs(reinstall) * 1e6 / static_cast<double>(resets);
  };

  if (verify) {
    const Status st = rx.open(&sealed[0], sealed_len[0], out.data(), out.size(),
                              &out_len, &info);
    if (st != Status::kOk) die("open (verify)", st);
    if (out_len != pkt.size() || std::memcmp(out.data(), pkt.data(), out_len))
      die("open result differs from the sealed packet");
    reset();
  }
  Result warm, r;
  run(std::min(0.1, seconds / 4), &warm);
  run(seconds, &r);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);

  bool pinned = false;
  if (o.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(o.cpu, &set);
    pinned = sched_setaffinity(0, sizeof(set), &set) == 0;
    if (!pinned)
      std::fprintf(stderr, "dne_esp_bench: cannot pin to CPU %d, unpinned\n",
                   o.cpu);
  }

  const auto prov = dne::crypto_provenance();
  // std::string() so this compiles whether the fields are char* or string.
  const std::string ossl_version(prov.openssl_version);
  const std::string evp_object(prov.evp_object);
  const auto cpu = dne::cpu_aes_features();
  std::printf(
      "{\"bench\":\"dne_esp_bench\",\"openssl\":\"%s\",\"evp_object\":\"%s\","
      "\"aesni\":%s,\"pclmulqdq\":%s,\"cpu\":%d,\"pinned\":%s,"
      "\"seconds\":%.3f}\n",
      ossl_version.c_str(), evp_object.c_str(), cpu.aesni ? "true" : "false",
      cpu.pclmulqdq ? "true" : "false", pinned ? o.cpu : -1,
      pinned ? "true" : "false", o.seconds);
  std::fflush(stdout);

  for (size_t size : o.sizes) {
    std::vector<Suite> suites;
    if (o.suites.empty()) {
      suites.push_back({"aes-128-gcm", EspMode::kGcm, 16});
      suites.push_back({"aes-128-gmac", EspMode::kGmac, 16});
      if (size == 1400) suites.push_back({"aes-256-gcm", EspMode::kGcm, 32});
    } else {
      for (const auto& name : o.suites) {
        Suite s;
        if (!parse_suite(name, &s)) die("unknown suite");
        suites.push_back(s);
      }
    }
    for (const auto& s : suites) {
      if (o.do_seal)
        print(s, "seal", size, bench_seal(s, size, o.seconds, o.verify));
      if (o.do_open)
        print(s, "open", size,
              bench_open(s, size, o.seconds, o.batch, o.verify));
      if (o.do_aead && o.do_seal)
        print(s, "aead-seal", size, bench_aead(s, size, true, o.seconds));
      if (o.do_aead && o.do_open)
        print(s, "aead-open", size, bench_aead(s, size, false, o.seconds));
    }
  }
  return 0;
}
