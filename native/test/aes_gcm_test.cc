// Known-answer tests for the AEAD class the ESP path uses (AesGcm), from NIST
// CAVP (IV 96, tag 128 subsets) and Project Wycheproof (GCM and GMAC).
#include <gtest/gtest.h>

#include <map>

#include "crypto/aes_gcm.h"
#include "test_util.h"

namespace dne::test {
namespace {

struct CavpRecord {
  std::map<std::string, std::string> f;
  bool fail = false;
};

std::vector<CavpRecord> parse_rsp(const std::string& text) {
  std::vector<CavpRecord> out;
  std::istringstream in(text);
  std::string line;
  CavpRecord cur;
  bool open = false;
  auto flush = [&] {
    if (open) out.push_back(cur);
    cur = CavpRecord();
    open = false;
  };
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("Count = ", 0) == 0) {
      flush();
      open = true;
    }
    if (!open) continue;
    if (line == "FAIL") {
      cur.fail = true;
      continue;
    }
    const auto eq = line.find(" = ");
    if (eq != std::string::npos)
      cur.f[line.substr(0, eq)] = line.substr(eq + 3);
    else if (line.size() > 2 && line.back() == '=')
      cur.f[line.substr(0, line.size() - 2)] = "";
  }
  flush();
  return out;
}

TEST(AesGcmKat, NistEncryptSubset) {
  const auto recs =
      parse_rsp(read_file(vector_path("nist_cavp_gcmEncryptExtIV128_iv96_tag128.rsp")));
  ASSERT_EQ(recs.size(), 375u);
  for (const auto& r : recs) {
    const Bytes key = from_hex(r.f.at("Key")), iv = from_hex(r.f.at("IV")),
                pt = from_hex(r.f.at("PT")), aad = from_hex(r.f.at("AAD"));
    auto g = AesGcm::create(key.data(), key.size());
    ASSERT_TRUE(g);
    Bytes ct(pt.size());
    uint8_t tag[kGcmTagLen];
    const Span a[1] = {{aad.data(), aad.size()}};
    ASSERT_TRUE(g->seal(iv.data(), a, 1, pt.data(), ct.data(), pt.size(), tag));
    EXPECT_EQ(to_hex(ct), r.f.at("CT"));
    EXPECT_EQ(to_hex(tag, kGcmTagLen), r.f.at("Tag"));
  }
}

TEST(AesGcmKat, NistDecryptSubset) {
  const auto recs =
      parse_rsp(read_file(vector_path("nist_cavp_gcmDecrypt128_iv96_tag128.rsp")));
  ASSERT_EQ(recs.size(), 375u);
  int rejected = 0;
  for (const auto& r : recs) {
    const Bytes key = from_hex(r.f.at("Key")), iv = from_hex(r.f.at("IV")),
                ct = from_hex(r.f.at("CT")), aad = from_hex(r.f.at("AAD")),
                tag = from_hex(r.f.at("Tag"));
    auto g = AesGcm::create(key.data(), key.size());
    ASSERT_TRUE(g);
    Bytes pt(ct.size());
    const Span a[1] = {{aad.data(), aad.size()}};
    const bool ok =
        g->open(iv.data(), a, 1, ct.data(), pt.data(), ct.size(), tag.data());
    EXPECT_EQ(ok, !r.fail) << "Count " << r.f.at("Count");
    if (ok) {
      EXPECT_EQ(to_hex(pt), r.f.at("PT"));
    }
    rejected += !ok;
  }
  EXPECT_EQ(rejected, 196);
}

TEST(AesGcmKat, WycheproofGcm) {
  const auto j = load_json("wycheproof_aes_gcm_test.json");
  ASSERT_FALSE(j.is_discarded());
  int run = 0;
  for (const auto& g : j["testGroups"]) {
    if (g["ivSize"] != 96 || g["tagSize"] != 128) continue;
    for (const auto& t : g["tests"]) {
      const Bytes key = from_hex(t["key"]), iv = from_hex(t["iv"]),
                  aad = from_hex(t["aad"]), msg = from_hex(t["msg"]),
                  ct = from_hex(t["ct"]), tag = from_hex(t["tag"]);
      const bool valid = t["result"] == "valid";
      auto c = AesGcm::create(key.data(), key.size());
      ASSERT_TRUE(c) << "tcId " << t["tcId"];
      const Span a[1] = {{aad.data(), aad.size()}};
      Bytes out(msg.size());
      uint8_t got_tag[kGcmTagLen];
      ASSERT_TRUE(c->seal(iv.data(), a, 1, msg.data(), out.data(), msg.size(), got_tag));
      if (valid) {
        EXPECT_EQ(to_hex(out), to_hex(ct)) << "tcId " << t["tcId"];
        EXPECT_EQ(to_hex(got_tag, 16), to_hex(tag)) << "tcId " << t["tcId"];
      }
      Bytes pt(ct.size());
      const bool ok = c->open(iv.data(), a, 1, ct.data(), pt.data(), ct.size(), tag.data());
      EXPECT_EQ(ok, valid) << "tcId " << t["tcId"] << " " << t["comment"];
      if (ok) {
        EXPECT_EQ(to_hex(pt), to_hex(msg));
      }
      ++run;
    }
  }
  EXPECT_EQ(run, 197);  // every 96-bit-IV / 128-bit-tag case in the file
}

TEST(AesGcmKat, WycheproofGmac) {
  const auto j = load_json("wycheproof_aes_gmac_test.json");
  ASSERT_FALSE(j.is_discarded());
  int run = 0;
  for (const auto& g : j["testGroups"]) {
    if (g["ivSize"] != 96 || g["tagSize"] != 128) continue;
    for (const auto& t : g["tests"]) {
      const Bytes key = from_hex(t["key"]), iv = from_hex(t["iv"]),
                  msg = from_hex(t["msg"]), tag = from_hex(t["tag"]);
      const bool valid = t["result"] == "valid";
      auto c = AesGcm::create(key.data(), key.size());
      ASSERT_TRUE(c);
      // RFC 4543: GMAC is GCM with the message as AAD and no plaintext.
      const Span a[1] = {{msg.data(), msg.size()}};
      uint8_t got[kGcmTagLen];
      ASSERT_TRUE(c->seal(iv.data(), a, 1, nullptr, nullptr, 0, got));
      if (valid) {
        EXPECT_EQ(to_hex(got, 16), to_hex(tag)) << "tcId " << t["tcId"];
      }
      EXPECT_EQ(c->open(iv.data(), a, 1, nullptr, nullptr, 0, tag.data()), valid)
          << "tcId " << t["tcId"];
      ++run;
    }
  }
  EXPECT_EQ(run, 207);
}

TEST(AesGcm, RejectsUnsupportedKeyLengths) {
  const Bytes k(64, 1);
  for (size_t len : {0u, 1u, 15u, 17u, 20u, 31u, 33u, 64u})
    EXPECT_FALSE(AesGcm::create(k.data(), len)) << len;
  for (size_t len : {16u, 24u, 32u}) EXPECT_TRUE(AesGcm::create(k.data(), len));
}

TEST(AesGcm, AadInPiecesEqualsAadInOne) {
  const Bytes key = pattern(16), nonce = pattern(12, 3), aad = pattern(40, 9),
              pt = pattern(100, 1);
  auto c = AesGcm::create(key.data(), key.size());
  Bytes o1(pt.size()), o2(pt.size());
  uint8_t t1[16], t2[16];
  const Span one[1] = {{aad.data(), aad.size()}};
  const Span three[3] = {{aad.data(), 12}, {aad.data() + 12, 0}, {aad.data() + 12, 28}};
  ASSERT_TRUE(c->seal(nonce.data(), one, 1, pt.data(), o1.data(), pt.size(), t1));
  ASSERT_TRUE(c->seal(nonce.data(), three, 3, pt.data(), o2.data(), pt.size(), t2));
  EXPECT_EQ(o1, o2);
  EXPECT_EQ(to_hex(t1, 16), to_hex(t2, 16));
}

}  // namespace
}  // namespace dne::test
