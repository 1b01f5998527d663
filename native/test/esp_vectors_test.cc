// ESP packet known-answer tests: draft-mcgrew-gcm-test-01 §4 (all 17 cases,
// both directions) and four packets produced by the Linux kernel's xfrm
// stack, through EspEngine: the same SA install, encap and decap code the
// transport-mode path uses.
#include <gtest/gtest.h>

#include "esp/engine.h"
#include "test_util.h"

namespace dne::test {
namespace {

SaParams vector_sa(uint32_t spi, bool gmac, bool esn, uint64_t initial_seq) {
  SaParams p;
  p.spi = spi;
  p.mode = gmac ? EspMode::kGmac : EspMode::kGcm;
  p.esn = esn;
  // Foreign vectors pick their IVs freely: replay state on the sequence
  // number, primed so the ESN high half is inferred as the sender had it.
  p.replay_mode = ReplayMode::kEspSeq;
  p.initial_seq = initial_seq;
  return p;
}

class DraftMcgrew : public ::testing::TestWithParam<int> {};

TEST_P(DraftMcgrew, EncapAndDecapReproduceTheVector) {
  const auto j = load_json("draft-mcgrew-gcm-test-01_esp_vectors.json");
  ASSERT_FALSE(j.is_discarded());
  const auto& c = j["cases"][GetParam()];
  const bool gmac = c["algorithm"] == "AES-GMAC-ESP";
  const Bytes key = from_hex(c["key"]), salt = from_hex(c["salt"]),
              packet = from_hex(c["packet"]);
  const Bytes seq_b = from_hex(c["seq"]);
  const uint64_t seq = seq_b.size() == 8 ? load_be64(seq_b.data())
                                         : load_be32(seq_b.data());
  const uint64_t iv = load_be64(from_hex(c["esp_iv"]).data());
  const uint32_t spi = load_be32(from_hex(c["spi"]).data());
  const int pad = c["trailer_pad_length"];
  // The payload is the GCM plaintext minus padding and trailer; for GMAC it
  // travels in clear between IV and ICV.
  Bytes payload;
  if (gmac) {
    payload.assign(packet.begin() + 16, packet.end() - 16 - 2 - pad);
  } else {
    const Bytes pt = from_hex(c["plaintext"]);
    payload.assign(pt.begin(), pt.end() - 2 - pad);
  }

  Bytes keymat = key;
  keymat.insert(keymat.end(), salt.begin(), salt.end());
  EspEngine e;
  ASSERT_EQ(e.install_sa(vector_sa(spi, gmac, c["esn"], seq), keymat.data(),
                         keymat.size()),
            Status::kOk);

  Bytes out(packet.size() + 64);
  size_t n = 0;
  ASSERT_EQ(e.encap_payload(spi, seq, iv, payload.data(), payload.size(),
                            c["trailer_next_header"], out.data(), out.size(), &n),
            Status::kOk);
  out.resize(n);
  EXPECT_EQ(to_hex(out), to_hex(packet)) << "case " << c["id"];

  Bytes back(packet.size());
  OpenInfo info;
  ASSERT_EQ(e.decap_payload(packet.data(), packet.size(), back.data(),
                            back.size(), &n, &info),
            Status::kOk)
      << "case " << c["id"];
  back.resize(n);
  EXPECT_EQ(to_hex(back), to_hex(payload));
  EXPECT_EQ(info.next_header, 1);
  EXPECT_EQ(info.seq, c["esn"] ? seq : (seq & 0xffffffff));
  // A second copy is a replay.
  Bytes again(packet.size());
  EXPECT_EQ(e.decap_payload(packet.data(), packet.size(), again.data(),
                            again.size(), &n, nullptr),
            Status::kReplay);
}

INSTANTIATE_TEST_SUITE_P(AllCases, DraftMcgrew, ::testing::Range(0, 17));

TEST(LinuxXfrm, KernelPacketsOpenAndReencodeByteForByte) {
  const auto j = load_json("linux_xfrm_esp_gcm_gmac_refpackets.json");
  ASSERT_FALSE(j.is_discarded());
  const auto& list = j.contains("packets") ? j["packets"] : j["cases"];
  ASSERT_EQ(list.size(), 4u);
  for (const auto& c : list) {
    const bool gmac = std::string(c["algorithm"]).find("4543") != std::string::npos;
    const bool esn = c["esn"];
    const uint64_t seq_hi = c["seq_hi"].is_null() ? 0 : c["seq_hi"].get<uint64_t>();
    const uint64_t seq = (seq_hi << 32) | c["seq_lo"].get<uint64_t>();
    const Bytes keymat = from_hex(c["keymat_hex"]);
    const Bytes esp = from_hex(c["esp_packet_hex"]);
    const Bytes expected = from_hex(c["decrypted_plaintext_hex"]);
    const uint32_t spi = c["spi"];
    EspEngine e;
    ASSERT_EQ(e.install_sa(vector_sa(spi, gmac, esn, seq_hi << 32),
                           keymat.data(), keymat.size()),
              Status::kOk);
    Bytes out(esp.size());
    size_t n = 0;
    OpenInfo info;
    ASSERT_EQ(e.decap_payload(esp.data(), esp.size(), out.data(), out.size(), &n, &info),
              Status::kOk)
        << c["source_test"];
    out.resize(n);
    const int pad = c["pad_length"];
    EXPECT_EQ(to_hex(out),
              to_hex(Bytes(expected.begin(), expected.end() - 2 - pad)));
    EXPECT_EQ(info.next_header, c["next_header"].get<int>());
    EXPECT_EQ(info.seq, seq);
    // Re-encode with the kernel's IV and sequence number: same bytes.
    Bytes re(esp.size() + 8);
    ASSERT_EQ(e.encap_payload(spi, seq, load_be64(esp.data() + 8), out.data(),
                              out.size(), info.next_header, re.data(), re.size(), &n),
              Status::kOk);
    re.resize(n);
    EXPECT_EQ(to_hex(re), to_hex(esp)) << c["source_test"];
  }
}

TEST(LinuxXfrm, WrongEsnGuessFailsIcv) {
  // SOURCES.md pitfall 3: with ESN the high half is authenticated but not
  // sent; a receiver with the wrong high half must reject every packet.
  const auto j = load_json("linux_xfrm_esp_gcm_gmac_refpackets.json");
  const auto& list = j.contains("packets") ? j["packets"] : j["cases"];
  for (const auto& c : list) {
    if (!c["esn"].get<bool>()) continue;
    const bool gmac = std::string(c["algorithm"]).find("4543") != std::string::npos;
    const Bytes keymat = from_hex(c["keymat_hex"]);
    const Bytes esp = from_hex(c["esp_packet_hex"]);
    EspEngine e;
    ASSERT_EQ(e.install_sa(vector_sa(c["spi"], gmac, true, 0), keymat.data(),
                           keymat.size()),
              Status::kOk);
    Bytes out(esp.size());
    size_t n;
    EXPECT_EQ(e.decap_payload(esp.data(), esp.size(), out.data(), out.size(), &n, nullptr),
              Status::kIcvFailure);
    EXPECT_EQ(e.counters(c["spi"])->drops[static_cast<size_t>(Status::kIcvFailure)], 1u);
  }
}

}  // namespace
}  // namespace dne::test
