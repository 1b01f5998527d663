// Transport-mode seal/open through EspEngine: IPv4 (with options) and IPv6
// (with extension headers), rejection reasons for every tampered field,
// replay, reordering, padding, and group-SA sender IVs (RFC 6054).
#include <gtest/gtest.h>

#include <set>

#include "esp/engine.h"
#include "test_util.h"

namespace dne::test {
namespace {

constexpr uint32_t kSpi = 0x1000;

Bytes keymat(size_t key_len = 16) { return pattern(key_len + 4, 99); }

struct Pair {
  EspEngine tx, rx;
  explicit Pair(EspMode mode, size_t key_len = 16, uint32_t window = 4096,
                uint8_t bits = 24) {
    SaParams p;
    p.spi = kSpi;
    p.mode = mode;
    p.replay_window = window;
    p.sender_id_bits = bits;
    const Bytes k = keymat(key_len);
    EXPECT_EQ(tx.install_sa(p, k.data(), k.size()), Status::kOk);
    EXPECT_EQ(rx.install_sa(p, k.data(), k.size()), Status::kOk);
    EXPECT_EQ(tx.add_sender(kSpi, 7), Status::kOk);
  }
  Bytes seal(const Bytes& pkt, uint32_t sender = 7) {
    Bytes out(pkt.size() + kEspMaxOverhead);
    size_t n = 0;
    SealInfo info;
    EXPECT_EQ(tx.seal(kSpi, sender, pkt.data(), pkt.size(), out.data(),
                      out.size(), &n, &info),
              Status::kOk);
    out.resize(n);
    return out;
  }
  Status open(const Bytes& pkt, Bytes* plain = nullptr, OpenInfo* info = nullptr) {
    Bytes out(pkt.size() + 16);
    size_t n = 0;
    const Status s = rx.open(pkt.data(), pkt.size(), out.data(), out.size(), &n, info);
    out.resize(s == Status::kOk ? n : 0);
    if (plain) *plain = out;
    return s;
  }
};

void expect_valid_ipv4_header(const Bytes& p) {
  const size_t ihl = (p[0] & 15) * 4;
  EXPECT_EQ(inet_checksum(p.data(), ihl), 0) << "IPv4 header checksum";
  EXPECT_EQ(load_be16(&p[2]), p.size());
}

TEST(Transport, Ipv4RoundTripAllSizesAndModes) {
  for (EspMode mode : {EspMode::kGcm, EspMode::kGmac}) {
    for (size_t key_len : {16u, 32u}) {
      Pair pair(mode, key_len);
      for (size_t n : {0u, 1u, 2u, 3u, 4u, 5u, 63u, 64u, 1400u, 1472u, 8972u}) {
        const Bytes plain = ipv4_udp(pattern(n));
        const Bytes sealed = pair.seal(plain);
        ASSERT_EQ(sealed[9], 50);  // protocol ESP
        expect_valid_ipv4_header(sealed);
        // ESP body (payload + padding + trailer) is 4-byte aligned with at
        // most 3 pad bytes: RFC 4303 §2.4, no block padding for GCM.
        const size_t body = sealed.size() - 20 - 16 - 16;
        EXPECT_EQ(body % 4, 0u);
        EXPECT_LE(sealed.size() - plain.size(), kEspMaxOverhead);
        if (mode == EspMode::kGmac) {
          // RFC 4543: payload stays readable right after the IV.
          EXPECT_TRUE(std::equal(plain.begin() + 20, plain.end(), sealed.begin() + 36));
        }
        Bytes back;
        ASSERT_EQ(pair.open(sealed, &back), Status::kOk) << n;
        EXPECT_EQ(to_hex(back), to_hex(plain)) << n;
      }
    }
  }
}

TEST(Transport, Ipv4OptionsStayInFrontOfEsp) {
  Pair pair(EspMode::kGcm);
  const Bytes opts = {0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00};  // router alert + NOPs + EOL
  const Bytes plain = ipv4_udp(pattern(100), opts);
  const Bytes sealed = pair.seal(plain);
  EXPECT_EQ(sealed[0] & 15, 7);
  EXPECT_TRUE(std::equal(opts.begin(), opts.end(), sealed.begin() + 20));
  EXPECT_EQ(load_be32(&sealed[28]), kSpi);
  expect_valid_ipv4_header(sealed);
  Bytes back;
  ASSERT_EQ(pair.open(sealed, &back), Status::kOk);
  EXPECT_EQ(back, plain);
}

TEST(Transport, TrailingBytesBeyondIpLengthAreIgnored) {
  // Ethernet minimum-frame padding after a short packet must not be sealed.
  Pair pair(EspMode::kGcm);
  const Bytes plain = ipv4_udp(pattern(4));
  Bytes padded = plain;
  padded.resize(plain.size() + 14, 0);
  const Bytes sealed = pair.seal(padded);
  Bytes back;
  ASSERT_EQ(pair.open(sealed, &back), Status::kOk);
  EXPECT_EQ(back, plain);
}

TEST(Transport, Ipv6EspGoesAfterHopByHopRoutingAndFragment) {
  struct Case {
    std::vector<Ext> exts;
    size_t esp_offset;
  };
  const std::vector<Case> cases = {
      {{}, 40},
      {{ext8(0)}, 48},
      {{ext8(0), ext8(43)}, 56},
      {{ext8(0), ext8(43), ext8(44)}, 64},
      {{ext8(60), ext8(43)}, 56},   // dest opts for the routing hops: in front
      {{ext8(0), ext8(60)}, 48},    // dest opts for the final node: protected
      {{ext8(44), ext8(60)}, 48},
  };
  for (EspMode mode : {EspMode::kGcm, EspMode::kGmac}) {
    Pair pair(mode);
    for (const auto& c : cases) {
      const Bytes plain = ipv6_udp(pattern(333), c.exts);
      const Bytes sealed = pair.seal(plain);
      EXPECT_EQ(load_be32(&sealed[c.esp_offset]), kSpi);
      EXPECT_EQ(load_be16(&sealed[4]) + 40u, sealed.size());
      // The header in front of ESP names ESP as its next header.
      const size_t nh_pos = c.esp_offset == 40 ? 6 : c.esp_offset - 8;
      EXPECT_EQ(sealed[nh_pos], 50);
      Bytes back;
      ASSERT_EQ(pair.open(sealed, &back), Status::kOk);
      EXPECT_EQ(to_hex(back), to_hex(plain));
    }
  }
}

TEST(Transport, RejectsWhatIsNotIp) {
  Pair pair(EspMode::kGcm);
  Bytes out(2000);
  size_t n;
  SealInfo info;
  const Bytes arp(42, 0x11);
  EXPECT_EQ(pair.tx.seal(kSpi, 7, arp.data(), arp.size(), out.data(), out.size(), &n, &info),
            Status::kUnsupported);
  Bytes bad = ipv4_udp(pattern(10));
  store_be16(&bad[2], 500);  // total length beyond the buffer
  EXPECT_EQ(pair.tx.seal(kSpi, 7, bad.data(), bad.size(), out.data(), out.size(), &n, &info),
            Status::kMalformed);
  Bytes jumbo = ipv6_udp(pattern(10));
  store_be16(&jumbo[4], 0);
  EXPECT_EQ(pair.tx.seal(kSpi, 7, jumbo.data(), jumbo.size(), out.data(), out.size(), &n, &info),
            Status::kUnsupported);
  // IPv4 header checksums are verified, and only the canonical form of zero
  // is accepted (RFC 1624 §3), so restoration stays byte-exact.
  Bytes badsum = ipv4_udp(pattern(10));
  badsum[10] ^= 0x01;
  EXPECT_EQ(pair.tx.seal(kSpi, 7, badsum.data(), badsum.size(), out.data(), out.size(), &n, &info),
            Status::kMalformed);
  Bytes sealed_badsum = pair.seal(ipv4_udp(pattern(10)));
  sealed_badsum[10] ^= 0x80;
  EXPECT_EQ(pair.open(sealed_badsum), Status::kMalformed);
  // None of these consumed a counter value.
  SenderInfo si;
  ASSERT_TRUE(pair.tx.sender_info(kSpi, 7, &si));
  EXPECT_EQ(si.next_counter, 2u);  // only the one good packet above
  // A plaintext packet is not ESP.
  const Bytes plain = ipv4_udp(pattern(10));
  EXPECT_EQ(pair.open(plain), Status::kUnsupported);
}

TEST(Transport, OutputBufferTooSmallIsNoSpace) {
  Pair pair(EspMode::kGcm);
  const Bytes plain = ipv4_udp(pattern(100));
  Bytes out(plain.size() + 10);
  size_t n;
  EXPECT_EQ(pair.tx.seal(kSpi, 7, plain.data(), plain.size(), out.data(), out.size(), &n, nullptr),
            Status::kNoSpace);
  const Bytes sealed = pair.seal(plain);
  Bytes small(sealed.size() - 40);
  EXPECT_EQ(pair.rx.open(sealed.data(), sealed.size(), small.data(), small.size(), &n, nullptr),
            Status::kNoSpace);
}

// Every single-bit flip in SPI, sequence, IV, payload, trailer and ICV is
// rejected: SPI flips find no SA, everything else fails the ICV (the receiver
// has seen nothing yet, so no flipped counter can look like a replay).
TEST(Transport, EverySingleBitFlipIsRejectedWithItsReason) {
  for (EspMode mode : {EspMode::kGcm, EspMode::kGmac}) {
    for (bool v6 : {false, true}) {
      Pair pair(mode);
      const Bytes plain = v6 ? ipv6_udp(pattern(37)) : ipv4_udp(pattern(37));
      const Bytes sealed = pair.seal(plain);
      const size_t esp = v6 ? 40 : 20;
      int unknown_spi = 0, icv = 0;
      for (size_t byte = esp; byte < sealed.size(); ++byte) {
        for (int bit = 0; bit < 8; ++bit) {
          Bytes t = sealed;
          t[byte] ^= static_cast<uint8_t>(1 << bit);
          const Status s = pair.open(t);
          if (byte < esp + 4) {
            EXPECT_EQ(s, Status::kUnknownSpi) << byte << ":" << bit;
            ++unknown_spi;
          } else {
            EXPECT_EQ(s, Status::kIcvFailure) << byte << ":" << bit;
            ++icv;
          }
        }
      }
      EXPECT_EQ(unknown_spi, 32);
      EXPECT_EQ(pair.rx.counters(kSpi)->drops[static_cast<size_t>(Status::kIcvFailure)],
                static_cast<uint64_t>(icv));
      EXPECT_EQ(pair.rx.global_drops()[static_cast<size_t>(Status::kUnknownSpi)], 32u);
      // The untouched packet still opens: failures did not move the window.
      EXPECT_EQ(pair.open(sealed), Status::kOk);
    }
  }
}

TEST(Transport, TruncationAtEveryLengthIsRejected) {
  Pair pair(EspMode::kGcm);
  const Bytes sealed = pair.seal(ipv4_udp(pattern(50)));
  for (size_t len = 0; len < sealed.size(); ++len) {
    Bytes t(sealed.begin(), sealed.begin() + len);
    if (len >= 20) {  // keep the IP length consistent with the cut
      store_be16(&t[2], static_cast<uint16_t>(len));
      store_be16(&t[10], 0);
      store_be16(&t[10], inet_checksum(t.data(), 20));
    }
    const Status s = pair.open(t);
    EXPECT_NE(s, Status::kOk) << len;
    if (len >= 20 && len < 20 + kEspMinLen) {
      EXPECT_EQ(s, Status::kMalformed) << len;
    } else if (len >= 20 + kEspMinLen) {
      EXPECT_EQ(s, Status::kIcvFailure) << len;
    }
  }
}

TEST(Transport, ReplayTooOldAndReorderingHaveTheirOwnReasons) {
  Pair pair(EspMode::kGcm, 16, 64);
  std::vector<Bytes> sealed;
  for (int i = 0; i < 200; ++i) sealed.push_back(pair.seal(ipv4_udp(pattern(20, i))));
  // Deliver 100..199 in reverse order: all inside a 64 window? Only the last
  // 64 counters are; check both sides of the edge.
  EXPECT_EQ(pair.open(sealed[199]), Status::kOk);   // counter 200
  EXPECT_EQ(pair.open(sealed[199]), Status::kReplay);
  EXPECT_EQ(pair.open(sealed[150]), Status::kOk);   // reordered, inside
  EXPECT_EQ(pair.open(sealed[137]), Status::kOk);   // counter 138: 62 behind
  EXPECT_EQ(pair.open(sealed[136]), Status::kOk);   // counter 137: 63 behind
  EXPECT_EQ(pair.open(sealed[135]), Status::kTooOld);  // counter 136: 64 behind
  EXPECT_EQ(pair.open(sealed[150]), Status::kReplay);
  const auto* c = pair.rx.counters(kSpi);
  EXPECT_EQ(c->drops[static_cast<size_t>(Status::kReplay)], 2u);
  EXPECT_EQ(c->drops[static_cast<size_t>(Status::kTooOld)], 1u);
  EXPECT_EQ(c->opened_packets, 4u);
}

TEST(Transport, BadPaddingAfterValidIcvIsItsOwnReason) {
  // A sender that writes padding other than 1,2,3 (RFC 4303 §2.4) passes the
  // ICV; the receiver still refuses it.
  const Bytes k = keymat();
  SaParams p;
  p.spi = kSpi;
  EspEngine rx;
  ASSERT_EQ(rx.install_sa(p, k.data(), k.size()), Status::kOk);
  auto gcm = AesGcm::create(k.data(), 16);
  const Bytes ip = ipv4_udp(pattern(9));  // 17-byte payload -> pad 1
  Bytes body(ip.begin() + 20, ip.end());
  body.push_back(0xee);  // wrong pad byte
  body.push_back(1);
  body.push_back(17);
  Bytes pkt(ip.begin(), ip.begin() + 20);
  pkt[9] = 50;
  Bytes esp(16 + body.size() + 16);
  store_be32(&esp[0], kSpi);
  store_be32(&esp[4], 1);
  store_be64(&esp[8], 1);
  uint8_t nonce[12];
  std::copy(k.begin() + 16, k.end(), nonce);
  std::copy(esp.begin() + 8, esp.begin() + 16, nonce + 4);
  const Span aad[1] = {{esp.data(), 8}};
  ASSERT_TRUE(gcm->seal(nonce, aad, 1, body.data(), &esp[16], body.size(), &esp[16 + body.size()]));
  pkt.insert(pkt.end(), esp.begin(), esp.end());
  store_be16(&pkt[2], static_cast<uint16_t>(pkt.size()));
  store_be16(&pkt[10], ipv4_header_checksum(pkt.data(), 20));
  Bytes out(pkt.size());
  size_t n;
  EXPECT_EQ(rx.open(pkt.data(), pkt.size(), out.data(), out.size(), &n, nullptr),
            Status::kBadPadding);
}

TEST(Senders, ManySendersUnderOneKeyNeverShareAnIv) {
  // RFC 6054 §3: the IV is sender ID || counter, so senders with distinct IDs
  // cannot collide however their counters move.
  Pair pair(EspMode::kGcm);
  for (uint32_t id = 100; id < 108; ++id) ASSERT_EQ(pair.tx.add_sender(kSpi, id), Status::kOk);
  std::set<std::string> ivs;
  size_t total = 0;
  OpenInfo info;
  for (int round = 0; round < 500; ++round) {
    for (uint32_t id = 100; id < 108; ++id) {
      const Bytes sealed = pair.seal(ipv4_udp(pattern(30, round)), id);
      ivs.insert(to_hex(&sealed[28], 8));
      ++total;
      ASSERT_EQ(pair.open(sealed, nullptr, &info), Status::kOk);
      EXPECT_EQ(info.sender_id, id);
      EXPECT_EQ(info.counter, static_cast<uint64_t>(round + 1));
    }
  }
  EXPECT_EQ(ivs.size(), total);
  // Each sender has its own window: sender 100's counter 1 did not make
  // sender 101's counter 1 a replay (both were accepted above), and a
  // replay of any of them is caught.
  pair.tx.add_sender(kSpi, 200);
  const Bytes again = pair.seal(ipv4_udp(pattern(30)), 200);
  EXPECT_EQ(pair.open(again), Status::kOk);
  EXPECT_EQ(pair.open(again), Status::kReplay);
}

TEST(Senders, SenderIdWidthsAndExhaustion) {
  for (uint8_t bits : {8, 16, 24, 32}) {
    Pair pair(EspMode::kGcm, 16, 4096, bits);
    const uint64_t max_counter = (uint64_t{1} << (64 - bits)) - 1;
    const uint32_t max_id = bits == 32 ? 0xffffffffu : (1u << bits) - 1;
    EXPECT_EQ(pair.tx.add_sender(kSpi, max_id, max_counter - 2, 1), Status::kOk);
    if (bits < 32) {
      EXPECT_EQ(pair.tx.add_sender(kSpi, max_id + 1), Status::kBadConfig);
    }
    EXPECT_EQ(pair.tx.add_sender(kSpi, max_id), Status::kBadConfig);  // already there
    const Bytes plain = ipv4_udp(pattern(10));
    Bytes out(200);
    size_t n;
    SealInfo info;
    OpenInfo oi;
    for (int i = 0; i < 3; ++i) {
      ASSERT_EQ(pair.tx.seal(kSpi, max_id, plain.data(), plain.size(), out.data(), out.size(), &n, &info),
                Status::kOk);
      EXPECT_EQ(info.iv, (static_cast<uint64_t>(max_id) << (64 - bits)) | (max_counter - 2 + i));
      // Low-water mark (1 left after this packet) reached on the second.
      EXPECT_EQ(info.sender_low, i >= 1) << int(bits) << " " << i;
      Bytes back(out.size());
      size_t m;
      ASSERT_EQ(pair.rx.open(out.data(), n, back.data(), back.size(), &m, &oi), Status::kOk);
      EXPECT_EQ(oi.sender_id, max_id);
      EXPECT_EQ(oi.counter, max_counter - 2 + i);
    }
    // The counter never wraps: the sender refuses and says why.
    EXPECT_EQ(pair.tx.seal(kSpi, max_id, plain.data(), plain.size(), out.data(), out.size(), &n, &info),
              Status::kCounterExhausted);
    EXPECT_EQ(pair.tx.counters(kSpi)->drops[static_cast<size_t>(Status::kCounterExhausted)], 1u);
  }
}

TEST(Sa, InstallValidatesParameters) {
  EspEngine e;
  const Bytes k = keymat();
  SaParams p;
  p.spi = 0x2000;
  EXPECT_EQ(e.install_sa(p, k.data(), 3), Status::kBadConfig);
  EXPECT_EQ(e.install_sa(p, k.data(), 19), Status::kBadConfig);  // 15-byte key
  SaParams q = p;
  q.sender_id_bits = 12;
  EXPECT_EQ(e.install_sa(q, k.data(), k.size()), Status::kBadConfig);
  q = p;
  q.replay_window = 100;
  EXPECT_EQ(e.install_sa(q, k.data(), k.size()), Status::kBadConfig);
  EXPECT_EQ(e.install_sa(p, k.data(), k.size()), Status::kOk);
  EXPECT_EQ(e.install_sa(p, k.data(), k.size()), Status::kBadConfig);  // SPI in use
  EXPECT_EQ(e.remove_sa(p.spi), Status::kOk);
  EXPECT_EQ(e.remove_sa(p.spi), Status::kUnknownSpi);
}

TEST(Sa, TooManySendersIsCountedAndBounded) {
  const Bytes k = keymat();
  SaParams p;
  p.spi = kSpi;
  p.max_senders = 2;
  EspEngine tx, rx;
  ASSERT_EQ(tx.install_sa(p, k.data(), k.size()), Status::kOk);
  ASSERT_EQ(rx.install_sa(p, k.data(), k.size()), Status::kOk);
  const Bytes plain = ipv4_udp(pattern(10));
  Bytes out(200), back(200);
  size_t n, m;
  for (uint32_t id = 1; id <= 3; ++id) {
    ASSERT_EQ(tx.add_sender(kSpi, id), Status::kOk);
    ASSERT_EQ(tx.seal(kSpi, id, plain.data(), plain.size(), out.data(), out.size(), &n, nullptr), Status::kOk);
    EXPECT_EQ(rx.open(out.data(), n, back.data(), back.size(), &m, nullptr),
              id <= 2 ? Status::kOk : Status::kTooManySenders);
  }
}

TEST(StatusTable, NamesAreUniqueAndStable) {
  std::set<std::string> names;
  for (int i = 0; i < kStatusCount; ++i) names.insert(status_name(static_cast<Status>(i)));
  EXPECT_EQ(names.size(), static_cast<size_t>(kStatusCount));
  EXPECT_STREQ(status_name(Status::kOk), "ok");
  EXPECT_STREQ(status_name(Status::kIcvFailure), "icv_failure");
}

}  // namespace
}  // namespace dne::test

namespace dne::test {
namespace {

TEST(Senders, ClassicSaWithoutEsnStopsAtTheEndOfTheSequenceSpace) {
  // RFC 4303 §3.3.3: without ESN the 32-bit sequence number must not cycle.
  SaParams p;
  p.spi = 0x3000;
  p.replay_mode = ReplayMode::kEspSeq;
  EspEngine e;
  const Bytes k = pattern(20);
  ASSERT_EQ(e.install_sa(p, k.data(), k.size()), Status::kOk);
  ASSERT_EQ(e.add_sender(p.spi, 1, 0xfffffffeull), Status::kOk);
  const Bytes plain = ipv4_udp(pattern(10));
  Bytes out(200);
  size_t n;
  SealInfo info;
  EXPECT_EQ(e.seal(p.spi, 1, plain.data(), plain.size(), out.data(), out.size(), &n, &info), Status::kOk);
  EXPECT_EQ(e.seal(p.spi, 1, plain.data(), plain.size(), out.data(), out.size(), &n, &info), Status::kOk);
  EXPECT_EQ(info.seq, 0xffffffffull);
  EXPECT_EQ(e.seal(p.spi, 1, plain.data(), plain.size(), out.data(), out.size(), &n, &info),
            Status::kCounterExhausted);
}

}  // namespace
}  // namespace dne::test
